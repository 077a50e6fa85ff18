//! The client security options of `sluice bench` and every client subcommand of the CLI:
//! a Kafka client properties file (`--command-config`, as kafka-*.sh take it) and the same
//! settings as flags or SLUICE_ variables, which win over the file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use sluice_client::security::{read_properties, SECURITY_PROPERTIES};
use sluice_client::ClientSecurity;

#[derive(Args, Debug, Clone, Default)]
pub struct SecurityArgs {
    /// Kafka client properties (security.protocol, sasl.mechanism, sasl.username,
    /// sasl.password or sasl.jaas.config, ssl.ca.location or ssl.truststore.location, ...).
    #[arg(long, env = "SLUICE_COMMAND_CONFIG")]
    pub command_config: Option<PathBuf>,
    /// PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(long, env = "SLUICE_SECURITY_PROTOCOL")]
    pub security_protocol: Option<String>,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, env = "SLUICE_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,
    #[arg(long, env = "SLUICE_SASL_USERNAME")]
    pub sasl_username: Option<String>,
    /// The password (SLUICE_SASL_PASSWORD or --command-config keep it out of the process list).
    #[arg(long, env = "SLUICE_SASL_PASSWORD", hide_env_values = true)]
    pub sasl_password: Option<String>,
    /// CA certificates (PEM) the broker's certificate is checked against.
    #[arg(long, env = "SLUICE_SSL_CA_LOCATION")]
    pub ssl_ca_location: Option<PathBuf>,
    /// This client's certificate (PEM), for listeners that require one.
    #[arg(long, env = "SLUICE_SSL_CERTIFICATE_LOCATION")]
    pub ssl_certificate_location: Option<PathBuf>,
    /// The key (PEM) of --ssl-certificate-location.
    #[arg(long, env = "SLUICE_SSL_KEY_LOCATION")]
    pub ssl_key_location: Option<PathBuf>,
}

impl SecurityArgs {
    /// The properties: the file's, then the flags over them.
    pub fn properties(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut props = match &self.command_config {
            Some(path) => read_properties(path)?,
            None => BTreeMap::new(),
        };
        let path = |p: &PathBuf| p.display().to_string();
        let flags = [
            ("security.protocol", self.security_protocol.clone()),
            ("sasl.mechanism", self.sasl_mechanism.clone()),
            ("sasl.username", self.sasl_username.clone()),
            ("sasl.password", self.sasl_password.clone()),
            ("ssl.ca.location", self.ssl_ca_location.as_ref().map(path)),
            (
                "ssl.certificate.location",
                self.ssl_certificate_location.as_ref().map(path),
            ),
            ("ssl.key.location", self.ssl_key_location.as_ref().map(path)),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                props.insert(key.to_string(), v);
            }
        }
        Ok(props)
    }

    /// How the tool connects; an error names the property or file at fault.
    pub fn client_security(&self) -> anyhow::Result<ClientSecurity> {
        ClientSecurity::from_properties(&self.properties()?)
    }

    /// The properties that are not security settings (a librdkafka tool passes them on; the
    /// others can only name them as ignored).
    pub fn other_properties(&self) -> anyhow::Result<Vec<(String, String)>> {
        Ok(self
            .properties()?
            .into_iter()
            .filter(|(k, _)| !SECURITY_PROPERTIES.contains(&k.as_str()))
            .collect())
    }
}

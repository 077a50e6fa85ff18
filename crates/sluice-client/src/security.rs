//! How a client reaches a secured listener, from Kafka's client properties: the
//! `security.protocol` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), the SASL mechanism and
//! credentials, and the TLS trust and client certificate. Both spellings operators bring are
//! read: librdkafka's (`sasl.username`, `ssl.ca.location`, `ssl.certificate.location`) and
//! Java's (`sasl.jaas.config`, `ssl.truststore.location` and `ssl.keystore.location` as PEM).

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::scram::Hash;

/// Where Debian and Ubuntu keep the system's CA certificates: the trust of a TLS client
/// that names no CA file (librdkafka's default too).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The properties read here; any other is the caller's (librdkafka takes it as it is).
pub const SECURITY_PROPERTIES: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "sasl.jaas.config",
    "ssl.ca.location",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
];

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    pub fn parse(name: &str) -> anyhow::Result<Protocol> {
        Ok(match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Protocol::Plaintext,
            "SSL" => Protocol::Ssl,
            "SASL_PLAINTEXT" => Protocol::SaslPlaintext,
            "SASL_SSL" => Protocol::SaslSsl,
            _ => bail!(
                "security.protocol {name:?}: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL expected"
            ),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Plaintext => "PLAINTEXT",
            Protocol::Ssl => "SSL",
            Protocol::SaslPlaintext => "SASL_PLAINTEXT",
            Protocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// A SASL mechanism a client can log in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(Hash),
}

impl Mechanism {
    pub fn parse(name: &str) -> anyhow::Result<Mechanism> {
        Ok(match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Mechanism::Plain,
            "SCRAM-SHA-256" => Mechanism::Scram(Hash::Sha256),
            "SCRAM-SHA-512" => Mechanism::Scram(Hash::Sha512),
            _ => bail!("sasl.mechanism {name:?}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 expected"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(hash) => hash.mechanism(),
        }
    }
}

/// A SASL login.
#[derive(Clone)]
pub struct SaslLogin {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A client's TLS settings.
#[derive(Debug, Clone)]
pub struct TlsClientSettings {
    /// CA certificates (PEM) the broker's certificate is checked against; the system's when
    /// `None`.
    pub ca: Option<PathBuf>,
    /// The client's certificate chain (PEM), for listeners that ask for one (mTLS).
    pub certificate: Option<PathBuf>,
    /// The key of `certificate` (PEM; may be the same file).
    pub key: Option<PathBuf>,
    /// Whether the broker's certificate must name the host connected to
    /// (`ssl.endpoint.identification.algorithm=https`, Kafka's default).
    pub verify_hostname: bool,
    /// Whether the broker's certificate is checked at all
    /// (`enable.ssl.certificate.verification`; only for tests against throwaway certificates).
    pub verify_certificate: bool,
}

impl Default for TlsClientSettings {
    fn default() -> Self {
        TlsClientSettings {
            ca: None,
            certificate: None,
            key: None,
            verify_hostname: true,
            verify_certificate: true,
        }
    }
}

/// How to reach a listener: its protocol, the login, the TLS settings (with the connector,
/// built once).
#[derive(Clone, Default)]
pub struct ClientSecurity {
    pub protocol: Protocol,
    pub sasl: Option<SaslLogin>,
    pub tls: TlsClientSettings,
    connector: Option<TlsConnector>,
}

impl std::fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("protocol", &self.protocol)
            .field("sasl", &self.sasl)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ClientSecurity {
    /// PLAINTEXT: no TLS, no login.
    pub fn plaintext() -> ClientSecurity {
        ClientSecurity::default()
    }

    /// From Kafka client properties (see `SECURITY_PROPERTIES`); an error names the property.
    pub fn from_properties(props: &BTreeMap<String, String>) -> anyhow::Result<ClientSecurity> {
        let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let protocol = get("security.protocol")
            .map(Protocol::parse)
            .transpose()?
            .unwrap_or_default();
        let sasl = if protocol.sasl() {
            let mechanism = Mechanism::parse(
                get("sasl.mechanism")
                    .or(get("sasl.mechanisms"))
                    .unwrap_or("PLAIN"),
            )?;
            let jaas = get("sasl.jaas.config")
                .map(jaas_options)
                .unwrap_or_default();
            let username = get("sasl.username")
                .map(str::to_string)
                .or_else(|| jaas.get("username").cloned())
                .ok_or_else(|| {
                    anyhow!(
                        "security.protocol {} needs sasl.username (or sasl.jaas.config)",
                        protocol.name()
                    )
                })?;
            let password = props
                .get("sasl.password")
                .cloned()
                .or_else(|| jaas.get("password").cloned())
                .ok_or_else(|| anyhow!("sasl.username {username:?} without sasl.password"))?;
            Some(SaslLogin {
                mechanism,
                username,
                password,
            })
        } else {
            None
        };
        let pem_only = |type_key: &str| match get(type_key) {
            None => Ok(()),
            Some(t) if t.eq_ignore_ascii_case("PEM") => Ok(()),
            Some(t) => Err(anyhow!("{type_key} {t:?}: only PEM files are read")),
        };
        pem_only("ssl.truststore.type")?;
        pem_only("ssl.keystore.type")?;
        let keystore = get("ssl.keystore.location").map(PathBuf::from);
        let tls = TlsClientSettings {
            ca: get("ssl.ca.location")
                .or(get("ssl.truststore.location"))
                .map(PathBuf::from),
            certificate: get("ssl.certificate.location")
                .map(PathBuf::from)
                .or(keystore.clone()),
            key: get("ssl.key.location").map(PathBuf::from).or(keystore),
            verify_hostname: get("ssl.endpoint.identification.algorithm")
                .map(|a| a.eq_ignore_ascii_case("https"))
                .unwrap_or(true),
            verify_certificate: get("enable.ssl.certificate.verification")
                .map(|v| v != "false")
                .unwrap_or(true),
        };
        ClientSecurity {
            protocol,
            sasl,
            tls,
            connector: None,
        }
        .ready()
    }

    /// Checks the settings and reads the TLS files once (an error names the file).
    pub fn ready(mut self) -> anyhow::Result<ClientSecurity> {
        if self.protocol.sasl() && self.sasl.is_none() {
            bail!(
                "security.protocol {} needs a SASL login",
                self.protocol.name()
            );
        }
        self.connector = if self.protocol.tls() {
            Some(connector(&self.tls)?)
        } else {
            None
        };
        Ok(self)
    }

    /// The TLS connector (`None` on PLAINTEXT and SASL_PLAINTEXT).
    pub fn connector(&self) -> Option<&TlsConnector> {
        self.connector.as_ref()
    }

    /// The same settings as librdkafka properties, for the tools built on it.
    pub fn librdkafka_properties(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![(
            "security.protocol",
            self.protocol.name().to_ascii_lowercase(),
        )];
        if let Some(login) = &self.sasl {
            out.push(("sasl.mechanism", login.mechanism.name().to_string()));
            out.push(("sasl.username", login.username.clone()));
            out.push(("sasl.password", login.password.clone()));
        }
        if self.protocol.tls() {
            let path = |p: &Path| p.display().to_string();
            if let Some(ca) = &self.tls.ca {
                out.push(("ssl.ca.location", path(ca)));
            }
            if let Some(cert) = &self.tls.certificate {
                out.push(("ssl.certificate.location", path(cert)));
            }
            if let Some(key) = &self.tls.key {
                out.push(("ssl.key.location", path(key)));
            }
            let algorithm = if self.tls.verify_hostname {
                "https"
            } else {
                "none"
            };
            out.push(("ssl.endpoint.identification.algorithm", algorithm.into()));
            if !self.tls.verify_certificate {
                out.push(("enable.ssl.certificate.verification", "false".into()));
            }
        }
        out
    }
}

/// `username="alice" password="secret"` from a Java `sasl.jaas.config` line.
fn jaas_options(jaas: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = jaas;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq]
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_string();
        let value_start = eq + 2;
        let Some(len) = rest[value_start..].find('"') else {
            break;
        };
        out.insert(key, rest[value_start..value_start + len].to_string());
        rest = &rest[value_start + len + 1..];
    }
    out
}

/// Reads a Kafka client properties file (`key=value` lines, `#` and `!` comments).
pub fn read_properties(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the client properties {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((key, value)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            bail!(
                "{} line {}: {line:?} is not key=value",
                path.display(),
                n + 1
            );
        };
        out.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(out)
}

fn connector(s: &TlsClientSettings) -> anyhow::Result<TlsConnector> {
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS: {e}"))?;
    let ca =
        s.ca.clone()
            .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
    let roots = Arc::new(read_roots(&ca)?);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| anyhow!("{}: {e}", ca.display()))?;
    let builder = if s.verify_certificate && s.verify_hostname {
        builder.with_webpki_verifier(webpki)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Relaxed {
                webpki,
                check_chain: s.verify_certificate,
            }))
    };
    let config = match (&s.certificate, &s.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = read_key(key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| anyhow!("{}: {e}", cert.display()))?
        }
        (Some(cert), None) => bail!(
            "ssl.certificate.location {} without ssl.key.location",
            cert.display()
        ),
        _ => builder.with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no CERTIFICATE in it", path.display());
    }
    Ok(certs)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .with_context(|| format!("{}", path.display()))?
        .ok_or_else(|| anyhow!("{}: no unencrypted PRIVATE KEY in it", path.display()))
}

fn read_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .with_context(|| format!("{}", path.display()))?;
    }
    Ok(roots)
}

/// The checks a client turned off: the host name (`ssl.endpoint.identification.algorithm`
/// empty), or the whole chain (`enable.ssl.certificate.verification=false`).
#[derive(Debug)]
struct Relaxed {
    webpki: Arc<WebPkiServerVerifier>,
    check_chain: bool,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.check_chain {
            return Ok(ServerCertVerified::assertion());
        }
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn java_and_librdkafka_spellings_give_the_same_login() {
        let rd = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "alice"),
            ("sasl.password", "s3cret"),
        ]))
        .unwrap();
        let java = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required \
                 username=\"alice\" password=\"s3cret\";",
            ),
        ]))
        .unwrap();
        for s in [rd, java] {
            let login = s.sasl.unwrap();
            assert_eq!(login.mechanism, Mechanism::Scram(Hash::Sha512));
            assert_eq!(
                (login.username.as_str(), login.password.as_str()),
                ("alice", "s3cret")
            );
        }
    }

    #[test]
    fn missing_or_wrong_settings_are_named() {
        let e = ClientSecurity::from_properties(&props(&[("security.protocol", "SASL_SSL")]))
            .unwrap_err();
        assert!(e.to_string().contains("sasl.username"), "{e}");
        let e =
            ClientSecurity::from_properties(&props(&[("security.protocol", "TLS")])).unwrap_err();
        assert!(e.to_string().contains("security.protocol"), "{e}");
        let e = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", "/nonexistent/ca.pem"),
        ]))
        .unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/ca.pem"), "{e:#}");
        let e =
            ClientSecurity::from_properties(&props(&[("ssl.truststore.type", "JKS")])).unwrap_err();
        assert!(e.to_string().contains("PEM"), "{e}");
    }

    #[test]
    fn a_password_is_never_in_debug_output() {
        let s = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.username", "alice"),
            ("sasl.password", "hunter2"),
        ]))
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}

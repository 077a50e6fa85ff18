//! TLS for SSL and SASL_SSL listeners (rustls): the broker's certificate chain and key from
//! `ssl.keystore.location` (one PEM file, as Kafka's KIP-651 allows), client certificates
//! checked against `ssl.truststore.location` as `ssl.client.auth` says, the versions of
//! `ssl.enabled.protocols`. The files are read again when they change, so certificates
//! rotate without a restart: the next connection gets the new ones.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use crate::cert_principal::{subject_dn, PrincipalRules};
use sluice_broker::BrokerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// How often the files' modification times are looked at (at most, on accepting).
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// What TLS needs from the broker's settings.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub keystore: PathBuf,
    pub truststore: Option<PathBuf>,
    /// "none", "requested" or "required".
    pub client_auth: String,
    pub protocols: Vec<String>,
    /// `ssl.principal.mapping.rules`.
    pub principal_rules: String,
}

impl TlsSettings {
    pub fn from_config(config: &BrokerConfig) -> TlsSettings {
        let truststore = config.string_setting("ssl.truststore.location");
        TlsSettings {
            keystore: PathBuf::from(config.string_setting("ssl.keystore.location")),
            truststore: (!truststore.is_empty()).then(|| PathBuf::from(truststore)),
            client_auth: config.string_setting("ssl.client.auth").to_string(),
            protocols: config
                .string_setting("ssl.enabled.protocols")
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            principal_rules: config
                .string_setting("ssl.principal.mapping.rules")
                .to_string(),
        }
    }
}

/// The acceptor of a TLS listener, rebuilt when the PEM files change.
pub struct Tls {
    settings: TlsSettings,
    rules: PrincipalRules,
    state: Mutex<Loaded>,
}

struct Loaded {
    acceptor: TlsAcceptor,
    stamps: Vec<Option<SystemTime>>,
    checked: Instant,
}

impl Tls {
    /// Reads the stores; an error names the file and what is wrong with it.
    pub fn new(settings: TlsSettings) -> Result<Tls, String> {
        let acceptor = build(&settings)?;
        let stamps = stamps(&settings);
        Ok(Tls {
            rules: PrincipalRules::parse(&settings.principal_rules)?,
            settings,
            state: Mutex::new(Loaded {
                acceptor,
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// The acceptor for the next connection: rebuilt first if a file changed since (a file
    /// that no longer reads keeps the previous acceptor, with a warning).
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut state = self.state.lock();
        if state.checked.elapsed() >= RELOAD_CHECK {
            state.checked = Instant::now();
            let now = stamps(&self.settings);
            if now != state.stamps {
                state.stamps = now;
                match build(&self.settings) {
                    Ok(acceptor) => {
                        info!(keystore = %self.settings.keystore.display(), "TLS certificates reloaded");
                        state.acceptor = acceptor;
                    }
                    Err(e) => {
                        warn!(error = %e, "TLS certificates changed but cannot be read; keeping the previous ones")
                    }
                }
            }
        }
        state.acceptor.clone()
    }
}

impl Tls {
    /// The principal of a client certificate checked in the handshake: `User:` and its
    /// subject as `ssl.principal.mapping.rules` map it; None without a certificate; an error
    /// when no rule applies (the connection is refused, as Kafka refuses it).
    pub fn client_principal(
        &self,
        connection: &rustls::ServerConnection,
    ) -> Result<Option<String>, String> {
        let Some(cert) = connection.peer_certificates().and_then(|c| c.first()) else {
            return Ok(None);
        };
        let dn = subject_dn(cert).ok_or("the client certificate's subject does not parse")?;
        match self.rules.apply(&dn) {
            Some(name) => Ok(Some(sluice_broker::auth::principal(&name))),
            None => Err(format!(
                "no ssl.principal.mapping.rules rule maps the certificate subject {dn:?}"
            )),
        }
    }
}

fn stamps(s: &TlsSettings) -> Vec<Option<SystemTime>> {
    std::iter::once(&s.keystore)
        .chain(s.truststore.as_ref())
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

fn build(s: &TlsSettings) -> Result<TlsAcceptor, String> {
    let (chain, key) = read_keystore(&s.keystore)?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = s
        .protocols
        .iter()
        .filter_map(|p| match p.as_str() {
            "TLSv1.2" => Some(&rustls::version::TLS12),
            "TLSv1.3" => Some(&rustls::version::TLS13),
            _ => None,
        })
        .collect();
    // ring: builds with the C compiler alone (aws-lc-rs, with post-quantum key exchange, needs
    // cmake); its classical key exchanges are what Kafka clients offer.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("ssl.enabled.protocols: {e}"))?;
    let builder = match (s.client_auth.as_str(), &s.truststore) {
        ("required" | "requested", Some(path)) => {
            let roots = Arc::new(read_truststore(path)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if s.client_auth == "requested" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", s.keystore.display()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The certificate chain and the private key of a PEM keystore.
fn read_keystore(
    path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let named =
        |e: &dyn std::fmt::Display| format!("ssl.keystore.location {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| named(&e))?;
    let chain = rustls_pemfile::certs(&mut BufReader::new(&file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| named(&e))?;
    if chain.is_empty() {
        return Err(named(&"no CERTIFICATE in it"));
    }
    let file = std::fs::File::open(path).map_err(|e| named(&e))?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| named(&e))?
        .ok_or_else(|| named(&"no unencrypted PRIVATE KEY in it"))?;
    Ok((chain, key))
}

/// The CA certificates of a PEM truststore.
fn read_truststore(path: &Path) -> Result<RootCertStore, String> {
    let named =
        |e: &dyn std::fmt::Display| format!("ssl.truststore.location {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| named(&e))?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut BufReader::new(file)) {
        roots
            .add(cert.map_err(|e| named(&e))?)
            .map_err(|e| named(&e))?;
    }
    if roots.is_empty() {
        return Err(named(&"no CERTIFICATE in it"));
    }
    Ok(roots)
}

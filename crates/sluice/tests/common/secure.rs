//! Security for tests: certificates made here (rcgen) and a real client with security
//! settings (tests/python/secure_client.py, confluent-kafka).

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A CA and what it signs.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A certificate for `names` (DNS names or addresses) with common name `cn`: its PEM
    /// and its key's PEM.
    pub fn sign(
        &self,
        cn: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (String, String) {
        self.sign_as(&[(DnType::CommonName, cn)], names, vec![usage])
    }

    /// A certificate whose subject is `subject` (in this order: the most general first, as
    /// certificates usually have it, `O` before `CN`), for `names`, with these usages.
    pub fn sign_as(
        &self,
        subject: &[(DnType, &str)],
        names: &[&str],
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        // Without rcgen's default common name, which would come first whatever the order.
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in subject {
            params.distinguished_name.push(kind.clone(), *value);
        }
        params.extended_key_usages = usages;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// Certificates on disk: the broker's keystore (chain and key in one PEM) and the CA.
pub struct Files {
    dir: tempfile::TempDir,
}

#[allow(clippy::new_without_default)]
impl Files {
    pub fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// The broker's keystore (`broker.pem`: a certificate for localhost and 127.0.0.1 signed by
/// `ca`, and its key) and the CA (`ca.pem`) written to `files`: the keystore's path.
pub fn broker_keystore(files: &Files, ca: &Ca) -> PathBuf {
    let (cert, key) = ca.sign(
        "broker",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    files.write("ca.pem", &ca.pem());
    files.write("broker.pem", &format!("{cert}{key}"))
}

/// Runs tests/python/secure_client.py: its exit code and its JSON line.
pub fn client(bootstrap: &str, topic: &str, props: &[(&str, &str)]) -> (i32, serde_json::Value) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/secure_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(bootstrap)
        .arg(topic)
        .arg("5")
        .args(props.iter().map(|(k, v)| format!("{k}={v}")))
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let json = serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "no JSON from the client:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

pub fn values(json: &serde_json::Value) -> Vec<String> {
    json["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

pub fn expected() -> Vec<String> {
    (0..5).map(|i| format!("v-{i}")).collect()
}

/// An etcd that speaks only TLS and requires a client certificate signed by `ca`, and the
/// `sluice serve` flags that reach it (`--etcd-cacert`, `--etcd-cert`, `--etcd-key`: the
/// first two alone leave out the certificate).
pub fn etcd_requiring_client_certificates(
    ca: &Ca,
    files: &Files,
) -> (super::cluster::Etcd, Vec<String>) {
    let (cert, key) = ca.sign(
        "etcd",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let server_cert = files.write("etcd-server.pem", &cert);
    let server_key = files.write("etcd-server.key", &key);
    let ca_file = files.write("etcd-ca.pem", &ca.pem());
    let (cert, key) = ca.sign("broker", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let client_cert = files.write("etcd-client.pem", &cert);
    let client_key = files.write("etcd-client.key", &key);
    let path = |p: &std::path::Path| p.display().to_string();
    let etcd = super::cluster::Etcd::start_secure(super::cluster::Secure {
        server_args: vec![
            "--cert-file".into(),
            path(&server_cert),
            "--key-file".into(),
            path(&server_key),
            "--client-cert-auth".into(),
            "--trusted-ca-file".into(),
            path(&ca_file),
        ],
        client_args: vec![
            "--cacert".into(),
            path(&ca_file),
            "--cert".into(),
            path(&client_cert),
            "--key".into(),
            path(&client_key),
        ],
        tls: true,
    });
    let flags = vec![
        "--etcd-cacert".to_string(),
        path(&ca_file),
        "--etcd-cert".to_string(),
        path(&client_cert),
        "--etcd-key".to_string(),
        path(&client_key),
    ];
    (etcd, flags)
}

/// A JWKS with one P-256 key of id `kid`.
pub fn jwks(key: &KeyPair, kid: &str) -> String {
    let point = key.public_key_raw(); // 0x04 | X | Y
    serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
        "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&point[1..33]), "y": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]})
    .to_string()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token for `sub`, signed by `key` as `kid`, with these audience, issuer and expiry.
pub fn token(key: &KeyPair, kid: &str, sub: &str, aud: &str, iss: &str, exp: i64) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_string());
    let claims = serde_json::json!({
        "sub": sub, "aud": aud, "iss": iss, "exp": exp, "iat": now(),
    });
    let signing = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    encode(&header, &claims, &signing).unwrap()
}

//! SSL listeners beside PLAINTEXT ones, with certificates made here (rcgen) and a real client
//! (confluent-kafka, i.e. librdkafka): produce and consume over TLS, Metadata naming the
//! listener the client came in on, mutual TLS, the wrong protocol on either port, and a
//! certificate rotated on disk served to the next connection.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Broker;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A CA and what it signs.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A certificate for `names` (DNS names or addresses) with common name `cn`: its PEM
    /// and its key's PEM.
    fn sign(&self, cn: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// Certificates on disk: the broker's keystore (chain and key in one PEM) and the CA.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A broker with a PLAINTEXT listener (its usual port) and an SSL one; `extra` settings.
fn broker_with_ssl(files: &Files, ca: &Ca, extra: &str) -> (Broker, u16) {
    let (cert, key) = ca.sign(
        "broker",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    files.write("broker.pem", &format!("{cert}{key}"));
    files.write("ca.pem", &ca.pem());
    let ssl_port = common::free_port();
    let keystore = files.path("broker.pem");
    let b = Broker::start_naming_port(|port| {
        format!(
            "listeners = \"PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{ssl_port}\"\n\
             \"ssl.keystore.location\" = \"{keystore}\"\n{extra}"
        )
    });
    (b, ssl_port)
}

/// Runs tests/python/secure_client.py: its exit code and its JSON line.
fn client(bootstrap: &str, topic: &str, props: &[(&str, &str)]) -> (i32, serde_json::Value) {
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

fn values(json: &serde_json::Value) -> Vec<String> {
    json["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn expected() -> Vec<String> {
    (0..5).map(|i| format!("v-{i}")).collect()
}

#[test]
fn ssl_and_plaintext_listeners_side_by_side() {
    let ca = Ca::new("Sluice test CA");
    let files = Files::new();
    let (broker, ssl_port) = broker_with_ssl(&files, &ca, "");
    let ca_path = files.path("ca.pem");
    let tls = format!("127.0.0.1:{ssl_port}");
    let (code, json) = client(
        &tls,
        "over-tls",
        &[("security.protocol", "SSL"), ("ssl.ca.location", &ca_path)],
    );
    assert_eq!(code, 0, "{json}");
    assert_eq!(values(&json), expected());
    assert_eq!(
        json["brokers"],
        serde_json::json!([tls]),
        "Metadata names the SSL listener to its clients"
    );
    let (code, json) = client(&broker.bootstrap(), "over-tls", &[]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["brokers"], serde_json::json!([broker.bootstrap()]));
    assert_eq!(values(&json), expected(), "the same topic over PLAINTEXT");

    // A certificate the client does not trust: refused by the client.
    let other = Ca::new("Another CA");
    let other_path = files.write("other-ca.pem", &other.pem());
    let (code, _) = client(
        &tls,
        "over-tls",
        &[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", other_path.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 3);

    // A plaintext request on the TLS port, and a TLS client on the plaintext port: each
    // connection is closed and the broker logs one line about it.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", ssl_port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff])
            .unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).expect("closed, not left open");
        // At most a TLS alert record (content type 21), never a Kafka answer.
        assert!(answer.is_empty() || answer[0] == 21, "{answer:?}");
    }
    let (code, _) = client(
        &broker.bootstrap(),
        "over-tls",
        &[("security.protocol", "SSL"), ("ssl.ca.location", &ca_path)],
    );
    assert_eq!(code, 3);
    let log = broker.log_text();
    assert!(log.contains("TLS handshake failed"), "{log}");
    assert!(
        log.contains("outside 8..="),
        "the TLS ClientHello read as a length:\n{log}"
    );
    assert!(!log.contains("panicked"));
}

#[test]
fn mutual_tls_takes_only_certificates_of_the_trusted_ca() {
    let ca = Ca::new("Sluice test CA");
    let files = Files::new();
    let (_broker, ssl_port) = broker_with_ssl(
        &files,
        &ca,
        &format!(
            "\"ssl.client.auth\" = \"required\"\n\"ssl.truststore.location\" = \"{}\"\n",
            files.path("ca.pem")
        ),
    );
    let tls = format!("127.0.0.1:{ssl_port}");
    let ca_path = files.path("ca.pem");
    let (cert, key) = ca.sign("alice", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let alice_cert = files.write("alice.pem", &cert);
    let alice_key = files.write("alice.key", &key);
    let other = Ca::new("Another CA");
    let (cert, key) = other.sign("mallory", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let mallory_cert = files.write("mallory.pem", &cert);
    let mallory_key = files.write("mallory.key", &key);
    let with_cert = |cert: &Path, key: &Path| {
        client(
            &tls,
            "mtls",
            &[
                ("security.protocol", "SSL"),
                ("ssl.ca.location", &ca_path),
                ("ssl.certificate.location", cert.to_str().unwrap()),
                ("ssl.key.location", key.to_str().unwrap()),
            ],
        )
    };
    let (code, json) = with_cert(&alice_cert, &alice_key);
    assert_eq!(code, 0, "{json}");
    assert_eq!(values(&json), expected());
    let (code, _) = with_cert(&mallory_cert, &mallory_key);
    assert_eq!(code, 3, "a certificate from another CA");
    let (code, _) = client(
        &tls,
        "mtls",
        &[("security.protocol", "SSL"), ("ssl.ca.location", &ca_path)],
    );
    assert_eq!(code, 3, "no certificate");
}

/// The certificate a TLS server at `port` presents (PEM), as Python's ssl module reads it.
fn served_certificate(port: u16) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import ssl; print(ssl.get_server_certificate(('127.0.0.1', {port})))"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// PEM text without its line breaks, for comparing certificates.
fn flat(pem: &str) -> String {
    pem.split_whitespace().collect()
}

#[test]
fn a_certificate_rotated_on_disk_is_served_to_the_next_connection() {
    let ca = Ca::new("Sluice test CA");
    let files = Files::new();
    let (broker, ssl_port) = broker_with_ssl(&files, &ca, "");
    let first = std::fs::read_to_string(files.path("broker.pem")).unwrap();
    assert!(flat(&first).contains(&flat(&served_certificate(ssl_port))));
    let (cert, key) = ca.sign(
        "broker-renewed",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    // Written beside and renamed over, as certificate tools do.
    let next = files.write("broker.pem.new", &format!("{cert}{key}"));
    std::fs::rename(&next, files.path("broker.pem")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !flat(&cert).contains(&flat(&served_certificate(ssl_port))) {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was not served"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(broker.log_text().contains("TLS certificates reloaded"));
    // Clients that trust the CA go on working.
    let (code, json) = client(
        &format!("127.0.0.1:{ssl_port}"),
        "rotated",
        &[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", &files.path("ca.pem")),
        ],
    );
    assert_eq!(code, 0, "{json}");
}

//! SSL listeners beside PLAINTEXT ones, with certificates made here (rcgen) and a real client
//! (confluent-kafka, i.e. librdkafka): produce and consume over TLS, Metadata naming the
//! listener the client came in on, mutual TLS, the wrong protocol on either port, and a
//! certificate rotated on disk served to the next connection.

mod common;

use std::path::Path;
use std::process::Command;

use common::secure::{client, expected, values, Ca, Files};
use common::Broker;
use rcgen::ExtendedKeyUsagePurpose;

/// A broker with a PLAINTEXT listener (its usual port) and an SSL one; `extra` settings.
fn broker_with_ssl(files: &Files, ca: &Ca, extra: &str) -> (Broker, u16) {
    let keystore = common::secure::broker_keystore(files, ca)
        .display()
        .to_string();
    let ssl_port = common::free_port();
    let b = Broker::start_naming_port(|port| {
        format!(
            "listeners = \"PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{ssl_port}\"\n\
             \"ssl.keystore.location\" = \"{keystore}\"\n{extra}"
        )
    });
    (b, ssl_port)
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
            ("test.timeout.s", "4"),
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
        &[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", &ca_path),
            ("test.timeout.s", "4"),
        ],
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
                ("test.timeout.s", "6"),
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
        &[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", &ca_path),
            ("test.timeout.s", "4"),
        ],
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

/// AlterPartition sent over mutual TLS with `cert` (PEM chain and key in one file) to
/// `port`: the top-level error code, or Err when the connection is refused.
async fn alter_partition_with(port: u16, ca: &str, cert: &Path) -> Result<i16, String> {
    use kafka_protocol::messages::{
        AlterPartitionRequest, AlterPartitionResponse, ApiKey, BrokerId,
    };
    let props: std::collections::BTreeMap<String, String> = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca),
        ("ssl.keystore.location", cert.to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let security = sluice_client::ClientSecurity::from_properties(&props).unwrap();
    let conn = sluice_client::Conn::connect_broker("127.0.0.1", port, "test".into(), &security)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let r: AlterPartitionResponse = conn
        .call_at(
            ApiKey::AlterPartition,
            2,
            &AlterPartitionRequest::default().with_broker_id(BrokerId(1)),
        )
        .await
        .map_err(|e| format!("{e:#}"))?;
    Ok(r.error_code)
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_subjects_become_principals_by_the_mapping_rules() {
    use rcgen::DnType;
    let ca = Ca::new("Sluice test CA");
    let files = Files::new();
    // The SSL listener is the inter-broker one: broker-only requests need a super user.
    let (_broker, ssl_port) = broker_with_ssl(
        &files,
        &ca,
        &format!(
            "\"ssl.client.auth\" = \"required\"\n\
             \"ssl.truststore.location\" = \"{}\"\n\
             \"inter.broker.listener.name\" = \"SSL\"\n\
             \"ssl.endpoint.identification.algorithm\" = \"\"\n\
             \"super.users\" = \"User:broker;User:CN=admin\"\n\
             \"ssl.principal.mapping.rules\" = \"RULE:^CN=([A-Za-z]+),OU=Brokers,O=Sluice$/$1/L, RULE:^CN=(.*),O=Sluice$/$1/, DEFAULT\"\n",
            files.path("ca.pem")
        ),
    );
    let ca_path = files.path("ca.pem");
    let client_cert = |name: &str, subject: &[(DnType, &str)]| {
        let (cert, key) = ca.sign_as(subject, &[], vec![ExtendedKeyUsagePurpose::ClientAuth]);
        files.write(name, &format!("{cert}{key}"))
    };
    // CN=BROKER,OU=Brokers,O=Sluice maps to "broker" (lower-cased): a super user.
    let broker = client_cert(
        "b.pem",
        &[
            (DnType::OrganizationName, "Sluice"),
            (DnType::OrganizationalUnitName, "Brokers"),
            (DnType::CommonName, "BROKER"),
        ],
    );
    // CN=alice,O=Sluice maps to "alice"; CN=admin (no rule matches) stays "CN=admin".
    let alice = client_cert(
        "a.pem",
        &[
            (DnType::OrganizationName, "Sluice"),
            (DnType::CommonName, "alice"),
        ],
    );
    let admin = client_cert("admin.pem", &[(DnType::CommonName, "admin")]);
    const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    let code = alter_partition_with(ssl_port, &ca_path, &broker)
        .await
        .unwrap();
    assert_ne!(
        code, CLUSTER_AUTHORIZATION_FAILED,
        "User:broker is a super user"
    );
    let code = alter_partition_with(ssl_port, &ca_path, &admin)
        .await
        .unwrap();
    assert_ne!(
        code, CLUSTER_AUTHORIZATION_FAILED,
        "User:CN=admin is a super user"
    );
    let code = alter_partition_with(ssl_port, &ca_path, &alice)
        .await
        .unwrap();
    assert_eq!(code, CLUSTER_AUTHORIZATION_FAILED, "User:alice is not");
}

//! SASL listeners (SASL_PLAINTEXT and SASL_SSL beside PLAINTEXT) with real clients
//! (confluent-kafka, i.e. librdkafka): users created with the admin client's
//! alter_user_scram_credentials and with `sluice user`, then PLAIN, SCRAM-SHA-256 and
//! SCRAM-SHA-512 logins that succeed with the right password and fail with
//! SASL_AUTHENTICATION_FAILED for a wrong one, an unknown or a deleted user.

mod common;

use std::process::Command;

use common::secure::{client, expected, values, Ca, Files};
use common::Broker;

/// A broker with PLAINTEXT (its usual port), SASL_PLAINTEXT and SASL_SSL listeners.
fn broker_with_sasl(files: &Files, ca: &Ca) -> (Broker, u16, u16) {
    let keystore = common::secure::broker_keystore(files, ca);
    let (sasl, sasl_ssl) = (common::free_port(), common::free_port());
    let b = Broker::start_naming_port(|port| {
        format!(
            "listeners = \"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl},SASL_SSL://127.0.0.1:{sasl_ssl}\"\n\
             \"ssl.keystore.location\" = \"{}\"\n",
            keystore.display()
        )
    });
    (b, sasl, sasl_ssl)
}

/// tests/python/scram_admin.py at `bootstrap`: its JSON answer.
fn scram_admin(bootstrap: &str, args: &[&str]) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/scram_admin.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(bootstrap)
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
}

fn login<'a>(mechanism: &'a str, user: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", mechanism),
        ("sasl.username", user),
        ("sasl.password", password),
    ]
}

/// `sluice_authentications_total{result="failed"}` on the broker's /metrics.
fn failed_authentications(b: &Broker) -> u64 {
    let (_, body) = common::http_get(b, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix("sluice_authentications_total{result=\"failed\"} "))
        .and_then(|v| v.parse().ok())
        .expect("the authentications counter")
}

#[test]
fn scram_and_plain_logins_against_users_made_by_the_admin_client() {
    let ca = Ca::new("Sluice test CA");
    let files = Files::new();
    let (broker, sasl, sasl_ssl) = broker_with_sasl(&files, &ca);
    let plain_port = broker.bootstrap();
    let set = scram_admin(
        &plain_port,
        &[
            "set",
            "alice",
            "alice-secret",
            "SCRAM-SHA-256",
            "SCRAM-SHA-512",
        ],
    );
    assert_eq!(set, serde_json::json!({"alice": "ok"}));
    let described = scram_admin(&plain_port, &["describe", "alice"]);
    assert_eq!(
        described["alice"].as_array().unwrap().len(),
        2,
        "{described}"
    );
    let bad = scram_admin(&plain_port, &["delete", "nobody", "SCRAM-SHA-256"]);
    assert_eq!(bad, serde_json::json!({"nobody": "RESOURCE_NOT_FOUND"}));

    let at = format!("127.0.0.1:{sasl}");
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
        let (code, json) = client(
            &at,
            "sasl-topic",
            &login(mechanism, "alice", "alice-secret"),
        );
        assert_eq!(code, 0, "{mechanism}: {json}");
        assert_eq!(values(&json), expected(), "{mechanism}");
        assert_eq!(
            json["brokers"],
            serde_json::json!([at]),
            "the SASL listener's endpoint"
        );
    }
    let before = failed_authentications(&broker);
    for (mechanism, user, password) in [
        ("SCRAM-SHA-256", "alice", "wrong"),
        ("SCRAM-SHA-512", "mallory", "alice-secret"),
        ("PLAIN", "alice", "wrong"),
    ] {
        let mut props = login(mechanism, user, password);
        props.push(("test.timeout.s", "4"));
        let (code, json) = client(&at, "sasl-topic", &props);
        assert_eq!(code, 3, "{mechanism} {user}/{password}: {json}");
        let said = json.to_string();
        assert!(said.contains("Authentication failed"), "{said}");
    }
    assert!(failed_authentications(&broker) >= before + 3);

    // SASL_SSL: SCRAM over TLS.
    let at_tls = format!("127.0.0.1:{sasl_ssl}");
    let ca_path = files.path("ca.pem");
    let mut props = login("SCRAM-SHA-512", "alice", "alice-secret");
    props[0] = ("security.protocol", "SASL_SSL");
    props.push(("ssl.ca.location", &ca_path));
    let (code, json) = client(&at_tls, "sasl-topic", &props);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["brokers"], serde_json::json!([at_tls]));

    // A deleted user's next connection is refused.
    let deleted = scram_admin(
        &plain_port,
        &["delete", "alice", "SCRAM-SHA-256", "SCRAM-SHA-512"],
    );
    assert_eq!(deleted, serde_json::json!({"alice": "ok"}));
    let mut props = login("SCRAM-SHA-256", "alice", "alice-secret");
    props.push(("test.timeout.s", "4"));
    let (code, _) = client(&at, "sasl-topic", &props);
    assert_eq!(code, 3);
    let log = broker.log_text();
    assert!(log.contains("authentication failed"));
    assert!(!log.contains("alice-secret"), "a password reached the log");
}

#[test]
fn requests_before_authentication_close_the_connection() {
    use std::io::{Read, Write};
    let ca = Ca::new("Sluice test CA");
    let files = Files::new();
    let (_broker, sasl, _) = broker_with_sasl(&files, &ca);
    // Metadata v1 with no topics list, before any SaslHandshake.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", sasl)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(&[
        0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ])
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("closed");
    assert!(
        answer.is_empty(),
        "answered before authentication: {answer:?}"
    );
}

#[test]
fn users_made_with_the_cli_log_in_until_deleted() {
    let ca = Ca::new("Sluice test CA");
    let files = Files::new();
    let (broker, sasl, _) = broker_with_sasl(&files, &ca);
    let (code, out, err) =
        common::sluice_at(&broker, "user", &["create", "bob", "--password", "bob-pw"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = common::sluice_at(&broker, "user", &["list", "--output", "json"]);
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["user"], "bob");
    assert_eq!(listed[0]["mechanisms"].as_array().unwrap().len(), 2);
    let at = format!("127.0.0.1:{sasl}");
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        let (code, json) = client(&at, "cli-users", &login(mechanism, "bob", "bob-pw"));
        assert_eq!(code, 0, "{mechanism}: {json}");
    }
    let (code, out, err) = common::sluice_at(&broker, "user", &["delete", "bob"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = common::sluice_at(&broker, "user", &["delete", "bob"]);
    assert_eq!(code, 1);
    assert!(err.contains("RESOURCE_NOT_FOUND"), "{err}");
    let mut props = login("SCRAM-SHA-512", "bob", "bob-pw");
    props.push(("test.timeout.s", "4"));
    let (code, _) = client(&at, "cli-users", &props);
    assert_eq!(code, 3, "a deleted user's login");
}

/// KIP-368: with connections.max.reauth.ms a login lasts that long. librdkafka (rdkafka)
/// logs in again on its connection and keeps producing; a client that does not (Sluice's
/// own) has its connection closed at its next request after the expiry.
#[tokio::test(flavor = "multi_thread")]
async fn logins_expire_and_clients_log_in_again_on_their_connection() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let sasl = common::free_port();
    let broker = Broker::start_naming_port(|port| {
        format!(
            "listeners = \"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl}\"\n\
             \"connections.max.reauth.ms\" = 1500\n"
        )
    });
    let (code, out, err) = common::sluice_at(
        &broker,
        "user",
        &["create", "alice", "--password", "alice-pw"],
    );
    assert_eq!(code, 0, "{out}{err}");
    broker.create_topic("reauth", 1, &[]).await;
    let at = format!("127.0.0.1:{sasl}");

    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &at)
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "SCRAM-SHA-256")
        .set("sasl.username", "alice")
        .set("sasl.password", "alice-pw")
        .create()
        .unwrap();
    for i in 0..3 {
        producer
            .send(
                FutureRecord::<(), _>::to("reauth").payload(&format!("r-{i}")),
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("record {i}: {e}"));
        tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    }
    assert!(
        broker.log_text().contains("re-authenticated"),
        "{}",
        broker.log_text()
    );

    let props: std::collections::BTreeMap<String, String> = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "alice"),
        ("sasl.password", "alice-pw"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let security = sluice_client::ClientSecurity::from_properties(&props).unwrap();
    let conn = sluice_client::Conn::connect_with(&at, &security)
        .await
        .unwrap();
    let ask = || async {
        conn.call::<_, kafka_protocol::messages::MetadataResponse>(
            kafka_protocol::messages::ApiKey::Metadata,
            &kafka_protocol::messages::MetadataRequest::default().with_topics(None),
        )
        .await
    };
    assert!(ask().await.is_ok(), "served while the login lasts");
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    assert!(ask().await.is_err(), "closed after the login expired");
}

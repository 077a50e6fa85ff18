//! The HTTP listener against the real binary: `/healthz` and `/readyz` answer, `/metrics` is
//! Prometheus text (checked by the prometheus-client Python library's parser too), and its
//! counters move with traffic from real clients.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::group::produce;
use common::Broker;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

fn get(broker: &Broker, path: &str) -> (u16, String) {
    common::http_get(broker, path)
}

/// The samples of a Prometheus text exposition by `name{labels}`; panics on a line that is
/// not a comment, blank or `name{labels} value`, or a sample whose family has no TYPE.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut typed = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    // Each family's lines come together: once another family starts, it does not come back.
    let mut finished = std::collections::BTreeSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "no TYPE for {name}");
        if family != current {
            assert!(!finished.contains(family), "{family} is split in two runs");
            finished.insert(std::mem::replace(&mut current, family.to_string()));
        }
        out.insert(series.to_string(), value);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics_that_move_with_traffic() {
    let broker = Broker::start();
    assert_eq!(get(&broker, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get(&broker, "/readyz"), (200, "ready\n".to_string()));
    assert_eq!(get(&broker, "/nothing").0, 404);

    broker.create_topic("m", 1, &[]).await;
    produce(&broker, "m", 1, 100, "r").await;
    let consumer = broker.consumer(&[("group.id", "metrics-g")]);
    let mut seen = 0;
    common::consume(&consumer, "m", &[0], Offset::Beginning, 100, |_| seen += 1);
    assert_eq!(seen, 100);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("m", 0, Offset::Offset(60))
        .unwrap();
    consumer.commit(&commit, CommitMode::Sync).unwrap();

    let (status, text) = get(&broker, "/metrics");
    assert_eq!(status, 200);
    let m = samples(&text);
    let at = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in\n{text}"));
    assert!(at("sluice_requests_total{api=\"Produce\"}") >= 1.0);
    assert!(at("sluice_requests_total{api=\"Fetch\"}") >= 1.0);
    assert!(at("sluice_request_duration_seconds_count{api=\"Produce\"}") >= 1.0);
    assert!(at("sluice_request_bytes_total{api=\"Produce\"}") > 0.0);
    assert!(at("sluice_connections") >= 1.0);
    assert_eq!(at("sluice_topic_records_in_total{topic=\"m\"}"), 100.0);
    assert!(at("sluice_topic_bytes_out_total{topic=\"m\"}") > 0.0);
    assert_eq!(at("sluice_topic_records_out_total{topic=\"m\"}"), 100.0);
    assert_eq!(
        at("sluice_partition_log_end_offset{topic=\"m\",partition=\"0\"}"),
        100.0
    );
    assert_eq!(
        at("sluice_partition_high_watermark{topic=\"m\",partition=\"0\"}"),
        100.0
    );
    assert_eq!(
        at("sluice_consumer_group_lag{group=\"metrics-g\",topic=\"m\",partition=\"0\"}"),
        40.0
    );
    assert_eq!(at("sluice_under_replicated_partitions"), 0.0);
    assert!(at("sluice_partition_size_bytes{topic=\"m\",partition=\"0\"}") > 0.0);
    assert!(at("sluice_fsync_duration_seconds_count") >= 1.0);

    // More traffic, higher counters; a greater lag.
    produce(&broker, "m", 1, 10, "more").await;
    let m2 = samples(&get(&broker, "/metrics").1);
    assert_eq!(m2["sluice_topic_records_in_total{topic=\"m\"}"], 110.0);
    assert!(
        m2["sluice_requests_total{api=\"Produce\"}"] > m["sluice_requests_total{api=\"Produce\"}"]
    );
    assert_eq!(
        m2["sluice_consumer_group_lag{group=\"metrics-g\",topic=\"m\",partition=\"0\"}"],
        50.0
    );

    // An independent parser agrees it is Prometheus text.
    let url = format!("http://127.0.0.1:{}/metrics", broker.http_port);
    let script = "import sys, urllib.request\n\
from prometheus_client.parser import text_string_to_metric_families\n\
text = urllib.request.urlopen(sys.argv[1]).read().decode()\n\
families = list(text_string_to_metric_families(text))\n\
names = {f.name for f in families}\n\
assert 'sluice_request_duration_seconds' in names, names\n\
print(len(families))\n";
    let out = Command::new("python3")
        .args(["-c", script, &url])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "prometheus_client refused /metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One raw HTTP/1.1 request (`head` without the request line's end, headers included);
/// the status code, or 0 if no answer came within `wait`.
fn raw_http(broker: &Broker, request: &str, wait: std::time::Duration) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", broker.http_port)).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = [0u8; 64];
    match s.read(&mut answer) {
        Ok(n) if n > 12 => std::str::from_utf8(&answer[9..12])
            .unwrap()
            .parse()
            .unwrap_or(0),
        _ => 0,
    }
}

/// Before: any Host header was answered (a web page could read and write the REST API
/// through a DNS name of its own), `text/plain` and cross-origin POSTs created topics, and 64
/// slow request bodies held every place of the listener.
#[test]
fn the_http_listener_refuses_foreign_hosts_cross_site_writes_and_slow_bodies() {
    use std::time::Duration;
    let broker = Broker::start();
    let wait = Duration::from_secs(5);
    let cluster = get(&broker, "/v3/clusters").1;
    let id: serde_json::Value = serde_json::from_str(&cluster).unwrap();
    let id = id["data"][0]["cluster_id"].as_str().unwrap().to_string();
    let port = broker.http_port;
    let get_with_host = |host: &str| {
        raw_http(
            &broker,
            &format!("GET /v3/clusters HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            wait,
        )
    };
    assert_eq!(get_with_host(&format!("127.0.0.1:{port}")), 200);
    assert_eq!(get_with_host(&format!("localhost:{port}")), 200);
    assert_eq!(get_with_host("rebound.attacker.example"), 403);
    assert_eq!(
        raw_http(
            &broker,
            "GET /healthz HTTP/1.1\r\nHost: rebound.attacker.example\r\nConnection: close\r\n\r\n",
            wait
        ),
        200,
        "health checks stay open"
    );
    let create = |name: &str, content_type: &str, origin: Option<&str>| {
        let body = format!("{{\"topic_name\":\"{name}\",\"partitions_count\":1}}");
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        raw_http(
            &broker,
            &format!(
                "POST /v3/clusters/{id}/topics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{origin}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
            wait,
        )
    };
    assert_eq!(create("from-a-form", "text/plain", None), 415);
    assert_eq!(
        create(
            "cross-site",
            "application/json",
            Some("https://attacker.example")
        ),
        403
    );
    assert_eq!(
        create(
            "same-site",
            "application/json",
            Some(&format!("http://127.0.0.1:{port}"))
        ),
        201
    );
    // 70 clients that never finish their bodies; the listener still answers.
    let mut slow = Vec::new();
    for i in 0..70 {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "POST /v3/clusters/{id}/topics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"topic_name\":\"slow-{i}\"").unwrap();
        slow.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        get_with_host(&format!("127.0.0.1:{port}")),
        200,
        "answered beside slow bodies"
    );
    let listed = get(&broker, "/v3/clusters").0;
    assert_eq!(listed, 200);
    drop(slow);
}

/// `raw_http` of a GET of `path` with these extra header lines.
fn get_with(broker: &Broker, path: &str, headers: &str) -> u16 {
    raw_http(
        broker,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n"),
        std::time::Duration::from_secs(5),
    )
}

#[test]
fn the_http_listener_asks_for_a_scram_user_or_a_token_when_told_to() {
    use base64::Engine as _;
    use common::secure::{jwks, now, token, Files};
    let files = Files::new();
    let key = rcgen::KeyPair::generate().unwrap();
    let jwks_path = files.write("jwks.json", &jwks(&key, "k1"));
    let broker = Broker::start_with_config(&format!(
        "\"http.authentication\" = \"basic,bearer\"\n\
         \"http.metrics.authenticated\" = false\n\
         \"sasl.oauthbearer.jwks.endpoint.url\" = \"file://{}\"\n",
        jwks_path.display()
    ));
    let (code, out, err) = common::sluice_at(
        &broker,
        "user",
        &["create", "alice", "--password", "alice-pw"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let basic = |user: &str, password: &str| {
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    assert_eq!(get_with(&broker, "/v3/clusters", ""), 401);
    assert_eq!(get_with(&broker, "/", ""), 401, "the console too");
    assert_eq!(
        get_with(&broker, "/v3/clusters", &basic("alice", "alice-pw")),
        200
    );
    assert_eq!(
        get_with(&broker, "/v3/clusters", &basic("alice", "nope")),
        401
    );
    assert_eq!(
        get_with(&broker, "/v3/clusters", &basic("nobody", "alice-pw")),
        401
    );
    assert_eq!(get_with(&broker, "/healthz", ""), 200, "always open");
    assert_eq!(get_with(&broker, "/metrics", ""), 200, "opened on its own");
    let iss = "https://idp.example";
    let bearer = |jwt: String| format!("Authorization: Bearer {jwt}\r\n");
    let good = token(&key, "k1", "svc", "any", iss, now() + 600);
    assert_eq!(get_with(&broker, "/v3/clusters", &bearer(good)), 200);
    let expired = token(&key, "k1", "svc", "any", iss, now() - 600);
    assert_eq!(get_with(&broker, "/v3/clusters", &bearer(expired)), 401);
    // A write with credentials goes through the other checks as before.
    let cluster: serde_json::Value = serde_json::from_str(&{
        let (_, body) = common::http_get(&broker, "/healthz");
        assert_eq!(body, "ok\n");
        let mut s = std::net::TcpStream::connect(("127.0.0.1", broker.http_port)).unwrap();
        use std::io::{Read, Write};
        write!(
            s,
            "GET /v3/clusters HTTP/1.1\r\nHost: localhost\r\n{}Connection: close\r\n\r\n",
            basic("alice", "alice-pw")
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        raw.split_once("\r\n\r\n").unwrap().1.to_string()
    })
    .unwrap();
    let id = cluster["data"][0]["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = r#"{"topic_name":"made-over-http"}"#;
    let create = |auth: &str| {
        raw_http(
            &broker,
            &format!(
                "POST /v3/clusters/{id}/topics HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
            std::time::Duration::from_secs(10),
        )
    };
    assert_eq!(create(""), 401);
    assert!(matches!(create(&basic("alice", "alice-pw")), 200 | 201));
}

/// A GET over HTTPS to `port`, trusting `ca`: the status code.
async fn https_get(port: u16, ca: &str, path: &str, headers: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let props: std::collections::BTreeMap<String, String> =
        [("security.protocol", "SSL"), ("ssl.ca.location", ca)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let security = sluice_client::ClientSecurity::from_properties(&props).unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = security
        .connector()
        .unwrap()
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer[9..12]).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_listener_serves_https_with_its_own_certificate() {
    use common::secure::{Ca, Files};
    let ca = Ca::new("Sluice test CA");
    let files = Files::new();
    let (cert, key) = ca.sign(
        "console",
        &["localhost", "127.0.0.1"],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let keystore = files.write("http.pem", &format!("{cert}{key}"));
    let ca_path = files.write("ca.pem", &ca.pem()).display().to_string();
    let broker = Broker::start_with_config(&format!(
        "\"http.ssl.keystore.location\" = \"{}\"\n\"http.authentication\" = \"basic\"\n",
        keystore.display()
    ));
    let (code, out, err) =
        common::sluice_at(&broker, "user", &["create", "ops", "--password", "ops-pw"]);
    assert_eq!(code, 0, "{out}{err}");
    let port = broker.http_port;
    assert_eq!(https_get(port, &ca_path, "/healthz", "").await, 200);
    assert_eq!(https_get(port, &ca_path, "/v3/clusters", "").await, 401);
    let auth = "Authorization: Basic b3BzOm9wcy1wdw==\r\n"; // ops:ops-pw
    assert_eq!(https_get(port, &ca_path, "/v3/clusters", auth).await, 200);
    assert_eq!(
        https_get(port, &ca_path, "/", auth).await,
        200,
        "the console"
    );
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    assert_eq!(
        raw_http(
            &broker,
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
            std::time::Duration::from_secs(3)
        ),
        0
    );
}

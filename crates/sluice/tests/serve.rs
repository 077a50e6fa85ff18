//! `sluice serve` start-up: environment variables, config errors, the data-directory lock.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::Broker;
use rdkafka::consumer::Consumer;

fn serve(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg("serve").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_second_broker_on_the_same_data_directory_is_refused() {
    let broker = Broker::start();
    let out = serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            broker.data_dir().to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another broker"), "{err}");
}

#[test]
fn config_errors_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "log.segment.bytez = 5\n").unwrap();
    let data = dir.path().join("data");
    let out = serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.segment.bytez"));

    std::fs::write(&config, "\"num.partitions\" = \"several\"\n").unwrap();
    let out = serve(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("num.partitions"));

    let out = serve(
        &[
            "--listen",
            "not-an-address",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen not-an-address"));
}

#[test]
fn settings_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let data = dir.path().join("env-data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .env("SLUICE_LISTEN", &listen)
        .env("SLUICE_DATA_DIR", &data)
        .env("SLUICE_NODE_ID", "7")
        .env("SLUICE_ADVERTISED", "broker.example:9999")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..500 {
        if std::net::TcpStream::connect(&listen).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(up, "listening on SLUICE_LISTEN");
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &listen)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    assert_eq!(md.brokers()[0].id(), 7);
    assert_eq!(
        (md.brokers()[0].host(), md.brokers()[0].port()),
        ("broker.example", 9999)
    );
    assert!(data.join("meta.json").exists());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn an_http_address_that_is_taken_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http = taken.local_addr().unwrap().to_string();
    let out = serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--http-listen",
            &http,
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen for HTTP on"), "{err}");
}

#[test]
fn json_logs_are_one_object_a_line_and_levels_come_from_sluice_log() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "off",
            "--data-dir",
        ])
        .arg(&data)
        .env("SLUICE_LOG_FORMAT", "json")
        .env("SLUICE_LOG", "warn,sluice_broker=debug,sluice_kafka=info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in stderr.by_ref() {
        let line = line.unwrap();
        let ready = line.contains("Kafka listener ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    // SAFETY: a plain signal to the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    lines.extend(stderr.map(Result::unwrap));
    assert!(child.wait().unwrap().success());
    let logged: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for l in &logged {
        assert!(
            l["level"].is_string() && l["fields"]["message"].is_string(),
            "{l}"
        );
    }
    let targets_at = |level: &str| -> Vec<String> {
        logged
            .iter()
            .filter(|l| l["level"] == level)
            .map(|l| l["target"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert!(
        targets_at("DEBUG")
            .iter()
            .all(|t| t.starts_with("sluice_broker")),
        "debug only where asked: {lines:?}"
    );
    assert!(
        targets_at("INFO")
            .iter()
            .all(|t| !t.starts_with("sluice_etcd") && t != "sluice"),
        "info only from the modules that allow it: {lines:?}"
    );
    assert!(
        targets_at("INFO").iter().any(|t| t == "sluice_kafka"),
        "{lines:?}"
    );
}

/// A listener open to the network without authentication is named in a warning at start; a
/// loopback one is not.
#[test]
fn a_listener_open_to_the_network_without_authentication_is_warned_of() {
    let mut open = Broker::unstarted("", Vec::new());
    open.listen_host = Some("0.0.0.0".into());
    open.restart();
    let warning = "takes clients from the network without authenticating them";
    assert!(open.log_text().contains(warning), "{}", open.log_text());
    let local = Broker::start();
    assert!(!local.log_text().contains(warning));
    // `sluice cluster status` says so too (it asks each broker's listeners with
    // DescribeConfigs).
    let (code, out, err) = common::sluice_at(&open, "cluster", &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(warning) && out.contains("PLAINTEXT on 0.0.0.0"),
        "{out}"
    );
    let status = common::sluice_json(&open, "cluster", &["status"]);
    assert_eq!(
        status["unauthenticated_listeners"][0]["listener"], "PLAINTEXT",
        "{status}"
    );
    let status = common::sluice_json(&local, "cluster", &["status"]);
    assert_eq!(status["unauthenticated_listeners"], serde_json::json!([]));
}

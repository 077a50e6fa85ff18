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

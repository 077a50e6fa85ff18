//! Smoke test of `sluice bench`: it runs against the real broker in every mode, and its counts
//! agree with what an independent client (librdkafka) reads back. Figures are not asserted.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{consume, Broker};
use rdkafka::Offset;
use serde_json::Value;

fn bench(broker: &Broker, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "bench",
            "--bootstrap",
            &broker.bootstrap(),
            "--output",
            "json",
        ])
        .args(["--progress-interval", "0"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sluice bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON summary on stdout")
}

fn count(summary: &Value, side: &str) -> u64 {
    assert_eq!(summary[side]["errors"], 0, "{summary}");
    summary[side]["records"].as_u64().unwrap()
}

#[test]
fn produce_then_consume_counts_agree_with_librdkafka() {
    let broker = Broker::start();
    let produced = bench(
        &broker,
        &[
            "produce",
            "--topic",
            "smoke",
            "--partitions",
            "3",
            "--records",
            "30000",
            "--record-size",
            "100",
            "--batch-size",
            "16384",
            "--compression",
            "lz4",
        ],
    );
    assert_eq!(count(&produced, "produce"), 30000);
    assert!(produced["produce"]["latency_ms"]["p99"].as_f64().unwrap() > 0.0);

    // librdkafka reads exactly those records, each value 100 bytes starting with a recent
    // send time in ns since the epoch.
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let consumer = broker.consumer(&[]);
    let mut seen = 0;
    consume(
        &consumer,
        "smoke",
        &[0, 1, 2],
        Offset::Beginning,
        30000,
        |m| {
            let v = common::payload(m);
            assert_eq!(v.len(), 100);
            let sent = u64::from_be_bytes(v[..8].try_into().unwrap());
            assert!(
                sent <= now_ns && now_ns - sent < 600_000_000_000,
                "stamp {sent}"
            );
            seen += 1;
        },
    );
    assert_eq!(seen, 30000);

    let consumed = bench(&broker, &["consume", "--topic", "smoke"]);
    assert_eq!(count(&consumed, "consume"), 30000);

    // As a queue: three share consumers over the three partitions, each record acknowledged
    // once (the broker confirmed every acknowledgement counted).
    let shared = bench(
        &broker,
        &[
            "share",
            "--topic",
            "smoke",
            "--consumers",
            "3",
            "--share-max-records",
            "300",
        ],
    );
    assert_eq!(count(&shared, "consume"), 30000);
}

#[test]
fn end_to_end_reads_every_acknowledged_record_at_the_target_rate() {
    let broker = Broker::start();
    let started = std::time::Instant::now();
    let summary = bench(
        &broker,
        &[
            "end-to-end",
            "--topic",
            "e2e",
            "--partitions",
            "2",
            "--rate",
            "2000",
            "--duration",
            "1",
            "--linger-ms",
            "1",
            "--record-size",
            "64",
            "--producers",
            "2",
        ],
    );
    assert_eq!(count(&summary, "produce"), 2000);
    assert_eq!(count(&summary, "consume"), 2000);
    assert!(summary["consume"]["latency_ms"]["max"].as_f64().unwrap() > 0.0);
    // Open loop: 2000 records at 2000/s take about a second, not less.
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn bad_parameters_are_refused_with_a_message() {
    let broker = Broker::start();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", "produce", "--bootstrap", &broker.bootstrap()])
        .args(["--partitions", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--partitions"));
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", "consume", "--bootstrap", &broker.bootstrap()])
        .args(["--transaction-records", "100"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--transaction-records"));
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", "produce", "--bootstrap", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to 127.0.0.1:1"));
}

/// The transactional producer: every record it counts is committed (a read_committed
/// librdkafka consumer reads them all back).
#[test]
fn transactional_produce_commits_every_record() {
    let broker = Broker::start();
    let summary = bench(
        &broker,
        &[
            "produce",
            "--topic",
            "txn-bench",
            "--partitions",
            "3",
            "--records",
            "5000",
            "--record-size",
            "100",
            "--transaction-records",
            "100",
            "--producers",
            "2",
        ],
    );
    assert_eq!(count(&summary, "produce"), 5000);
    let committed = common::txn::read_all(broker.config(), "txn-bench", 3, "read_committed");
    assert_eq!(committed.values().map(Vec::len).sum::<usize>(), 5000);
}

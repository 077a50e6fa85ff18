//! Until transactions exist, a transactional producer stops at once with an error that says
//! so (librdkafka here; kafka-python and aiokafka in tests/python/), and the broker logs the
//! refusal, instead of clients retrying a missing coordinator for minutes.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Broker;
use rdkafka::producer::{BaseProducer, Producer};

#[test]
fn a_librdkafka_transactional_producer_fails_at_once() {
    let broker = Broker::start();
    let producer: BaseProducer = broker
        .config()
        .set("transactional.id", "txn-librdkafka")
        .create()
        .expect("producer");
    let started = Instant::now();
    let err = producer
        .init_transactions(Duration::from_secs(60))
        .expect_err("transactions are refused");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("not supported"), "{err}");
    assert!(broker
        .log_text()
        .contains("transactions are not supported yet"));
}

#[test]
fn python_transactional_producers_fail_at_once() {
    let broker = Broker::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/transactions_fail_fast.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(broker.bootstrap())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

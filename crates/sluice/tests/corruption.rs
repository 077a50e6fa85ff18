//! Damaged logs: a flipped bit after a clean shutdown is found by `sluice log verify`; crash
//! recovery cuts out a damaged batch and keeps the intact ones after it; a missing segment is
//! reported as an offset gap.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Broker;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

const T: Duration = Duration::from_secs(10);

/// Produces `n` records to partition 0 of `topic`, one batch each.
async fn fill(broker: &Broker, topic: &str, n: usize) {
    let producer = broker.producer(&[("linger.ms", "0")]);
    for i in 0..n {
        let value = format!("record {i:04} {}", "x".repeat(200));
        producer
            .send(FutureRecord::<(), _>::to(topic).payload(&value), T)
            .await
            .expect("delivered");
    }
}

fn segments(broker: &Broker, topic: &str) -> Vec<PathBuf> {
    let dir = broker.data_dir().join(format!("{topic}-0"));
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// Flips a bit inside the records of batch `n` of a segment of equal-sized batches.
fn flip_bit_in_batch(segment: &Path, n: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment)
        .unwrap();
    let mut len = [0u8; 4];
    f.read_exact_at(&mut len, 8).unwrap();
    let batch = 12 + i32::from_be_bytes(len) as u64;
    let at = batch * n + 80;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x04], at).unwrap();
}

fn verify(data_dir: &Path, json: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["log", "verify"]).arg(data_dir);
    if json {
        cmd.args(["--output", "json"]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn log_verify_finds_a_flipped_bit_and_a_missing_segment() {
    let mut broker = Broker::start();
    broker
        .create_topic("checked", 1, &[("segment.bytes", "2048")])
        .await;
    fill(&broker, "checked", 30).await;
    broker.stop();
    let (status, out) = verify(broker.data_dir(), false);
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("0 corrupt"), "{out}");

    let segs = segments(&broker, "checked");
    assert!(segs.len() >= 4, "{} segments", segs.len());
    flip_bit_in_batch(&segs[0], 2);
    std::fs::remove_file(&segs[2]).unwrap();
    let (status, out) = verify(broker.data_dir(), false);
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("corrupt") && out.contains(&*segs[0].to_string_lossy()),
        "{out}"
    );
    assert!(out.contains("gap"), "{out}");
    let (status, json) = verify(broker.data_dir(), true);
    assert_eq!(status, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["corrupt"], 1);
    assert_eq!(v["findings"][0]["offset"], 2);

    // The broker reports the missing segment when it opens the log.
    broker.restart();
    assert!(
        broker
            .log_text()
            .contains("offsets missing between segments"),
        "{}",
        broker.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_recovery_keeps_the_records_after_a_damaged_batch() {
    let mut broker = Broker::start();
    broker.create_topic("damaged", 1, &[]).await;
    fill(&broker, "damaged", 10).await;
    broker.kill(); // no clean shutdown: the next start checks every batch
    flip_bit_in_batch(&segments(&broker, "damaged")[0], 5);
    broker.restart();

    let consumer = broker.consumer(&[]);
    let mut offsets = Vec::new();
    common::consume(&consumer, "damaged", &[0], Offset::Beginning, 9, |m| {
        offsets.push(m.offset())
    });
    assert_eq!(offsets, vec![0, 1, 2, 3, 4, 6, 7, 8, 9]);
    assert!(broker.log_text().contains("cutting out a damaged batch"));
    // The log takes new records after the kept ones.
    fill(&broker, "damaged", 1).await;
    let (_, high) =
        rdkafka::consumer::Consumer::fetch_watermarks(&consumer, "damaged", 0, T).unwrap();
    assert_eq!(high, 11);
}

//! Start-up and compaction figures (a measurement program, not a test):
//!
//!   cargo run --release -p sluice-broker --example restart_bench -- [PARTITIONS] [TOTAL_MB] [DATA_DIR]
//!
//! Fills PARTITIONS partitions (default 1000) with TOTAL_MB of 64 KiB batches (default 2048),
//! then times: a restart after a clean shutdown, a restart after a crash with recovery
//! points saved, and one without them (every segment rechecked); then a compaction pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use sluice_broker::{Broker, BrokerConfig};
use sluice_log::batch::build_batch;

fn open(dir: &Path) -> Arc<Broker> {
    let config = BrokerConfig::new(
        1,
        "127.0.0.1:0".parse().unwrap(),
        ("localhost".into(), 0),
        dir.to_path_buf(),
        BTreeMap::new(),
    )
    .expect("config");
    Broker::open(config).expect("open")
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let r = f();
    println!("{what}: {:.2} s", start.elapsed().as_secs_f64());
    r
}

fn remove_recovery_points(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let _ = std::fs::remove_file(entry.path().join("recovery-point"));
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let partitions: i32 = args
        .first()
        .map_or(1000, |a| a.parse().expect("PARTITIONS"));
    let total_mb: usize = args.get(1).map_or(2048, |a| a.parse().expect("TOTAL_MB"));
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = args
        .get(2)
        .map_or_else(|| tmp.path().join("data"), PathBuf::from);

    let broker = open(&dir);
    let configs = BTreeMap::from([("segment.bytes".to_string(), (64 << 20).to_string())]);
    let topic = broker
        .admin
        .create_topic("bench", partitions, 1, configs, false)
        .unwrap();
    let value = vec![b'x'; 1000];
    let records: Vec<_> = (0..64).map(|_| (None, Some(value.as_slice()))).collect();
    let batch = bytes::Bytes::from(build_batch(sluice_broker::now_ms(), &records));
    let batches = total_mb * (1 << 20) / batch.len();
    timed(
        &format!(
            "fill {partitions} partitions with {total_mb} MB ({batches} batches of {} KiB)",
            batch.len() / 1024
        ),
        || {
            let mut pending = Vec::new();
            for i in 0..batches {
                let p = &topic.partitions[i % partitions as usize];
                pending.push(
                    broker
                        .replicas
                        .append(p, batch.clone(), 1, sluice_broker::AppendOrigin::Client)
                        .unwrap(),
                );
                if pending.len() >= 256 {
                    let ready: Vec<_> = std::mem::take(&mut pending);
                    futures::executor::block_on(futures::future::join_all(
                        ready
                            .into_iter()
                            .map(|p| p.wait(std::time::Duration::from_secs(30))),
                    ));
                }
            }
            futures::executor::block_on(futures::future::join_all(
                pending
                    .into_iter()
                    .map(|p| p.wait(std::time::Duration::from_secs(30))),
            ));
        },
    );
    drop(topic);
    timed("clean shutdown (fsync of everything)", || broker.shutdown());
    drop(broker);

    let broker = timed("restart after a clean shutdown", || open(&dir));
    broker.replicas.checkpoint_recovery_points();
    drop(broker); // a crash: no clean-shutdown markers
    let broker = timed("restart after a crash, recovery points saved", || {
        open(&dir)
    });
    drop(broker);
    remove_recovery_points(&dir);
    let broker = timed(
        "restart after a crash, no recovery points (every segment checked)",
        || open(&dir),
    );
    broker.shutdown();
    drop(broker);

    // Compaction: 100,000 keys written 10 times each.
    let broker = open(&dir);
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), (32 << 20).to_string()),
        ("min.cleanable.dirty.ratio".to_string(), "0.0".to_string()),
    ]);
    let topic = broker
        .admin
        .create_topic("compacted", 1, 1, configs, false)
        .unwrap();
    let p = &topic.partitions[0];
    let keys: Vec<String> = (0..100_000).map(|k| format!("key-{k:06}")).collect();
    let value = vec![b'v'; 200];
    let mut bytes = 0;
    for round in 0..10 {
        for chunk in keys.chunks(100) {
            let records: Vec<_> = chunk
                .iter()
                .map(|k| (Some(k.as_bytes()), Some(value.as_slice())))
                .collect();
            let b = build_batch(round, &records);
            bytes += b.len();
            let pending = broker
                .replicas
                .append(p, b.into(), 1, sluice_broker::AppendOrigin::Client)
                .unwrap();
            futures::executor::block_on(pending.wait(std::time::Duration::from_secs(30))).unwrap();
        }
    }
    let start = Instant::now();
    broker.replicas.compact_all();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "compaction of {:.0} MB (1,000,000 records, 100,000 keys): {secs:.2} s, {:.0} MB/s",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs
    );
    broker.shutdown();
}

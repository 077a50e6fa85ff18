//! Acknowledged means durable: SIGKILL the broker in the middle of an acks=all stream, restart
//! it, and find every acknowledged record at the offset its acknowledgement gave.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{consume, Broker};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::Offset;

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_records_survive_sigkill() {
    let mut broker = Broker::start();
    broker.create_topic("crash", 3, &[]).await;
    let producer = broker.producer(&[
        ("acks", "all"),
        ("linger.ms", "2"),
        ("message.timeout.ms", "20000"),
        ("retry.backoff.ms", "50"),
        ("reconnect.backoff.max.ms", "200"),
    ]);
    let acked: Arc<Mutex<Vec<(i32, i64, u64)>>> = Arc::default();
    let acked_count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // Keep many sends in flight all the time, recording each acknowledgement.
    let sender = {
        let (acked, acked_count, stop, producer) = (
            acked.clone(),
            acked_count.clone(),
            stop.clone(),
            producer.clone(),
        );
        tokio::spawn(async move {
            let mut in_flight = Vec::new();
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..50 {
                    let value = seq.to_be_bytes();
                    let key = (seq % 97).to_string();
                    let fut = producer
                        .send_result(FutureRecord::to("crash").key(&key).payload(&value[..]));
                    seq += 1;
                    let (acked, acked_count) = (acked.clone(), acked_count.clone());
                    match fut {
                        Ok(f) => in_flight.push(tokio::spawn(async move {
                            if let Ok(Ok(d)) = f.await {
                                acked.lock().unwrap().push((
                                    d.partition,
                                    d.offset,
                                    u64::from_be_bytes(value),
                                ));
                                acked_count.fetch_add(1, Ordering::Relaxed);
                            }
                        })),
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await, // queue full
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            for f in in_flight {
                let _ = f.await;
            }
            seq
        })
    };

    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_count.load(Ordering::Relaxed) < 5000 {
        assert!(Instant::now() < deadline, "producer made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.kill(); // SIGKILL while sends are in flight
    let at_kill = acked_count.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker.restart();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = sender.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= at_kill);
    eprintln!(
        "sent {sent}, acknowledged {} ({at_kill} before the kill)",
        acked.len()
    );

    // Read back all three partitions completely.
    let consumer = broker.consumer(&[]);
    let mut stored: HashMap<(i32, i64), u64> = HashMap::new();
    let mut total = 0;
    for p in 0..3 {
        let (_, high) = consumer
            .fetch_watermarks("crash", p, Timeout::After(Duration::from_secs(10)))
            .unwrap();
        total += high as usize;
    }
    consume(
        &consumer,
        "crash",
        &[0, 1, 2],
        Offset::Beginning,
        total,
        |m| {
            let v = u64::from_be_bytes(m.payload().unwrap().try_into().unwrap());
            stored.insert((m.partition(), m.offset()), v);
        },
    );
    for (p, o, v) in &acked {
        assert_eq!(
            stored.get(&(*p, *o)),
            Some(v),
            "acknowledged record {v} at {p}/{o} is missing or different"
        );
    }
    // Order within a partition holds for records acknowledged before the kill (after it,
    // a non-idempotent producer's retries may legitimately reorder).
    let mut by_partition: HashMap<i32, Vec<(i64, u64)>> = HashMap::new();
    for (p, o, v) in acked.into_iter().take(at_kill) {
        by_partition.entry(p).or_default().push((o, v));
    }
    for (p, mut records) in by_partition {
        records.sort();
        // Records of one key are sent in sequence order; check that for each key.
        let mut last_per_key: HashMap<u64, u64> = HashMap::new();
        for (o, v) in records {
            if let Some(prev) = last_per_key.insert(v % 97, v) {
                assert!(
                    prev < v,
                    "partition {p}: record {v} at offset {o} follows {prev} of the same key"
                );
            }
        }
    }
}

/// With a relaxed flush policy, writes are acknowledged and visible before fsync; a process
/// crash still loses nothing, because the kernel holds the written bytes.
#[tokio::test(flavor = "multi_thread")]
async fn relaxed_flush_policy_acknowledges_before_fsync_and_survives_sigkill() {
    let mut broker = Broker::start();
    broker
        .create_topic(
            "relaxed",
            1,
            &[("flush.messages", "100000"), ("flush.ms", "600000")],
        )
        .await;
    let producer = broker.producer(&[("acks", "all")]);
    let sends: Vec<_> = (0..1000u32)
        .map(|i| {
            let producer = producer.clone();
            async move {
                let v = i.to_be_bytes();
                producer
                    .send(
                        FutureRecord::<(), _>::to("relaxed").payload(&v[..]),
                        Duration::from_secs(10),
                    )
                    .await
                    .unwrap()
                    .offset
            }
        })
        .collect();
    let offsets = futures::future::join_all(sends).await;
    assert_eq!(offsets.last(), Some(&999));
    let consumer = broker.consumer(&[]);
    assert_eq!(
        consumer
            .fetch_watermarks("relaxed", 0, Timeout::After(Duration::from_secs(10)))
            .unwrap(),
        (0, 1000)
    );
    drop(consumer);
    broker.kill();
    broker.restart();
    let consumer = broker.consumer(&[]);
    let mut next = 0u32;
    consume(&consumer, "relaxed", &[0], Offset::Beginning, 1000, |m| {
        assert_eq!(m.payload().unwrap(), next.to_be_bytes());
        next += 1;
    });
}

/// The test harness itself: a broker restarted after another process took its port (as
/// parallel tests do) is not mistaken for whatever listens there; it comes back on another
/// port with its data.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_whose_port_was_taken_moves_to_another_port() {
    let mut broker = Broker::start();
    broker.create_topic("kept", 1, &[]).await;
    broker.stop();
    let old = broker.port;
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", old)).unwrap();
    broker.restart();
    assert_ne!(broker.port, old);
    let md = common::sluice_json(&broker, "topic", &["list"]);
    assert!(md.to_string().contains("kept"), "{md}");
}

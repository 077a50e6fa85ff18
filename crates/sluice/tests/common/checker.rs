//! The replication checker: a producer workload that remembers what each acknowledgement
//! said, and a reader that takes every partition back and compares. Nothing acknowledged may
//! be lost, each acknowledged record must sit at the offset its acknowledgement gave, no
//! record may appear twice when the producer is idempotent, and one producer's records keep
//! their order within a partition.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::Broker;

/// One acknowledged record.
#[derive(Debug, Clone)]
pub struct Ack {
    pub partition: i32,
    pub offset: i64,
    /// The producer's sequence number, also the record's value.
    pub seq: u64,
    pub sent: Instant,
    pub acked: Instant,
}

/// What a workload saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub acks: Vec<Ack>,
    /// Sends that failed (not acknowledged: they may or may not be stored).
    pub failed: Vec<(u64, String)>,
}

/// Produces to `topic` round-robin over `partitions`, with up to `in_flight` records
/// outstanding per partition (so a partition waiting for a new leader does not hold up the
/// others), until `stop` is set; each value is its sequence number, increasing per partition.
pub async fn produce_until(
    producer: FutureProducer,
    topic: String,
    partitions: i32,
    in_flight: usize,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut pending = FuturesUnordered::new();
    let mut outstanding = vec![0usize; partitions as usize];
    let mut seq = 0u64;
    let mut next_partition = 0usize;
    loop {
        while !stop.load(Ordering::Relaxed) {
            // The next partition (round-robin) with room; none: wait for an answer.
            let Some(partition) = (0..outstanding.len())
                .map(|i| (next_partition + i) % outstanding.len())
                .find(|&p| outstanding[p] < in_flight)
            else {
                break;
            };
            next_partition = (partition + 1) % outstanding.len();
            outstanding[partition] += 1;
            let value = seq.to_string();
            let producer = producer.clone();
            let topic = topic.clone();
            let this = seq;
            pending.push(async move {
                let sent = Instant::now();
                let r = producer
                    .send(
                        FutureRecord::to(&topic)
                            .partition(partition as i32)
                            .key(&value)
                            .payload(&value),
                        Duration::from_secs(120),
                    )
                    .await;
                (this, partition, sent, r)
            });
            seq += 1;
        }
        let Some((seq, partition, sent, r)) = pending.next().await else {
            break;
        };
        outstanding[partition] -= 1;
        match r {
            Ok(d) => outcome.acks.push(Ack {
                partition: d.partition,
                offset: d.offset,
                seq,
                sent,
                acked: Instant::now(),
            }),
            Err((e, _)) => outcome.failed.push((seq, e.to_string())),
        }
        if stop.load(Ordering::Relaxed) && pending.is_empty() {
            break;
        }
    }
    outcome
}

/// Every record of `topic`'s partitions as `b` serves them (to the high watermark), by
/// partition: (offset, sequence number) in log order.
pub fn read_back(b: &Broker, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<(i64, u64)>> {
    let consumer: BaseConsumer = b.consumer(&[("enable.partition.eof", "true")]);
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        let mut records = Vec::new();
        if high > 0 {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
            consumer.assign(&tpl).unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            let done =
                |records: &Vec<(i64, u64)>| records.last().is_some_and(|(o, _)| o + 1 >= high);
            while !done(&records) {
                assert!(
                    Instant::now() < deadline,
                    "reading {topic}-{p} back timed out"
                );
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => {
                        let value = std::str::from_utf8(m.payload().unwrap_or_default()).unwrap();
                        records.push((m.offset(), value.parse::<u64>().unwrap()));
                    }
                    // The end of a partition whose last records were compacted or aborted.
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                    Some(Err(e)) => panic!("reading {topic}-{p} back: {e}"),
                    None => {}
                }
            }
        }
        out.insert(p, records);
    }
    out
}

/// Checks what was read back against what was acknowledged; panics naming the first
/// violation. Returns how many records were stored.
pub fn check(
    stored: &BTreeMap<i32, Vec<(i64, u64)>>,
    outcome: &Outcome,
    idempotent: bool,
) -> usize {
    let at: HashMap<(i32, i64), u64> = stored
        .iter()
        .flat_map(|(p, rs)| rs.iter().map(move |(o, s)| ((*p, *o), *s)))
        .collect();
    for ack in &outcome.acks {
        match at.get(&(ack.partition, ack.offset)) {
            Some(&seq) => assert_eq!(
                seq, ack.seq,
                "{}-{} holds record {seq} where record {} was acknowledged",
                ack.partition, ack.offset, ack.seq
            ),
            None => panic!(
                "acknowledged record {} at {}-{} is lost",
                ack.seq, ack.partition, ack.offset
            ),
        }
    }
    if idempotent {
        let mut seen = HashMap::new();
        for ((p, o), seq) in &at {
            if let Some(first) = seen.insert(*seq, (*p, *o)) {
                panic!(
                    "record {seq} is stored twice: at {first:?} and {:?}",
                    (p, o)
                );
            }
        }
    }
    for (p, records) in stored {
        for pair in records.windows(2) {
            assert!(
                pair[0].1 < pair[1].1,
                "partition {p} out of order: record {} at offset {} before record {} at {}",
                pair[0].1,
                pair[0].0,
                pair[1].1,
                pair[1].0
            );
        }
    }
    at.len()
}

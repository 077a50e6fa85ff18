//! Produce throughput with librdkafka (the rdkafka crate) against any Kafka-compatible broker.
//! A measurement program, not a test: it prints records/s and MB/s.
//!
//!   cargo run --release --example produce_perf -- [BOOTSTRAP] [RECORDS] [RECORD_BYTES] [ACKS] [PARTITIONS]
//!
//! Defaults: 127.0.0.1:9092, 1000000 records of 1024 bytes, acks=all, 1 partition, topic
//! `perf-<pid>` created with that many partitions.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

/// Counts deliveries that failed, so a figure is never reported for lost records.
#[derive(Default)]
struct Deliveries {
    failed: AtomicUsize,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let bootstrap = arg(0, "127.0.0.1:9092");
    let records: usize = arg(1, "1000000").parse().expect("RECORDS is a number");
    let size: usize = arg(2, "1024").parse().expect("RECORD_BYTES is a number");
    let acks = arg(3, "all");
    let partitions: i32 = arg(4, "1").parse().expect("PARTITIONS is a number");
    let topic = format!("perf-{}", std::process::id());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let created = runtime
        .block_on(admin.create_topics(
            [&NewTopic::new(
                &topic,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        ))
        .expect("create topic");
    created[0].as_ref().expect("topic created");

    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", &acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "none")
        .create_with_context(Deliveries::default())
        .expect("producer");
    let payload = vec![b'x'; size];
    let start = Instant::now();
    for i in 0..records {
        let key = (i as u32).to_be_bytes();
        let mut record = BaseRecord::to(&topic).payload(&payload[..]).key(&key[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r; // queue full: wait for deliveries
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .expect("all records delivered");
    let secs = start.elapsed().as_secs_f64();
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("{failed} of {records} records failed to be delivered");
        std::process::exit(1);
    }
    let mb = (records * size) as f64 / 1e6;
    println!(
        "{records} records of {size} B, acks={acks}, {partitions} partition(s): {:.0} records/s, {:.1} MB/s ({secs:.2} s)",
        records as f64 / secs,
        mb / secs
    );
}

//! Log lifecycle through real clients: retention by time and size, DeleteRecords, and the
//! log start offset seen by ListOffsets and Fetch.

mod common;

use std::time::Duration;

use common::group::wait_until;
use common::{consume, Broker};
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(10);

async fn fill(broker: &Broker, topic: &str, count: usize, timestamp: Option<i64>) {
    let producer = broker.producer(&[("linger.ms", "0")]);
    for i in 0..count {
        let value = format!("{i:0>400}");
        // Distinct keys: compacted topics refuse keyless records, and keep every one of these.
        let key = format!("k{i}");
        let mut record = FutureRecord::to(topic).key(&key).payload(&value);
        if let Some(ts) = timestamp {
            record = record.timestamp(ts);
        }
        producer.send(record, T).await.expect("delivered");
    }
}

fn low_watermark(consumer: &BaseConsumer, topic: &str) -> i64 {
    consumer.fetch_watermarks(topic, 0, T).unwrap().0
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_by_time_and_by_size_deletes_old_segments() {
    let broker = Broker::start_with_config("log.retention.check.interval.ms = 200\n");
    // Records stamped an hour ago fall outside a one-minute retention.
    broker
        .create_topic(
            "aged",
            1,
            &[("segment.bytes", "4096"), ("retention.ms", "60000")],
        )
        .await;
    let hour_ago = rdkafka::util::current_time_millis() - 3_600_000;
    fill(&broker, "aged", 50, Some(hour_ago)).await;
    broker
        .create_topic(
            "sized",
            1,
            &[("segment.bytes", "4096"), ("retention.bytes", "10000")],
        )
        .await;
    fill(&broker, "sized", 80, None).await;
    broker
        .create_topic(
            "kept",
            1,
            &[("segment.bytes", "4096"), ("cleanup.policy", "compact")],
        )
        .await;
    fill(&broker, "kept", 50, Some(hour_ago)).await;

    let consumer = broker.consumer(&[]);
    wait_until(20, "old segments of `aged` deleted", || {
        low_watermark(&consumer, "aged") > 0
    });
    wait_until(20, "`sized` trimmed to about retention.bytes", || {
        low_watermark(&consumer, "sized") > 40
    });
    assert!(
        low_watermark(&consumer, "aged") < 50,
        "the active segment stays"
    );
    assert_eq!(
        low_watermark(&consumer, "kept"),
        0,
        "cleanup.policy=compact deletes nothing by age"
    );

    // Reading from below the log start: OFFSET_OUT_OF_RANGE, and the consumer resets.
    let start = low_watermark(&consumer, "aged");
    let reader = broker.consumer(&[("auto.offset.reset", "earliest")]);
    let mut first = None;
    consume(&reader, "aged", &[0], Offset::Offset(0), 1, |m| {
        first = Some(rdkafka::message::Message::offset(m))
    });
    assert_eq!(first, Some(start));
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_records_moves_the_log_start_durably() {
    let mut broker = Broker::start();
    broker.create_topic("trimmed", 1, &[]).await;
    fill(&broker, "trimmed", 30, None).await;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trimmed", 0, Offset::Offset(12))
        .unwrap();
    let r = broker
        .admin()
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(
        r.find_partition("trimmed", 0).unwrap().offset(),
        Offset::Offset(12)
    );
    let consumer = broker.consumer(&[]);
    assert_eq!(
        consumer.fetch_watermarks("trimmed", 0, T).unwrap(),
        (12, 30)
    );

    let mut too_far = TopicPartitionList::new();
    too_far
        .add_partition_offset("trimmed", 0, Offset::Offset(99))
        .unwrap();
    let r = broker
        .admin()
        .delete_records(&too_far, &AdminOptions::new())
        .await
        .unwrap();
    assert!(
        r.find_partition("trimmed", 0).unwrap().error().is_err(),
        "beyond the high watermark"
    );

    drop(consumer);
    broker.kill();
    broker.restart();
    let consumer = broker.consumer(&[]);
    assert_eq!(
        consumer.fetch_watermarks("trimmed", 0, T).unwrap(),
        (12, 30),
        "the log start survives a crash"
    );
    let mut first = None;
    consume(&consumer, "trimmed", &[0], Offset::Beginning, 1, |m| {
        first = Some(rdkafka::message::Message::offset(m))
    });
    assert_eq!(first, Some(12));
}

/// Reads a whole partition from the beginning: (offset, key, value).
fn read_all(broker: &Broker, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let consumer = broker.consumer(&[]);
    let (_, high) = consumer.fetch_watermarks(topic, 0, T).unwrap();
    let mut out = Vec::new();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while out.last().is_none_or(|(o, _, _)| *o < high - 1) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out reading {topic}"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            use rdkafka::message::Message;
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            out.push((
                m.offset(),
                key,
                m.payload().map(|p| String::from_utf8(p.to_vec()).unwrap()),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_keeps_the_latest_value_per_key() {
    let broker = Broker::start_with_config("log.cleaner.backoff.ms = 200\n");
    broker
        .create_topic(
            "latest",
            1,
            &[
                ("cleanup.policy", "compact"),
                ("segment.bytes", "4096"),
                ("min.cleanable.dirty.ratio", "0.01"),
            ],
        )
        .await;
    let producer = broker.producer(&[("linger.ms", "0"), ("compression.type", "gzip")]);
    for i in 0..300 {
        let (key, value) = (
            format!("key-{}", i % 10),
            format!("value-{i}-{}", "x".repeat(50)),
        );
        producer
            .send(FutureRecord::to("latest").key(&key).payload(&value), T)
            .await
            .unwrap();
    }
    producer
        .send(FutureRecord::<_, ()>::to("latest").key("key-0"), T)
        .await
        .unwrap(); // tombstone
    for i in 0..40 {
        // Fill another segment so the records above are all in non-active segments.
        producer
            .send(
                FutureRecord::to("latest")
                    .key("filler")
                    .payload(&format!("{i:0>200}")),
                T,
            )
            .await
            .unwrap();
    }
    // Passes run every 200 ms, also while the records above are being written: wait until
    // one has covered everything before the filler segment.
    let one_per_key = |records: &[(i64, String, Option<String>)]| {
        (1..10).all(|k| {
            records
                .iter()
                .filter(|(_, key, _)| *key == format!("key-{k}"))
                .count()
                == 1
        })
    };
    wait_until(30, "the log is compacted", || {
        one_per_key(&read_all(&broker, "latest"))
    });
    let records = read_all(&broker, "latest");
    let mut last: std::collections::HashMap<String, Option<String>> = Default::default();
    let mut offsets = Vec::new();
    for (o, k, v) in &records {
        offsets.push(*o);
        last.insert(k.clone(), v.clone());
    }
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets keep their order (gaps are fine)"
    );
    for k in 1..10 {
        let latest = (0..300).filter(|i| i % 10 == k).max().unwrap();
        assert_eq!(
            last[&format!("key-{k}")],
            Some(format!("value-{latest}-{}", "x".repeat(50)))
        );
        assert_eq!(
            records
                .iter()
                .filter(|(_, key, _)| *key == format!("key-{k}"))
                .count(),
            1,
            "one record per key"
        );
    }
    assert_eq!(
        last["key-0"], None,
        "the tombstone is kept within delete.retention.ms"
    );
}

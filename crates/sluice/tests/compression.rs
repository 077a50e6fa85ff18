//! Topic compression.type: `producer` stores batches as sent; a codec makes the broker store
//! every batch in it, recompressing those in another codec (with compression.<codec>.level),
//! as Kafka does. Clients read the records back unchanged whatever the codec.

mod common;

use std::time::Duration;

use common::raw::Raw;
use common::Broker;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

const T: Duration = Duration::from_secs(10);

/// The codec of every batch stored in partition 0 of `topic` (a raw Fetch from offset 0).
fn stored_codecs(broker: &Broker, topic: &str) -> Vec<i16> {
    let mut raw = Raw::connect(broker);
    let req = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let c = raw.send(ApiKey::Fetch, 12, &req);
    let r: FetchResponse = raw.receive_response(ApiKey::Fetch, 12, c);
    let records = r.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    let mut codecs = Vec::new();
    let mut pos = 0;
    while pos + 61 <= records.len() {
        let len = i32::from_be_bytes(records[pos + 8..pos + 12].try_into().unwrap()) as usize;
        codecs.push(i16::from_be_bytes([records[pos + 21], records[pos + 22]]) & 7);
        pos += 12 + len;
    }
    codecs
}

async fn produce(broker: &Broker, topic: &str, codec: &str, n: usize, idempotent: bool) {
    let producer = broker.producer(&[
        ("compression.codec", codec),
        ("linger.ms", "0"),
        (
            "enable.idempotence",
            if idempotent { "true" } else { "false" },
        ),
    ]);
    for i in 0..n {
        let value = format!("value {i} {}", "abc".repeat(50));
        producer
            .send(
                FutureRecord::to(topic)
                    .key(&format!("k{i}"))
                    .payload(&value),
                T,
            )
            .await
            .expect("delivered");
    }
}

fn read_back(broker: &Broker, topic: &str, n: usize) -> Vec<String> {
    let consumer = broker.consumer(&[]);
    let mut values = Vec::new();
    common::consume(&consumer, topic, &[0], Offset::Beginning, n, |m| {
        values.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
    });
    values
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_are_stored_in_the_topics_codec() {
    let broker = Broker::start();
    for (topic, compression, producer_codec, stored) in [
        ("to-lz4", "lz4", "none", 3),
        ("to-zstd", "zstd", "gzip", 4),
        ("to-plain", "uncompressed", "lz4", 0),
        ("to-snappy", "snappy", "zstd", 2),
        ("as-sent", "producer", "lz4", 3),
        ("already-gzip", "gzip", "gzip", 1),
    ] {
        broker
            .create_topic(topic, 1, &[("compression.type", compression)])
            .await;
        produce(&broker, topic, producer_codec, 5, topic == "to-zstd").await;
        assert_eq!(stored_codecs(&broker, topic), vec![stored; 5], "{topic}");
        let expected: Vec<String> = (0..5)
            .map(|i| format!("value {i} {}", "abc".repeat(50)))
            .collect();
        assert_eq!(read_back(&broker, topic, 5), expected, "{topic}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compression_levels_are_checked_and_used() {
    let broker = Broker::start();
    broker
        .create_topic(
            "leveled",
            1,
            &[
                ("compression.type", "zstd"),
                ("compression.zstd.level", "19"),
            ],
        )
        .await;
    produce(&broker, "leveled", "none", 3, false).await;
    assert_eq!(stored_codecs(&broker, "leveled"), vec![4; 3]);
    for (name, value) in [
        ("compression.zstd.level", "23"),
        ("compression.lz4.level", "0"),
        ("compression.gzip.level", "10"),
        ("compression.type", "brotli"),
    ] {
        assert_eq!(
            broker
                .create_topic_error("bad-level", 1, &[(name, value)])
                .await,
            RDKafkaErrorCode::InvalidConfig,
            "{name}={value}"
        );
    }
}

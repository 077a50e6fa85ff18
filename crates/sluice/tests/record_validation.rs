//! Records are validated on produce as Kafka's LogValidator does: a batch whose records are
//! malformed, expand past their bound, lack keys on a compacted topic or carry impossible
//! timestamps is refused with Kafka's error code (naming the records, KIP-467), nothing of it
//! is stored, and consumers go on reading every acknowledged record.

mod common;

use std::io::Write;
use std::time::Duration;

use common::raw::sluice_test_batch::{batch_of, record, Header};
use common::raw::{batch, Raw};
use common::Broker;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_TIMESTAMP: i16 = 32;
const INVALID_RECORD: i16 = 87;

const ZSTD: i16 = 4;
const GZIP: i16 = 1;

/// One record whose value is `len` zero bytes, compressed with `codec`: a compression bomb
/// of a few KB that claims `len` bytes.
fn bomb(codec: i16, len: usize) -> Vec<u8> {
    let records = record(0, 0, Some(b"bomb"), Some(&vec![0u8; len]));
    let compressed = match codec {
        ZSTD => zstd::bulk::compress(&records, 19).unwrap(),
        GZIP => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&records).unwrap();
            e.finish().unwrap()
        }
        _ => unreachable!(),
    };
    let header = Header {
        attributes: codec,
        ..Header::plain(1)
    };
    batch_of(&compressed, &header)
}

fn list_offsets_by_time(raw: &mut Raw, topic: &str, ts: i64) -> (i16, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(ts)])]);
    let c = raw.send(ApiKey::ListOffsets, 7, &req);
    let r: ListOffsetsResponse = raw.receive_response(ApiKey::ListOffsets, 7, c);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset)
}

#[tokio::test(flavor = "multi_thread")]
async fn compression_bombs_are_refused_without_expanding_them() {
    let broker = Broker::start();
    // max.message.bytes 16 KiB: a batch's records may expand to 64 times that (1 MiB).
    broker
        .create_topic(
            "bombs",
            1,
            &[
                ("cleanup.policy", "compact"),
                ("max.message.bytes", "16384"),
            ],
        )
        .await;
    let mut raw = Raw::connect(&broker);
    let before = broker.rss_kb();
    for codec in [ZSTD, GZIP] {
        let b = bomb(codec, 256 << 20);
        assert!(b.len() < 300_000, "{} bytes", b.len());
        let p = raw.produce("bombs", b);
        assert_eq!(
            p.error_code, MESSAGE_TOO_LARGE,
            "codec {codec}: {:?}",
            p.error_message
        );
    }
    // 256 MiB bombs were never expanded in memory.
    let grown = broker.rss_kb().saturating_sub(before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KB");
    // Within the bound, a compressed batch is stored.
    let p = raw.produce("bombs", bomb(ZSTD, 512 << 10));
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let p = raw.produce("bombs", bomb(GZIP, 512 << 10));
    assert_eq!((p.error_code, p.base_offset), (0, 1));
    // Lookups that open batches still answer.
    assert_eq!(list_offsets_by_time(&mut raw, "bombs", 0), (0, 0));
    assert_eq!(list_offsets_by_time(&mut raw, "bombs", -3), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_records_are_refused_and_consumers_read_on() {
    let broker = Broker::start();
    broker.create_topic("checked", 1, &[]).await;
    let mut raw = Raw::connect(&broker);
    assert_eq!(raw.produce("checked", batch(b"first")).base_offset, 0);

    let two = [
        record(0, 0, None, Some(b"a")),
        record(1, 0, None, Some(b"b")),
    ]
    .concat();
    let cases: Vec<(&str, Vec<u8>, i16)> = vec![
        (
            "record count 0",
            batch_of(
                &two,
                &Header {
                    record_count: 0,
                    ..Header::plain(2)
                },
            ),
            INVALID_RECORD,
        ),
        (
            "record count 2^31-1",
            batch_of(
                &two,
                &Header {
                    record_count: i32::MAX,
                    ..Header::plain(2)
                },
            ),
            INVALID_RECORD,
        ),
        (
            "last offset delta 2^31-1",
            batch_of(
                &two,
                &Header {
                    last_offset_delta: i32::MAX,
                    ..Header::plain(2)
                },
            ),
            INVALID_RECORD,
        ),
        (
            "count above the records",
            batch_of(&two, &Header::plain(3)),
            CORRUPT_MESSAGE,
        ),
        (
            "garbage records",
            batch_of(&[0xff; 40], &Header::plain(2)),
            CORRUPT_MESSAGE,
        ),
        (
            "bytes after the records",
            batch_of(&[two.clone(), vec![0, 0, 0]].concat(), &Header::plain(2)),
            CORRUPT_MESSAGE,
        ),
        (
            "offset deltas out of order",
            batch_of(
                &[
                    record(1, 0, None, Some(b"a")),
                    record(0, 0, None, Some(b"b")),
                ]
                .concat(),
                &Header::plain(2),
            ),
            INVALID_RECORD,
        ),
        (
            "control batch",
            batch_of(
                &two,
                &Header {
                    attributes: 0x20,
                    ..Header::plain(2)
                },
            ),
            INVALID_RECORD,
        ),
        (
            "timestamp i64::MAX",
            batch_of(
                &two,
                &Header {
                    timestamp: i64::MAX,
                    ..Header::plain(2)
                },
            ),
            INVALID_TIMESTAMP,
        ),
        (
            "timestamp i64::MIN",
            batch_of(
                &two,
                &Header {
                    timestamp: i64::MIN,
                    ..Header::plain(2)
                },
            ),
            INVALID_TIMESTAMP,
        ),
    ];
    for (what, b, code) in cases {
        let p = raw.produce("checked", b);
        assert_eq!(p.error_code, code, "{what}: {:?}", p.error_message);
        assert_eq!(p.base_offset, -1, "{what}");
    }
    let p = raw.produce("checked", batch_of(&two, &Header::plain(2)));
    assert_eq!(p.base_offset, 1, "{:?}", p.error_message);

    // A consumer reads every acknowledged record, none of the refused ones.
    let consumer = broker.consumer(&[]);
    let mut values = Vec::new();
    common::consume(&consumer, "checked", &[0], Offset::Beginning, 3, |m| {
        values.push((m.offset(), common::payload(m)))
    });
    assert_eq!(
        values,
        vec![
            (0, b"first".to_vec()),
            (1, b"a".to_vec()),
            (2, b"b".to_vec())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn compacted_topics_refuse_keyless_records_and_name_them() {
    let broker = Broker::start();
    broker
        .create_topic("keyed", 1, &[("cleanup.policy", "compact")])
        .await;
    let mut raw = Raw::connect(&broker);
    let records = [
        record(0, 0, Some(b"k"), Some(b"v")),
        record(1, 0, None, Some(b"no key")),
        record(2, 0, Some(b"j"), None),
    ]
    .concat();
    let p = raw.produce("keyed", batch_of(&records, &Header::plain(3)));
    assert_eq!(p.error_code, INVALID_RECORD);
    let named: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(named, vec![1], "record_errors: {:?}", p.record_errors);
    assert!(p.error_message.unwrap().contains("key"));

    // librdkafka fails just that message and delivers the keyed one.
    let producer = broker.producer(&[("linger.ms", "0")]);
    let keyless = producer
        .send(
            FutureRecord::<(), _>::to("keyed").payload("x"),
            Duration::from_secs(10),
        )
        .await;
    match keyless {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord), _)) => {}
        other => panic!("expected INVALID_RECORD, got {other:?}"),
    }
    let keyed = producer
        .send(
            FutureRecord::to("keyed").key("k").payload("x"),
            Duration::from_secs(10),
        )
        .await
        .expect("keyed record");
    assert_eq!(keyed.offset, 0);
}

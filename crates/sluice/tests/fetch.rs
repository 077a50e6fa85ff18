//! Fetch semantics over raw requests: long polls woken by new data, min_bytes, the
//! per-partition and response byte limits, and a record set in every partition's answer.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::{batch, Raw};
use common::Broker;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn produce(raw: &mut Raw, topic: &str, value: &[u8]) -> i64 {
    produce_to(raw, topic, 0, value)
}

fn produce_to(raw: &mut Raw, topic: &str, partition: i32, value: &[u8]) -> i64 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(batch(value))))])]);
    let c = raw.send(ApiKey::Produce, 9, &req);
    let r: ProduceResponse = raw.receive_response(ApiKey::Produce, 9, c);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    p.base_offset
}

fn fetch(
    raw: &mut Raw,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
    partition_max: i32,
    max_bytes: i32,
) -> (FetchResponse, Duration) {
    let req = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max)])]);
    let start = Instant::now();
    let c = raw.send(ApiKey::Fetch, 12, &req);
    let r: FetchResponse = raw.receive_response(ApiKey::Fetch, 12, c);
    (r, start.elapsed())
}

fn records_len(r: &FetchResponse) -> usize {
    r.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, |b| b.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_fetch_is_woken_by_new_data_not_its_timer() {
    let broker = Broker::start();
    broker.create_topic("poll", 1, &[]).await;
    let mut producer = Raw::connect(&broker);
    produce(&mut producer, "poll", b"first");
    let mut consumer = Raw::connect(&broker);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        produce(&mut producer, "poll", b"second")
    });
    let (r, waited) = fetch(&mut consumer, "poll", 1, 20_000, 1, 1 << 20, 1 << 20);
    assert_eq!(writer.join().unwrap(), 1);
    assert!(records_len(&r) > 0, "the new record is returned");
    assert!(
        waited < Duration::from_secs(5),
        "woken by the produce after {waited:?}, not by the 20 s timer"
    );
    assert_eq!(r.responses[0].partitions[0].high_watermark, 2);

    // min_bytes beyond what exists: the fetch waits out max_wait_ms, then returns what there is.
    let (r, waited) = fetch(&mut consumer, "poll", 0, 400, 1 << 20, 1 << 20, 1 << 20);
    assert!(waited >= Duration::from_millis(350), "{waited:?}");
    assert!(records_len(&r) > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn byte_limits_still_return_one_whole_batch() {
    let broker = Broker::start();
    broker.create_topic("limits", 1, &[]).await;
    let mut raw = Raw::connect(&broker);
    for i in 0..5 {
        produce(
            &mut raw,
            "limits",
            format!("record number {i} with some padding").as_bytes(),
        );
    }
    let one = batch(b"record number 0 with some padding").len();
    let (r, _) = fetch(&mut raw, "limits", 0, 0, 1, 1, 1 << 20);
    assert_eq!(
        records_len(&r),
        one,
        "partition_max_bytes=1 still returns the first batch whole"
    );
    let (r, _) = fetch(&mut raw, "limits", 0, 0, 1, 1 << 20, 1);
    assert_eq!(records_len(&r), one, "max_bytes=1 likewise");
    let (r, _) = fetch(&mut raw, "limits", 0, 0, 1, 1 << 20, 1 << 20);
    assert_eq!(records_len(&r), one * 5);
    // Fetching from offset 3 starts at the batch holding offset 3.
    let (r, _) = fetch(&mut raw, "limits", 3, 0, 1, 1 << 20, 1 << 20);
    let data = r.responses[0].partitions[0].records.clone().unwrap();
    assert_eq!(i64::from_be_bytes(data[0..8].try_into().unwrap()), 3);
    // Beyond the log end: OFFSET_OUT_OF_RANGE with the log's bounds.
    let (r, _) = fetch(&mut raw, "limits", 99, 0, 1, 1 << 20, 1 << 20);
    let p = &r.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.high_watermark, p.log_start_offset),
        (1, 5, 0)
    );
}

/// Every partition of a Fetch response carries a record set, empty when there is nothing to
/// send or the partition has an error, never null: Kafka never sends null there, and clients
/// that parse it as a length (librdkafka's MessageSetSize) reject a response that does.
#[tokio::test(flavor = "multi_thread")]
async fn no_partition_of_a_fetch_response_has_a_null_record_set() {
    const OFFSET_OUT_OF_RANGE: i16 = 1;
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const UNKNOWN_TOPIC_ID: i16 = 100;
    let broker = Broker::start();
    broker.create_topic("rows", 3, &[]).await;
    let mut raw = Raw::connect(&broker);
    produce_to(&mut raw, "rows", 0, b"zero");
    produce_to(&mut raw, "rows", 2, b"two");
    let id = common::cluster::metadata(&broker)
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "rows"))
        .expect("topic known")
        .topic_id;
    let part = |partition: i32, offset: i64| {
        FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 20)
    };
    for version in 4..=17i16 {
        let (rows, nowhere) = if version >= 13 {
            (
                FetchTopic::default().with_topic_id(id),
                FetchTopic::default().with_topic_id(uuid::Uuid::from_u128(0xdead)),
            )
        } else {
            (
                FetchTopic::default().with_topic(name("rows")),
                FetchTopic::default().with_topic(name("nowhere")),
            )
        };
        let req = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            // Records; none yet; past the log end; a partition and a topic that do not exist.
            .with_topics(vec![
                rows.with_partitions(vec![part(0, 0), part(1, 0), part(2, 9), part(7, 0)]),
                nowhere.with_partitions(vec![part(0, 0)]),
            ]);
        let c = raw.send(ApiKey::Fetch, version, &req);
        let r: FetchResponse = raw.receive_response(ApiKey::Fetch, version, c);
        let answers: Vec<(i16, Option<usize>)> = r
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| (p.error_code, p.records.as_ref().map(|r| r.len())))
            .collect();
        let unknown_topic = if version >= 13 {
            UNKNOWN_TOPIC_ID
        } else {
            UNKNOWN_TOPIC_OR_PARTITION
        };
        let records = batch(b"zero").len();
        assert_eq!(
            answers,
            vec![
                (0, Some(records)),
                (0, Some(0)),
                (OFFSET_OUT_OF_RANGE, Some(0)),
                (UNKNOWN_TOPIC_OR_PARTITION, Some(0)),
                (unknown_topic, Some(0)),
            ],
            "Fetch v{version}"
        );
    }
}

//! The idempotent producer: a retried batch is stored once, across a broker SIGKILL too.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::{idempotent_batch, Raw};
use common::{consume, Broker};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::Offset;

fn produce(raw: &mut Raw, topic: &str, records: Vec<u8>) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    let c = raw.send(ApiKey::Produce, 9, &req);
    let r: ProduceResponse = raw.receive_response(ApiKey::Produce, 9, c);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_batch_twice_gets_the_same_offset() {
    let mut broker = Broker::start();
    broker.create_topic("idem", 1, &[]).await;
    let mut raw = Raw::connect(&broker);
    let c = raw.send(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default().with_transaction_timeout_ms(60000),
    );
    let r: InitProducerIdResponse = raw.receive_response(ApiKey::InitProducerId, 4, c);
    assert_eq!(r.error_code, 0);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    assert!(pid >= 0);

    assert_eq!(
        produce(&mut raw, "idem", idempotent_batch(b"a", pid, epoch, 0)),
        (0, 0)
    );
    assert_eq!(
        produce(&mut raw, "idem", idempotent_batch(b"a", pid, epoch, 0)),
        (0, 0),
        "a retry: same offset"
    );
    assert_eq!(
        produce(&mut raw, "idem", idempotent_batch(b"b", pid, epoch, 1)),
        (0, 1)
    );
    assert_eq!(
        produce(&mut raw, "idem", idempotent_batch(b"gap", pid, epoch, 5)).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(
        produce(&mut raw, "idem", idempotent_batch(b"new", 999_999, 0, 3)).0,
        59,
        "UNKNOWN_PRODUCER_ID"
    );

    // A restart rebuilds the state: the retry is still recognised.
    drop(raw);
    broker.kill();
    broker.restart();
    let mut raw = Raw::connect(&broker);
    assert_eq!(
        produce(&mut raw, "idem", idempotent_batch(b"b", pid, epoch, 1)),
        (0, 1),
        "recognised after a crash"
    );
    // A bumped epoch (KIP-360) fences the old one.
    let req = InitProducerIdRequest::default()
        .with_producer_id(kafka_protocol::messages::ProducerId(pid))
        .with_producer_epoch(epoch);
    let c = raw.send(ApiKey::InitProducerId, 4, &req);
    let r: InitProducerIdResponse = raw.receive_response(ApiKey::InitProducerId, 4, c);
    assert_eq!((r.producer_id.0, r.producer_epoch), (pid, epoch + 1));
    assert_eq!(
        produce(&mut raw, "idem", idempotent_batch(b"c", pid, epoch + 1, 0)),
        (0, 2)
    );
    assert_eq!(
        produce(&mut raw, "idem", idempotent_batch(b"d", pid, epoch, 2)).0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    // A transactional id with a timeout outside 1..=transaction.max.timeout.ms is refused.
    let c = raw.send(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default().with_transactional_id(Some(
            kafka_protocol::messages::TransactionalId(StrBytes::from_static_str("tx")),
        )),
    );
    let r: InitProducerIdResponse = raw.receive_response(ApiKey::InitProducerId, 4, c);
    assert_eq!(r.error_code, 50, "INVALID_TRANSACTION_TIMEOUT");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_record_is_lost_or_doubled_across_a_broker_sigkill() {
    let mut broker = Broker::start();
    broker.create_topic("exactly", 3, &[]).await;
    let producer = broker.producer(&[
        ("enable.idempotence", "true"),
        ("max.in.flight.requests.per.connection", "5"),
        ("linger.ms", "2"),
        ("message.timeout.ms", "60000"),
        ("retry.backoff.ms", "50"),
        ("reconnect.backoff.max.ms", "200"),
    ]);
    const N: u64 = 20_000;
    let acked = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (producer, acked) = (producer.clone(), acked.clone());
        tokio::spawn(async move {
            let mut pending = Vec::new();
            for i in 0..N {
                let value = i.to_be_bytes();
                let key = (i % 101).to_string();
                let fut = loop {
                    match producer
                        .send_result(FutureRecord::to("exactly").key(&key).payload(&value[..]))
                    {
                        Ok(f) => break f,
                        Err(_) => tokio::time::sleep(Duration::from_millis(2)).await, // queue full
                    }
                };
                let acked = acked.clone();
                pending.push(tokio::spawn(async move {
                    let r = fut.await;
                    acked.fetch_add(1, Ordering::Relaxed);
                    r
                }));
            }
            let mut failures = 0;
            for p in pending {
                if !matches!(p.await, Ok(Ok(Ok(_)))) {
                    failures += 1;
                }
            }
            failures
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Relaxed) < 5_000 {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    broker.kill(); // in the middle of the stream
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker.restart();
    let failures = sender.await.unwrap();
    assert_eq!(failures, 0, "every record is eventually acknowledged");

    let consumer = broker.consumer(&[]);
    let mut total = 0;
    for p in 0..3 {
        total += consumer
            .fetch_watermarks("exactly", p, Timeout::After(Duration::from_secs(10)))
            .unwrap()
            .1 as usize;
    }
    assert_eq!(total as u64, N, "no record stored twice");
    let mut counts: HashMap<u64, usize> = HashMap::new();
    consume(
        &consumer,
        "exactly",
        &[0, 1, 2],
        Offset::Beginning,
        total,
        |m| {
            *counts
                .entry(u64::from_be_bytes(m.payload().unwrap().try_into().unwrap()))
                .or_default() += 1;
        },
    );
    assert_eq!(counts.len() as u64, N, "none lost");
    assert!(counts.values().all(|&c| c == 1), "none twice");
}

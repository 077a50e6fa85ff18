//! Producing and consuming through librdkafka (the rdkafka crate) against the real binary.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{consume, payload, Broker};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::{Offset, Timestamp};

const SEND_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn same_key_goes_to_same_partition_for_1000_keys() {
    let broker = Broker::start();
    broker.create_topic("keyed", 6, &[]).await;
    let producer = broker.producer(&[("acks", "all")]);
    let mut placed: HashMap<String, i32> = HashMap::new();
    for round in 0..2 {
        let sends: Vec<_> = (0..1000)
            .map(|i| {
                let key = format!("key-{i}");
                let value = format!("{round}");
                let producer = producer.clone();
                async move {
                    let d = producer
                        .send(
                            FutureRecord::to("keyed").key(&key).payload(&value),
                            SEND_TIMEOUT,
                        )
                        .await
                        .expect("delivered");
                    (key, d.partition)
                }
            })
            .collect();
        for (key, p) in futures::future::join_all(sends).await {
            let prev = placed.insert(key.clone(), p);
            assert!(
                prev.is_none_or(|q| q == p),
                "{key} moved from {prev:?} to {p}"
            );
        }
    }
    let used: HashSet<i32> = placed.values().copied().collect();
    assert!(used.len() > 1, "keys spread over partitions");
    // Read everything back and check each key was stored where its acknowledgement said.
    let consumer = broker.consumer(&[]);
    let mut count = 0;
    consume(
        &consumer,
        "keyed",
        &[0, 1, 2, 3, 4, 5],
        Offset::Beginning,
        2000,
        |m| {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            assert_eq!(placed[&key], m.partition());
            count += 1;
        },
    );
    assert_eq!(count, 2000);
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_records_keep_their_order() {
    let broker = Broker::start();
    broker.create_topic("ordered", 1, &[]).await;
    let producer = broker.producer(&[("acks", "1"), ("linger.ms", "20")]);
    let sends: Vec<_> = (0..10_000u32)
        .map(|i| {
            let producer = producer.clone();
            async move {
                let value = i.to_be_bytes();
                producer
                    .send(
                        FutureRecord::<(), _>::to("ordered").payload(&value[..]),
                        SEND_TIMEOUT,
                    )
                    .await
                    .expect("delivered")
                    .offset
            }
        })
        .collect();
    let offsets = futures::future::join_all(sends).await;
    for (i, o) in offsets.iter().enumerate() {
        assert_eq!(*o, i as i64, "acknowledged offsets follow send order");
    }
    let consumer = broker.consumer(&[]);
    let mut next = 0u32;
    consume(&consumer, "ordered", &[0], Offset::Beginning, 10_000, |m| {
        assert_eq!(m.offset(), next as i64);
        assert_eq!(payload(m), next.to_be_bytes());
        next += 1;
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_timestamps_null_keys_and_empty_values_round_trip() {
    let broker = Broker::start();
    broker.create_topic("shapes", 1, &[]).await;
    let producer = broker.producer(&[]);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "trace",
            value: Some("abc"),
        })
        .insert(Header {
            key: "empty",
            value: Some(""),
        })
        .insert(Header::<&str> {
            key: "null",
            value: None,
        });
    producer
        .send(
            FutureRecord::to("shapes")
                .key("k1")
                .payload("v1")
                .headers(headers)
                .timestamp(1_600_000_000_123),
            SEND_TIMEOUT,
        )
        .await
        .unwrap();
    producer
        .send(
            FutureRecord::<(), _>::to("shapes").payload("no key"),
            SEND_TIMEOUT,
        )
        .await
        .unwrap();
    producer
        .send(
            FutureRecord::to("shapes").key("k3").payload(""),
            SEND_TIMEOUT,
        )
        .await
        .unwrap();
    producer
        .send(
            FutureRecord::<_, ()>::to("shapes").key("tombstone"),
            SEND_TIMEOUT,
        )
        .await
        .unwrap();
    let consumer = broker.consumer(&[]);
    let mut got = Vec::new();
    consume(&consumer, "shapes", &[0], Offset::Beginning, 4, |m| {
        let hdrs: Vec<(String, Option<Vec<u8>>)> = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                    .collect()
            })
            .unwrap_or_default();
        got.push((
            m.key().map(|k| k.to_vec()),
            m.payload().map(|p| p.to_vec()),
            m.timestamp(),
            hdrs,
        ));
    });
    assert_eq!(got[0].0.as_deref(), Some(&b"k1"[..]));
    assert_eq!(got[0].1.as_deref(), Some(&b"v1"[..]));
    assert_eq!(got[0].2, Timestamp::CreateTime(1_600_000_000_123));
    assert_eq!(
        got[0].3,
        vec![
            ("trace".into(), Some(b"abc".to_vec())),
            ("empty".into(), Some(vec![])),
            ("null".into(), None)
        ]
    );
    assert_eq!(got[1].0, None);
    assert_eq!(got[1].1.as_deref(), Some(&b"no key"[..]));
    assert_eq!(
        got[2].1.as_deref(),
        Some(&b""[..]),
        "empty value stays empty, not null"
    );
    assert_eq!(got[3].1, None, "null value stays null");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_mebibyte_record_round_trips_and_oversize_is_refused() {
    let broker = Broker::start();
    broker
        .create_topic("big", 1, &[("max.message.bytes", "2097152")])
        .await;
    broker.create_topic("small", 1, &[]).await;
    let producer = broker.producer(&[
        ("message.max.bytes", "4000000"),
        ("compression.type", "none"),
    ]);
    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    producer
        .send(FutureRecord::<(), _>::to("big").payload(&big), SEND_TIMEOUT)
        .await
        .expect("1 MiB record stored");
    let err = producer
        .send(
            FutureRecord::<(), _>::to("small").payload(&vec![1u8; 1_100_000]),
            SEND_TIMEOUT,
        )
        .await
        .expect_err("beyond max.message.bytes");
    assert_eq!(
        err.0.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge)
    );
    let consumer = broker.consumer(&[("fetch.message.max.bytes", "4000000")]);
    consume(&consumer, "big", &[0], Offset::Beginning, 1, |m| {
        assert_eq!(payload(m), big)
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn every_compression_codec_round_trips() {
    let broker = Broker::start();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        broker.create_topic(&topic, 1, &[]).await;
        let producer = broker.producer(&[("compression.type", codec), ("linger.ms", "50")]);
        let sends: Vec<_> = (0..500)
            .map(|i| {
                let producer = producer.clone();
                let topic = topic.clone();
                async move {
                    let v = format!("{codec} record {i} {}", "x".repeat(100));
                    producer
                        .send(FutureRecord::<(), _>::to(&topic).payload(&v), SEND_TIMEOUT)
                        .await
                        .expect("delivered")
                }
            })
            .collect();
        futures::future::join_all(sends).await;
        let consumer = broker.consumer(&[]);
        let mut i = 0;
        consume(&consumer, &topic, &[0], Offset::Beginning, 500, |m| {
            assert_eq!(
                payload(m),
                format!("{codec} record {i} {}", "x".repeat(100)).into_bytes()
            );
            i += 1;
        });
        // The batches are stored compressed, as sent: the segment is much smaller than the data.
        let seg = broker
            .data_dir()
            .join(format!("{topic}-0/00000000000000000000.log"));
        let size = std::fs::metadata(seg).unwrap().len();
        assert!(size < 500 * 100 / 2, "{codec}: {size} bytes on disk");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn data_survives_a_clean_restart() {
    let mut broker = Broker::start();
    broker.create_topic("durable", 3, &[]).await;
    let producer = broker.producer(&[]);
    for i in 0..300 {
        producer
            .send(
                FutureRecord::to("durable")
                    .key(&format!("{i}"))
                    .payload(&format!("value {i}")),
                SEND_TIMEOUT,
            )
            .await
            .unwrap();
    }
    drop(producer);
    broker.stop();
    assert!(broker.data_dir().join("durable-0/.clean-shutdown").exists());
    broker.restart();
    let consumer = broker.consumer(&[]);
    let mut values = HashSet::new();
    consume(
        &consumer,
        "durable",
        &[0, 1, 2],
        Offset::Beginning,
        300,
        |m| {
            values.insert(payload(m));
        },
    );
    assert_eq!(values.len(), 300);
    // And the log goes on from where it was.
    let producer = broker.producer(&[]);
    let delivery = producer
        .send(
            FutureRecord::to("durable").key("0").payload("after"),
            SEND_TIMEOUT,
        )
        .await
        .unwrap();
    assert!(delivery.offset > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_offsets_earliest_latest_and_by_timestamp() {
    let broker = Broker::start();
    broker.create_topic("timed", 1, &[]).await;
    let producer = broker.producer(&[("linger.ms", "0")]);
    for (i, ts) in [1_000_000i64, 2_000_000, 3_000_000].iter().enumerate() {
        producer
            .send(
                FutureRecord::<(), _>::to("timed")
                    .payload(&format!("{i}"))
                    .timestamp(*ts),
                SEND_TIMEOUT,
            )
            .await
            .unwrap();
    }
    let consumer = broker.consumer(&[]);
    let (low, high) = consumer
        .fetch_watermarks("timed", 0, Timeout::After(SEND_TIMEOUT))
        .unwrap();
    assert_eq!((low, high), (0, 3));
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("timed", 0, Offset::Offset(1_500_000))
        .unwrap();
    let found = consumer.offsets_for_times(tpl, SEND_TIMEOUT).unwrap();
    assert_eq!(
        found.find_partition("timed", 0).unwrap().offset(),
        Offset::Offset(1)
    );
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("timed", 0, Offset::Offset(9_000_000))
        .unwrap();
    let found = consumer.offsets_for_times(tpl, SEND_TIMEOUT).unwrap();
    assert_eq!(
        found.find_partition("timed", 0).unwrap().offset(),
        Offset::End,
        "after the last record: -1"
    );

    // Inside one batch, the answer is the exact record, not the batch start.
    broker.create_topic("batched", 1, &[]).await;
    let producer = broker.producer(&[("linger.ms", "200"), ("compression.type", "lz4")]);
    let sends: Vec<_> = (0..10i64)
        .map(|i| {
            producer.send(
                FutureRecord::<(), _>::to("batched")
                    .payload("x")
                    .timestamp(1000 * (i + 1)),
                SEND_TIMEOUT,
            )
        })
        .collect();
    futures::future::join_all(sends).await;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("batched", 0, Offset::Offset(5500))
        .unwrap();
    let found = consumer.offsets_for_times(tpl, SEND_TIMEOUT).unwrap();
    assert_eq!(
        found.find_partition("batched", 0).unwrap().offset(),
        Offset::Offset(5),
        "the record stamped 6000"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_out_of_range_resets_per_auto_offset_reset() {
    let broker = Broker::start();
    broker.create_topic("range", 1, &[]).await;
    let producer = broker.producer(&[]);
    for i in 0..5 {
        producer
            .send(
                FutureRecord::<(), _>::to("range").payload(&format!("{i}")),
                SEND_TIMEOUT,
            )
            .await
            .unwrap();
    }
    // Offset 100 is beyond the log end: the broker answers OFFSET_OUT_OF_RANGE and
    // librdkafka resets to the earliest offset.
    let consumer = broker.consumer(&[("auto.offset.reset", "earliest")]);
    let mut first = None;
    consume(&consumer, "range", &[0], Offset::Offset(100), 1, |m| {
        first = Some(m.offset())
    });
    assert_eq!(first, Some(0));
}

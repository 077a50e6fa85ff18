//! Queues (share groups, KIP-932) with confluent-kafka's ShareConsumer against the real
//! binary: each record to one member, acknowledged, redelivered when released or when its
//! lock runs out, never again once accepted or rejected; and the protocol's errors.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::{leaders, metadata, Cluster};
use common::group::{produce, wait_until, Member};
use common::raw::Raw;
use common::share::{set_group_configs, Delivery, ShareMember};
use common::Broker;
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, ShareAcknowledgeRequest,
    ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse, ShareGroupHeartbeatRequest,
    ShareGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::FutureRecord;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A topic of one partition with `count` records, read by `group` from the beginning.
async fn queue_with(broker: &Broker, topic: &str, group: &str, count: usize) {
    broker.create_topic(topic, 1, &[]).await;
    set_group_configs(broker, group, &[("share.auto.offset.reset", "earliest")]);
    produce(broker, topic, 1, count, "r").await;
}

/// Offsets delivered, with how many times each was.
fn times_delivered(got: &[Delivery]) -> BTreeMap<i64, usize> {
    let mut m = BTreeMap::new();
    for d in got {
        *m.entry(d.offset).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn members_of_a_queue_together_get_every_record_once() {
    let broker = Broker::start();
    queue_with(&broker, "jobs", "workers", 300).await;
    let members: Vec<ShareMember> = (0..3)
        .map(|_| ShareMember::spawn(&broker.bootstrap(), "workers", "jobs", "accept", None))
        .collect();
    let all = || -> Vec<Delivery> { members.iter().flat_map(|m| m.got()).collect() };
    wait_until(60, "every record is delivered", || {
        times_delivered(&all()).len() == 300
    });
    produce(&broker, "jobs", 1, 300, "more").await;
    wait_until(60, "and every record produced while they run", || {
        times_delivered(&all()).len() == 600
    });
    std::thread::sleep(Duration::from_secs(1));
    let got = all();
    assert_eq!(got.len(), 600, "no record twice");
    assert!(got.iter().all(|d| d.delivery_count == 1));
    assert_eq!(
        times_delivered(&got).keys().copied().collect::<Vec<_>>(),
        (0..600).collect::<Vec<_>>()
    );
    for m in &members {
        assert!(m.errors().is_empty(), "{:?}", m.errors());
    }
}

/// Records trickling into a queue of several partitions: most responses hold a partition with
/// nothing to deliver beside one that has records. librdkafka drops a whole response it cannot
/// parse (a null record set did that), and the records that response acquired then wait out
/// their 30 s locks; here each arrives within seconds of being produced.
#[tokio::test(flavor = "multi_thread")]
async fn records_trickling_into_a_queue_reach_its_members_within_seconds() {
    const RECORDS: usize = 600;
    let broker = Broker::start();
    broker.create_topic("trickle", 3, &[]).await;
    set_group_configs(
        &broker,
        "sippers",
        &[("share.auto.offset.reset", "earliest")],
    );
    let members: Vec<ShareMember> = (0..3)
        .map(|_| ShareMember::spawn(&broker.bootstrap(), "sippers", "trickle", "accept", None))
        .collect();
    let all = || -> Vec<Delivery> { members.iter().flat_map(|m| m.got()).collect() };
    // One record per partition first, so that the trickle starts with the members joined.
    produce(&broker, "trickle", 3, 3, "warm").await;
    wait_until(60, "the members get the first records", || all().len() == 3);
    let producer = broker.producer(&[("linger.ms", "0")]);
    for i in 0..RECORDS {
        let value = format!("t-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to("trickle")
                    .partition(i as i32 % 3)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .expect("acknowledged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let produced = Instant::now();
    wait_until(60, "every record is delivered", || {
        all().len() >= RECORDS + 3
    });
    let to_last = produced.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let got = all();
    let distinct: BTreeSet<(i32, i64)> = got.iter().map(|d| (d.partition, d.offset)).collect();
    assert_eq!(distinct.len(), got.len(), "no record twice");
    assert_eq!(got.len(), RECORDS + 3);
    let slowest = got
        .iter()
        .filter(|d| d.value.starts_with("t-"))
        .max_by_key(|d| d.received_at - d.timestamp)
        .unwrap();
    let waited = slowest.received_at - slowest.timestamp;
    eprintln!("last record {to_last:?} after the last produce; slowest record {waited} ms");
    assert!(waited < 5_000, "a record waited {waited} ms: {slowest:?}");
    for m in &members {
        let unparsed: Vec<String> = m
            .log()
            .into_iter()
            .filter(|l| l.contains("parse failure") || l.contains("MessageSetSize"))
            .collect();
        assert!(
            unparsed.is_empty(),
            "librdkafka could not parse: {unparsed:?}"
        );
        assert!(m.errors().is_empty(), "{:?}", m.errors());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_members_records_come_back_after_their_lock_with_a_higher_count() {
    let broker = Broker::start();
    queue_with(&broker, "held", "holders", 20).await;
    set_group_configs(
        &broker,
        "holders",
        &[("share.record.lock.duration.ms", "2000")],
    );
    let mut holder = ShareMember::spawn(&broker.bootstrap(), "holders", "held", "hold", None);
    wait_until(30, "the holder holds records", || holder.holding());
    let acquired_at = Instant::now();
    let held: BTreeSet<i64> = holder.got().iter().map(|d| d.offset).collect();
    holder.kill();
    let taker = ShareMember::spawn(&broker.bootstrap(), "holders", "held", "accept", None);
    wait_until(30, "the taker gets all 20", || {
        times_delivered(&taker.got()).len() == 20
    });
    let waited = acquired_at.elapsed();
    for d in taker.got() {
        let expected = if held.contains(&d.offset) { 2 } else { 1 };
        assert_eq!(d.delivery_count, expected, "{d:?}");
    }
    // The held records came back only once their lock ran out (2 s, with a tolerance).
    assert!(
        waited >= Duration::from_millis(1500),
        "redelivered after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_released_record_comes_back_at_once_and_a_rejected_one_never() {
    let broker = Broker::start();
    queue_with(&broker, "rel", "releasers", 10).await;
    // Released on first delivery, accepted on the second: each offset twice, well within
    // the default 30 s lock (so not by its expiry).
    let started = Instant::now();
    let m = ShareMember::spawn(
        &broker.bootstrap(),
        "releasers",
        "rel",
        "release-once",
        None,
    );
    wait_until(20, "each record twice", || {
        times_delivered(&m.got())
            .values()
            .filter(|&&n| n == 2)
            .count()
            == 10
    });
    assert!(started.elapsed() < Duration::from_secs(25));
    let second: Vec<i64> = m
        .got()
        .iter()
        .filter(|d| d.delivery_count == 2)
        .map(|d| d.offset)
        .collect();
    assert_eq!(second, (0..10).collect::<Vec<_>>());

    broker.create_topic("rel-dlq", 1, &[]).await;
    set_group_configs(
        &broker,
        "rejecters",
        &[
            ("share.auto.offset.reset", "earliest"),
            ("errors.deadletterqueue.topic.name", "rel-dlq"),
        ],
    );
    let r = ShareMember::spawn(&broker.bootstrap(), "rejecters", "rel", "reject", Some(10));
    wait_until(20, "the rejecter got all and closed", || r.closed());
    let after = ShareMember::spawn(&broker.bootstrap(), "rejecters", "rel", "accept", None);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        after.got().is_empty(),
        "rejected records came back: {:?}",
        after.got()
    );
    produce(&broker, "rel", 1, 1, "late").await;
    wait_until(20, "the next record arrives", || after.got().len() == 1);
    assert_eq!(after.got()[0].offset, 10);
    // Every rejected record is in the dead-letter topic, saying where it came from and why.
    let letters = dead_letters(&broker, "rel-dlq", 10);
    for (i, (value, headers)) in letters.iter().enumerate() {
        assert_eq!(value, &format!("r-{i}"));
        assert_eq!(headers["__dlq.errors.topic"], "rel");
        assert_eq!(headers["__dlq.errors.partition"], "0");
        assert_eq!(headers["__dlq.errors.offset"], i.to_string());
        assert_eq!(headers["__dlq.errors.group.id"], "rejecters");
        assert_eq!(headers["__dlq.errors.delivery.count"], "1");
        assert_eq!(headers["__dlq.errors.reason"], "rejected");
    }
}

/// The first `count` records of a dead-letter topic: value and headers.
fn dead_letters(
    broker: &Broker,
    topic: &str,
    count: usize,
) -> Vec<(String, BTreeMap<String, String>)> {
    use rdkafka::message::{Headers, Message};
    let consumer = broker.consumer(&[]);
    let mut out = Vec::new();
    common::consume(
        &consumer,
        topic,
        &[0],
        rdkafka::Offset::Beginning,
        count,
        |m| {
            let mut headers = BTreeMap::new();
            if let Some(h) = m.headers() {
                for header in h.iter() {
                    let value = header
                        .value
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                    headers.insert(header.key.to_string(), value.unwrap_or_default());
                }
            }
            out.push((String::from_utf8(common::payload(m)).unwrap(), headers));
        },
    );
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_delivery_limit_archives_a_record_that_is_always_released() {
    let broker = Broker::start();
    queue_with(&broker, "poison", "limited", 5).await;
    broker.create_topic("poison-dlq", 1, &[]).await;
    set_group_configs(
        &broker,
        "limited",
        &[
            ("share.delivery.count.limit", "3"),
            ("errors.deadletterqueue.topic.name", "poison-dlq"),
        ],
    );
    let m = ShareMember::spawn(&broker.bootstrap(), "limited", "poison", "release", None);
    wait_until(30, "three deliveries each", || {
        times_delivered(&m.got()).values().all(|&n| n == 3) && m.got().len() == 15
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(m.got().len(), 15, "archived after the third delivery");
    assert_eq!(m.got().iter().map(|d| d.delivery_count).max(), Some(3));
    let letters = dead_letters(&broker, "poison-dlq", 5);
    for (i, (value, headers)) in letters.iter().enumerate() {
        assert_eq!(value, &format!("r-{i}"));
        assert_eq!(headers["__dlq.errors.delivery.count"], "3");
        assert_eq!(headers["__dlq.errors.reason"], "delivery count limit");
    }
    produce(&broker, "poison", 1, 1, "late").await;
    wait_until(20, "the member still gets new records", || {
        m.got().iter().any(|d| d.offset == 5)
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_acknowledgement_accepts_what_was_polled() {
    let broker = Broker::start();
    queue_with(&broker, "auto", "implicit", 50).await;
    let m = ShareMember::spawn(
        &broker.bootstrap(),
        "implicit",
        "auto",
        "implicit",
        Some(50),
    );
    wait_until(30, "it got all and closed", || m.closed());
    let next = ShareMember::spawn(&broker.bootstrap(), "implicit", "auto", "accept", None);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        next.got().is_empty(),
        "accepted records came back: {:?}",
        next.got()
    );
    produce(&broker, "auto", 1, 1, "late").await;
    wait_until(20, "the next record arrives", || next.got().len() == 1);
    assert_eq!(next.got()[0].offset, 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_crash_loses_no_acknowledgement_and_keeps_every_unacknowledged_record() {
    let mut broker = Broker::start();
    queue_with(&broker, "durable", "durables", 50).await;
    let first = ShareMember::spawn(
        &broker.bootstrap(),
        "durables",
        "durable",
        "accept",
        Some(50),
    );
    wait_until(30, "the first member accepted all 50 and closed", || {
        first.closed()
    });
    let accepted: BTreeSet<i64> = first.got().iter().map(|d| d.offset).collect();
    assert_eq!(accepted.len(), 50);
    // 50 more, held (acquired, never acknowledged) when the broker is SIGKILLed.
    produce(&broker, "durable", 1, 50, "second").await;
    let mut holder = ShareMember::spawn(&broker.bootstrap(), "durables", "durable", "hold", None);
    wait_until(30, "the holder holds records", || holder.holding());
    broker.kill();
    holder.kill();
    broker.restart();
    let after = ShareMember::spawn(&broker.bootstrap(), "durables", "durable", "accept", None);
    wait_until(60, "every unacknowledged record comes back", || {
        times_delivered(&after.got()).len() == 50
    });
    std::thread::sleep(Duration::from_secs(2));
    let again: BTreeSet<i64> = after.got().iter().map(|d| d.offset).collect();
    assert_eq!(
        again,
        (50..100).collect::<BTreeSet<i64>>(),
        "acknowledged records came back"
    );
    assert_eq!(after.got().len(), 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn delayed_records_reach_a_queue_no_earlier_than_their_time() {
    use rdkafka::message::{Header, OwnedHeaders};
    let broker = Broker::start();
    broker.create_topic("later", 1, &[]).await;
    set_group_configs(
        &broker,
        "patient",
        &[("share.auto.offset.reset", "earliest")],
    );
    let producer = broker.producer(&[]);
    let deliver_at = now_ms() + 6000;
    let at_text = deliver_at.to_string();
    // Records 0 and 2 wait (an absolute time, and a delay from their timestamp); 1 and 3 not.
    let delays = [
        Some(("sluice-deliver-at", at_text.as_str())),
        None,
        Some(("sluice-delay-ms", "4000")),
        None,
    ];
    for (i, header) in delays.into_iter().enumerate() {
        let value = format!("d-{i}");
        let mut record = FutureRecord::<(), _>::to("later").payload(&value);
        if let Some((key, v)) = header {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key,
                value: Some(v),
            }));
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("acknowledged");
    }
    let m = ShareMember::spawn(&broker.bootstrap(), "patient", "later", "accept", None);
    let reader = Member::start(
        &broker,
        "impatient",
        &["later"],
        &[
            ("group.protocol", "consumer"),
            ("auto.offset.reset", "earliest"),
        ],
    );
    // A consumer group reads them at once (they are in the log).
    wait_until(20, "the consumer group read all four", || {
        reader.seen().len() >= 4
    });
    assert!(
        now_ms() < deliver_at,
        "the consumer group was not held back"
    );
    wait_until(30, "all four reach the queue", || m.got().len() == 4);
    let got = m.got();
    let first_two: Vec<i64> = got.iter().take(2).map(|d| d.offset).collect();
    assert_eq!(
        first_two,
        vec![1, 3],
        "the records without a delay go first: {got:?}"
    );
    // Clocks are the same machine's; a little slack for the member's clock reading.
    let tolerance = 50;
    let of = |o: i64| got.iter().find(|d| d.offset == o).unwrap().clone();
    assert!(
        of(0).received_at + tolerance >= deliver_at,
        "{:?} before {deliver_at}",
        of(0)
    );
    assert!(
        of(2).received_at + tolerance >= of(2).timestamp + 4000,
        "{:?}",
        of(2)
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_group_and_a_share_group_read_one_topic_side_by_side() {
    let broker = Broker::start();
    queue_with(&broker, "both", "sharers", 200).await;
    let sharer = ShareMember::spawn(&broker.bootstrap(), "sharers", "both", "accept", None);
    let reader = Member::start(
        &broker,
        "readers",
        &["both"],
        &[("group.protocol", "consumer")],
    );
    wait_until(60, "both read everything", || {
        times_delivered(&sharer.got()).len() == 200 && reader.seen().len() >= 200
    });
    assert_eq!(sharer.got().len(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_in_a_cluster_survives_its_partition_leaders_death() {
    let mut c = Cluster::start_with(
        3,
        "\"offsets.topic.replication.factor\" = 3\n\"share.coordinator.state.topic.replication.factor\" = 3\n",
    );
    let topic = NewTopic::new("cq", 1, TopicReplication::Fixed(3));
    let created = c.brokers[0]
        .admin()
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap();
    created[0].as_ref().expect("created");
    wait_until(30, "every broker knows the topic", || {
        c.brokers
            .iter()
            .all(|b| leaders(b, "cq").first().is_some_and(|&l| l > 0))
    });
    set_group_configs(
        &c.brokers[0],
        "cg",
        &[("share.auto.offset.reset", "earliest")],
    );
    let bootstrap = c.bootstrap();
    let producer = c.brokers[0].producer(&[("bootstrap.servers", &bootstrap), ("acks", "all")]);
    let send = |n: usize, tag: &'static str| {
        let producer = producer.clone();
        async move {
            for i in 0..n {
                let value = format!("{tag}-{i}");
                producer
                    .send(
                        FutureRecord::<(), _>::to("cq").payload(&value),
                        Duration::from_secs(30),
                    )
                    .await
                    .expect("acknowledged");
            }
        }
    };
    send(50, "first").await;
    let first = ShareMember::spawn(&bootstrap, "cg", "cq", "accept", Some(50));
    wait_until(60, "the first member accepted all 50 and closed", || {
        first.closed()
    });
    produce_more_and_hold(&c, &bootstrap, send(50, "second")).await;
    let leader = leaders(&c.brokers[0], "cq")[0];
    // The share coordinator (FindCoordinator, key type 2) may be the leader or another broker:
    // both paths (local, and Read/WriteShareGroupState) are taken over repeated runs.
    let key = format!("cg:{}:0", topic_id(&c.brokers[0], "cq"));
    let coordinator = share_coordinator(&c.brokers[0], &key);
    assert!(
        (1..=3).contains(&coordinator),
        "a live share coordinator: {coordinator}"
    );
    eprintln!("partition leader {leader}, share coordinator {coordinator}");
    c.broker(leader).kill();
    let watcher = if leader == 1 { 1 } else { 0 };
    wait_until(60, "another broker leads the partition", || {
        leaders(&c.brokers[watcher], "cq")
            .first()
            .is_some_and(|&l| l > 0 && l != leader)
    });
    let after = ShareMember::spawn(&bootstrap, "cg", "cq", "accept", None);
    wait_until(90, "every unacknowledged record comes back", || {
        times_delivered(&after.got()).len() == 50
    });
    std::thread::sleep(Duration::from_secs(2));
    let again: BTreeSet<i64> = after.got().iter().map(|d| d.offset).collect();
    assert_eq!(
        again,
        (50..100).collect::<BTreeSet<i64>>(),
        "acknowledged records came back"
    );
    assert_eq!(after.got().len(), 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_reach_a_topic_led_by_another_broker() {
    let c = Cluster::start(2);
    // The queue's partition on broker 1, its dead-letter topic's on broker 2.
    let source = NewTopic::new("far", 1, TopicReplication::Variable(&[&[1]]));
    let letters = NewTopic::new("far-dlq", 1, TopicReplication::Variable(&[&[2]]));
    let created = c.brokers[0]
        .admin()
        .create_topics([&source, &letters], &AdminOptions::new())
        .await
        .unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    wait_until(30, "both brokers know both topics", || {
        c.brokers.iter().all(|b| {
            leaders(b, "far").first() == Some(&1) && leaders(b, "far-dlq").first() == Some(&2)
        })
    });
    set_group_configs(
        &c.brokers[0],
        "far-g",
        &[
            ("share.auto.offset.reset", "earliest"),
            ("errors.deadletterqueue.topic.name", "far-dlq"),
        ],
    );
    produce(&c.brokers[0], "far", 1, 3, "r").await;
    let bootstrap = c.bootstrap();
    let r = ShareMember::spawn(&bootstrap, "far-g", "far", "reject", Some(3));
    wait_until(30, "the rejecter got all and closed", || r.closed());
    let letters = dead_letters(&c.brokers[0], "far-dlq", 3);
    for (i, (value, headers)) in letters.iter().enumerate() {
        assert_eq!(value, &format!("r-{i}"));
        assert_eq!(headers["__dlq.errors.topic"], "far");
        assert_eq!(headers["__dlq.errors.offset"], i.to_string());
        assert_eq!(headers["__dlq.errors.reason"], "rejected");
    }
}

/// Produces with `sent` while a member holds what it gets (acquired, never acknowledged),
/// then kills that member.
async fn produce_more_and_hold(
    _c: &Cluster,
    bootstrap: &str,
    sent: impl std::future::Future<Output = ()>,
) {
    sent.await;
    let mut holder = ShareMember::spawn(bootstrap, "cg", "cq", "hold", None);
    wait_until(60, "the holder holds records", || holder.holding());
    holder.kill();
}

// ---- the protocol, raw ----

fn topic_id(broker: &Broker, topic: &str) -> uuid::Uuid {
    metadata(broker)
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .expect("topic known")
        .topic_id
}

/// The share coordinator of a key (FindCoordinator v4, key type 2).
fn share_coordinator(broker: &Broker, key: &str) -> i32 {
    let req = FindCoordinatorRequest::default()
        .with_key_type(2)
        .with_coordinator_keys(vec![s(key)]);
    let mut raw = Raw::connect(broker);
    let c = raw.send(ApiKey::FindCoordinator, 4, &req);
    let r: FindCoordinatorResponse = raw.receive_response(ApiKey::FindCoordinator, 4, c);
    assert_eq!(
        r.coordinators[0].error_code, 0,
        "{:?}",
        r.coordinators[0].error_message
    );
    r.coordinators[0].node_id.0
}

fn heartbeat(
    raw: &mut Raw,
    group: &str,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
) -> ShareGroupHeartbeatResponse {
    let req = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_subscribed_topic_names(topics.map(|ts| ts.iter().map(|t| TopicName(s(t))).collect()));
    let c = raw.send(ApiKey::ShareGroupHeartbeat, 1, &req);
    raw.receive_response(ApiKey::ShareGroupHeartbeat, 1, c)
}

fn share_fetch(
    raw: &mut Raw,
    group: &str,
    member: &str,
    epoch: i32,
    topic: uuid::Uuid,
    acks: Vec<AcknowledgementBatch>,
) -> ShareFetchResponse {
    let req = ShareFetchRequest::default()
        .with_group_id(Some(GroupId(s(group))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_max_records(100)
        .with_batch_size(100)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![FetchPartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(acks)])]);
    let c = raw.send(ApiKey::ShareFetch, 1, &req);
    raw.receive_response(ApiKey::ShareFetch, 1, c)
}

fn accept(first: i64, last: i64) -> AcknowledgementBatch {
    AcknowledgementBatch::default()
        .with_first_offset(first)
        .with_last_offset(last)
        .with_acknowledge_types(vec![1])
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_acknowledgements_and_sessions_get_kafka_errors() {
    let broker = Broker::start();
    queue_with(&broker, "raw", "rawg", 5).await;
    let id = topic_id(&broker, "raw");
    let mut raw = Raw::connect(&broker);
    const UNKNOWN_MEMBER_ID: i16 = 25;
    const FENCED_MEMBER_EPOCH: i16 = 110;
    const INVALID_RECORD_STATE: i16 = 121;
    const SHARE_SESSION_NOT_FOUND: i16 = 122;
    const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
    const INVALID_REQUEST: i16 = 42;

    // Membership: a heartbeat from a member that never joined, and one at a stale epoch.
    assert_eq!(
        heartbeat(&mut raw, "rawg", "nobody", 3, None).error_code,
        UNKNOWN_MEMBER_ID
    );
    let joined = heartbeat(&mut raw, "rawg", "m1", 0, Some(&["raw"]));
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    let assigned = joined.assignment.expect("an assignment on joining");
    assert_eq!(assigned.topic_partitions[0].topic_id, id);
    assert_eq!(assigned.topic_partitions[0].partitions, vec![0]);
    assert_eq!(
        heartbeat(&mut raw, "rawg", "m1", joined.member_epoch + 5, None).error_code,
        FENCED_MEMBER_EPOCH
    );

    // A session cannot open with acknowledgements.
    let r = share_fetch(&mut raw, "rawg", "m1", 0, id, vec![accept(0, 0)]);
    assert_eq!(r.error_code, INVALID_REQUEST);
    // It opens at 0 and gets the records.
    let r = share_fetch(&mut raw, "rawg", "m1", 0, id, vec![]);
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.acquired_records[0].first_offset, 0);
    assert_eq!(p.acquired_records[0].last_offset, 4);
    assert_eq!(p.acquired_records[0].delivery_count, 1);
    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
    // The wrong next epoch, and a session that does not exist.
    let r = share_fetch(&mut raw, "rawg", "m1", 5, id, vec![]);
    assert_eq!(r.error_code, INVALID_SHARE_SESSION_EPOCH);
    let r = share_fetch(&mut raw, "rawg", "stranger", 1, id, vec![]);
    assert_eq!(r.error_code, SHARE_SESSION_NOT_FOUND);
    // Offsets never delivered cannot be acknowledged; nothing else in the request changes.
    let r = share_fetch(&mut raw, "rawg", "m1", 1, id, vec![accept(3, 9)]);
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.responses[0].partitions[0].acknowledge_error_code,
        INVALID_RECORD_STATE
    );
    // A good acknowledgement by ShareAcknowledge; then the same again is refused.
    let ack = |epoch: i32, member: &str, raw: &mut Raw| -> ShareAcknowledgeResponse {
        let req = ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(s("rawg"))))
            .with_member_id(Some(s(member)))
            .with_share_session_epoch(epoch)
            .with_topics(vec![AcknowledgeTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![AcknowledgePartition::default()
                    .with_partition_index(0)
                    .with_acknowledgement_batches(vec![AckBatch::default()
                        .with_first_offset(0)
                        .with_last_offset(4)
                        .with_acknowledge_types(vec![1])])])]);
        let c = raw.send(ApiKey::ShareAcknowledge, 1, &req);
        raw.receive_response(ApiKey::ShareAcknowledge, 1, c)
    };
    let r = ack(2, "m1", &mut raw);
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    let r = ack(3, "m1", &mut raw);
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        INVALID_RECORD_STATE
    );
    let r = ack(1, "stranger", &mut raw);
    assert_eq!(r.error_code, SHARE_SESSION_NOT_FOUND);
    // Accepted records are done: a new session gets nothing more until new records come.
    let r = share_fetch(&mut raw, "rawg", "m1", 0, id, vec![]);
    assert!(r
        .responses
        .iter()
        .all(|t| t.partitions.iter().all(|p| p.acquired_records.is_empty())));
}

/// Every partition of a ShareFetch response carries a record set, empty when it has nothing to
/// deliver or an error, never null (as Kafka's ShareFetchResponse: librdkafka drops a whole
/// response with a null one, records acquired on other partitions with it).
#[tokio::test(flavor = "multi_thread")]
async fn no_partition_of_a_share_fetch_response_has_a_null_record_set() {
    const UNKNOWN_TOPIC_ID: i16 = 100;
    let broker = Broker::start();
    broker.create_topic("sparse", 2, &[]).await;
    set_group_configs(
        &broker,
        "sparseg",
        &[("share.auto.offset.reset", "earliest")],
    );
    // Records on partition 0 only.
    produce(&broker, "sparse", 1, 3, "only").await;
    let id = topic_id(&broker, "sparse");
    let mut raw = Raw::connect(&broker);
    let joined = heartbeat(&mut raw, "sparseg", "m1", 0, Some(&["sparse"]));
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    let fetch = |raw: &mut Raw, version: i16, epoch: i32| -> Vec<(i32, i16, Option<usize>)> {
        let partitions = |topic: uuid::Uuid, indexes: &[i32]| {
            FetchTopic::default().with_topic_id(topic).with_partitions(
                indexes
                    .iter()
                    .map(|&p| FetchPartition::default().with_partition_index(p))
                    .collect(),
            )
        };
        let req = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(s("sparseg"))))
            .with_member_id(Some(s("m1")))
            .with_share_session_epoch(epoch)
            .with_max_wait_ms(300)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_max_records(100)
            .with_batch_size(100)
            .with_topics(vec![
                partitions(id, &[0, 1]),
                partitions(uuid::Uuid::from_u128(0xdead), &[0]),
            ]);
        let c = raw.send(ApiKey::ShareFetch, version, &req);
        let r: ShareFetchResponse = raw.receive_response(ApiKey::ShareFetch, version, c);
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        let mut answers: Vec<(i32, i16, Option<usize>)> = r
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| {
                let records = p.records.as_ref().map(|r| r.len());
                (p.partition_index, p.error_code, records)
            })
            .collect();
        answers.sort();
        answers
    };
    // Records on partition 0, nothing on 1, an unknown topic's partition 0.
    let first = fetch(&mut raw, 1, 0);
    assert!(
        first.iter().all(|(_, _, records)| records.is_some()),
        "{first:?}"
    );
    assert!(first.contains(&(0, UNKNOWN_TOPIC_ID, Some(0))), "{first:?}");
    assert!(
        first
            .iter()
            .any(|&(p, e, r)| (p, e) == (0, 0) && r > Some(0)),
        "{first:?}"
    );
    // Nothing left to deliver anywhere (the first fetch acquired every record), at v1 and v2.
    for (version, epoch) in [(1, 1), (2, 2)] {
        let answers = fetch(&mut raw, version, epoch);
        assert!(
            answers.iter().all(|&(_, _, records)| records == Some(0)),
            "v{version}: {answers:?}"
        );
    }
}

/// A version 2 ShareFetch (KIP-1206's acquire modes: 0 batch-optimized, 1 record-limit,
/// 255 renew only).
#[allow(clippy::too_many_arguments)]
fn share_fetch_v2(
    raw: &mut Raw,
    member: &str,
    epoch: i32,
    topic: uuid::Uuid,
    mode: i8,
    max_records: i32,
    acks: Vec<AcknowledgementBatch>,
) -> ShareFetchResponse {
    let req = ShareFetchRequest::default()
        .with_group_id(Some(GroupId(s("v2g"))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(200)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_max_records(max_records)
        .with_batch_size(max_records)
        .with_share_acquire_mode(mode)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![FetchPartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(acks)])]);
    let c = raw.send(ApiKey::ShareFetch, 2, &req);
    raw.receive_response(ApiKey::ShareFetch, 2, c)
}

fn acquired_offsets(r: &ShareFetchResponse) -> Vec<i64> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.acquired_records)
        .flat_map(|a| a.first_offset..=a.last_offset)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn version_2_limits_acquisition_to_max_records_and_renews_locks() {
    const RENEW: i8 = 4;
    const INVALID_RECORD_STATE: i16 = 121;
    const INVALID_REQUEST: i16 = 42;
    let broker = Broker::start();
    queue_with(&broker, "v2", "v2g", 10).await;
    set_group_configs(&broker, "v2g", &[("share.record.lock.duration.ms", "2000")]);
    let id = topic_id(&broker, "v2");
    let (mut m1, mut m2) = (Raw::connect(&broker), Raw::connect(&broker));
    for (raw, member) in [(&mut m1, "m1"), (&mut m2, "m2")] {
        assert_eq!(
            heartbeat(raw, "v2g", member, 0, Some(&["v2"])).error_code,
            0
        );
    }
    let started = Instant::now();

    // Record-limit mode: three records, however the ten were batched.
    let r = share_fetch_v2(&mut m1, "m1", 0, id, 1, 3, vec![]);
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(acquired_offsets(&r), vec![0, 1, 2]);
    assert_eq!(r.acquisition_lock_timeout_ms, 2000);

    // Renew them after 1.3 s with a renew-only fetch: nothing more is acquired.
    std::thread::sleep(Duration::from_millis(1300).saturating_sub(started.elapsed()));
    let renew = AcknowledgementBatch::default()
        .with_first_offset(0)
        .with_last_offset(2)
        .with_acknowledge_types(vec![RENEW]);
    let r = share_fetch_v2(&mut m1, "m1", 1, id, -1, 3, vec![renew]);
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let p = &r.responses[0].partitions[0];
    assert_eq!(
        p.acknowledge_error_code, 0,
        "{:?}",
        p.acknowledge_error_message
    );
    assert!(
        acquired_offsets(&r).is_empty(),
        "a renew-only fetch acquires nothing"
    );

    // At 2.5 s the first lock would have run out; renewed, the records stay with m1, and m2
    // gets the next ones (redeliveries would have come first).
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(started.elapsed()));
    let r = share_fetch_v2(&mut m2, "m2", 0, id, 1, 10, vec![]);
    let got = acquired_offsets(&r);
    assert_eq!(
        got,
        (3..10).collect::<Vec<_>>(),
        "m1's renewed records are not redelivered"
    );
    // m2 cannot renew what it does not hold.
    let not_held = AcknowledgementBatch::default()
        .with_first_offset(0)
        .with_last_offset(0)
        .with_acknowledge_types(vec![RENEW]);
    let r = share_fetch_v2(&mut m2, "m2", 1, id, -1, 10, vec![not_held]);
    assert_eq!(
        r.responses[0].partitions[0].acknowledge_error_code,
        INVALID_RECORD_STATE
    );

    // m1 accepts them with ShareAcknowledge v2, which tells the lock duration.
    let req = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(s("v2g"))))
        .with_member_id(Some(s("m1")))
        .with_share_session_epoch(2)
        .with_topics(vec![AcknowledgeTopic::default()
            .with_topic_id(id)
            .with_partitions(vec![AcknowledgePartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(vec![AckBatch::default()
                    .with_first_offset(0)
                    .with_last_offset(2)
                    .with_acknowledge_types(vec![1])])])]);
    let c = m1.send(ApiKey::ShareAcknowledge, 2, &req);
    let r: ShareAcknowledgeResponse = m1.receive_response(ApiKey::ShareAcknowledge, 2, c);
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert_eq!(r.acquisition_lock_timeout_ms, 2000);

    // An acquire mode that does not exist.
    let r = share_fetch_v2(&mut m1, "m1", 3, id, 7, 10, vec![]);
    assert_eq!(r.error_code, INVALID_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_settings_give_share_groups_their_defaults_and_group_configs_win() {
    let broker = Broker::start_with_config("\"group.share.record.lock.duration.ms\" = 4000\n");
    queue_with(&broker, "defaults", "dflt", 3).await;
    let id = topic_id(&broker, "defaults");
    let mut raw = Raw::connect(&broker);
    assert_eq!(
        heartbeat(&mut raw, "dflt", "m1", 0, Some(&["defaults"])).error_code,
        0
    );
    let r = share_fetch(&mut raw, "dflt", "m1", 0, id, vec![]);
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(r.acquisition_lock_timeout_ms, 4000, "the broker's default");
    set_group_configs(
        &broker,
        "dflt",
        &[("share.record.lock.duration.ms", "7000")],
    );
    let r = share_fetch(&mut raw, "dflt", "m1", 1, id, vec![]);
    assert_eq!(r.acquisition_lock_timeout_ms, 7000, "the group's own");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_share_group_is_described_with_its_members_and_start_offsets() {
    use kafka_protocol::messages::describe_share_group_offsets_request::{
        DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
    };
    use kafka_protocol::messages::{
        DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse,
        ShareGroupDescribeRequest, ShareGroupDescribeResponse,
    };
    let broker = Broker::start();
    queue_with(&broker, "desc", "described", 30).await;
    let m = ShareMember::spawn(&broker.bootstrap(), "described", "desc", "accept", Some(30));
    wait_until(30, "the member accepted all 30", || m.got().len() == 30);
    let mut raw = Raw::connect(&broker);
    let req = ShareGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(s("described")), GroupId(s("nobody"))]);
    let c = raw.send(ApiKey::ShareGroupDescribe, 1, &req);
    let r: ShareGroupDescribeResponse = raw.receive_response(ApiKey::ShareGroupDescribe, 1, c);
    let g = &r.groups[0];
    assert_eq!(g.error_code, 0, "{:?}", g.error_message);
    assert!(["Stable", "Empty"].contains(&g.group_state.as_str()));
    if let Some(member) = g.members.first() {
        assert_eq!(member.subscribed_topic_names[0].0.as_str(), "desc");
        assert_eq!(member.assignment.topic_partitions[0].partitions, vec![0]);
    }
    assert_eq!(r.groups[1].error_code, 69, "GROUP_ID_NOT_FOUND");

    wait_until(20, "the member closed", || m.closed());
    let offsets = |raw: &mut Raw| -> DescribeShareGroupOffsetsResponse {
        let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(s("described")))
                .with_topics(Some(vec![DescribeShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(s("desc")))
                    .with_partitions(vec![0])])),
        ]);
        let c = raw.send(ApiKey::DescribeShareGroupOffsets, 0, &req);
        raw.receive_response(ApiKey::DescribeShareGroupOffsets, 0, c)
    };
    let r = offsets(&mut raw);
    let p = &r.groups[0].topics[0].partitions[0];
    assert_eq!(
        (p.error_code, p.start_offset),
        (0, 30),
        "every record accepted"
    );

    // `sluice queue describe`: done, then a group holding every record.
    let (code, out) = queue_describe(&broker, "described", &["--topic", "desc"]);
    assert_eq!(code, 0, "{out}");
    let row = &out["partitions"][0];
    assert_eq!(
        (row["start_offset"].as_i64(), row["log_end_offset"].as_i64()),
        (Some(30), Some(30))
    );
    assert_eq!(row["unfinished"].as_i64(), Some(0));
    set_group_configs(
        &broker,
        "peek",
        &[
            ("share.auto.offset.reset", "earliest"),
            ("share.record.lock.duration.ms", "6000"),
        ],
    );
    let mut holder = ShareMember::spawn(&broker.bootstrap(), "peek", "desc", "hold", None);
    wait_until(30, "the holder holds all 30", || holder.got().len() == 30);
    let (code, out) = queue_describe(&broker, "peek", &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["state"], "Stable");
    assert_eq!(out["members"].as_array().map(Vec::len), Some(1));
    let row = &out["partitions"][0];
    assert_eq!(row["topic"], "desc");
    assert_eq!(row["unfinished"].as_i64(), Some(30), "{out}");
    // What is held reaches the stored state within about a second, with no acknowledgement.
    wait_until(10, "the 30 held records show as acquired", || {
        let (_, out) = queue_describe(&broker, "peek", &[]);
        out["partitions"][0]["acquired"].as_i64() == Some(30)
    });
    let (_, out) = queue_describe(&broker, "peek", &[]);
    assert_eq!(
        out["partitions"][0]["delivery_counts"]["1"].as_i64(),
        Some(30),
        "{out}"
    );
    // The holder dies: with nobody fetching, its locks run out and the records show as
    // available again, delivered once.
    holder.kill();
    wait_until(15, "the 30 records show as available", || {
        let (_, out) = queue_describe(&broker, "peek", &[]);
        let row = &out["partitions"][0];
        row["available"].as_i64() == Some(30) && row["acquired"].as_i64() == Some(0)
    });
    let (code, _) = queue_describe(&broker, "never-was", &[]);
    assert_eq!(code, 1, "an unknown group");
}

/// Runs `sluice queue describe GROUP --output json`; its exit code and output.
fn queue_describe(broker: &Broker, group: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "queue",
            "describe",
            group,
            "--bootstrap",
            &broker.bootstrap(),
            "--output",
            "json",
        ])
        .args(extra)
        .output()
        .expect("sluice runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_share_groups_offsets_are_altered_and_deleted() {
    use kafka_protocol::messages::alter_share_group_offsets_request::{
        AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
    };
    use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
    use kafka_protocol::messages::{
        AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse,
        DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse,
    };
    let broker = Broker::start();
    queue_with(&broker, "adm", "admins", 20).await;
    let first = ShareMember::spawn(&broker.bootstrap(), "admins", "adm", "accept", Some(20));
    wait_until(30, "the first member accepted all and left", || {
        first.closed()
    });
    let mut raw = Raw::connect(&broker);
    let alter = |raw: &mut Raw, start: i64| -> AlterShareGroupOffsetsResponse {
        let req = AlterShareGroupOffsetsRequest::default()
            .with_group_id(GroupId(s("admins")))
            .with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(s("adm")))
                .with_partitions(vec![
                    AlterShareGroupOffsetsRequestPartition::default()
                        .with_partition_index(0)
                        .with_start_offset(start),
                ])]);
        let c = raw.send(ApiKey::AlterShareGroupOffsets, 0, &req);
        raw.receive_response(ApiKey::AlterShareGroupOffsets, 0, c)
    };
    // Back to offset 5: the next member gets 5..19 again, as new deliveries.
    let r = alter(&mut raw, 5);
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    let second = ShareMember::spawn(&broker.bootstrap(), "admins", "adm", "accept", Some(15));
    wait_until(30, "the second member got 15 and left", || second.closed());
    let offsets: Vec<i64> = second.got().iter().map(|d| d.offset).collect();
    assert_eq!(offsets, (5..20).collect::<Vec<_>>());
    assert!(second.got().iter().all(|d| d.delivery_count == 1));
    // Deleted: the group starts where share.auto.offset.reset says (earliest).
    let req = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(s("admins")))
        .with_topics(vec![
            DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(TopicName(s("adm")))
        ]);
    let c = raw.send(ApiKey::DeleteShareGroupOffsets, 0, &req);
    let r: DeleteShareGroupOffsetsResponse =
        raw.receive_response(ApiKey::DeleteShareGroupOffsets, 0, c);
    assert_eq!(
        (r.error_code, r.responses[0].error_code),
        (0, 0),
        "{:?}",
        r.error_message
    );
    let third = ShareMember::spawn(&broker.bootstrap(), "admins", "adm", "accept", Some(20));
    wait_until(30, "the third member got all 20", || third.closed());
    assert_eq!(times_delivered(&third.got()).len(), 20);
    // Not while the group has members; bad offsets are refused.
    let holder = ShareMember::spawn(&broker.bootstrap(), "admins", "adm", "hold", None);
    produce(&broker, "adm", 1, 1, "more").await;
    wait_until(30, "a member holds a record", || holder.holding());
    assert_eq!(alter(&mut raw, 0).error_code, 68, "GROUP_NOT_EMPTY");
}

/// Sessions are bounded, and only members the group coordinator knows take a slot: before
/// the fix 2,000 sessions opened with made-up member ids of a group that does not exist
/// locked real members out with SHARE_SESSION_LIMIT_REACHED.
#[tokio::test(flavor = "multi_thread")]
async fn share_sessions_are_bounded_and_only_members_open_them() {
    const UNKNOWN_MEMBER_ID: i16 = 25;
    const SHARE_SESSION_LIMIT_REACHED: i16 = 133;
    let broker = Broker::start();
    broker.create_topic("many", 1, &[]).await;
    let mut raw = Raw::connect(&broker);
    let open = |raw: &mut Raw, member: &str| -> i16 {
        let req = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(s("many"))))
            .with_member_id(Some(s(member)))
            .with_share_session_epoch(0)
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_max_records(10);
        let c = raw.send(ApiKey::ShareFetch, 1, &req);
        let r: ShareFetchResponse = raw.receive_response(ApiKey::ShareFetch, 1, c);
        r.error_code
    };
    let join = |raw: &mut Raw, member: &str| {
        let r = heartbeat(raw, "many", member, 0, Some(&["many"]));
        assert_eq!(r.error_code, 0, "{member} joins: {:?}", r.error_message);
    };
    for i in 0..2100 {
        assert_eq!(
            open(&mut raw, &format!("stranger-{i}")),
            UNKNOWN_MEMBER_ID,
            "a session for a member nobody knows"
        );
    }
    for i in 0..2000 {
        let member = format!("m{i}");
        join(&mut raw, &member);
        assert_eq!(open(&mut raw, &member), 0, "session {i}");
    }
    join(&mut raw, "one-too-many");
    assert_eq!(open(&mut raw, "one-too-many"), SHARE_SESSION_LIMIT_REACHED);
    // A member that has one may open it again (it replaces its own).
    assert_eq!(open(&mut raw, "m7"), 0);
}

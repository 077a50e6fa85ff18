//! Transactions with librdkafka against one broker: committed records are visible to
//! read_committed consumers, aborted ones never; read_uncommitted sees both; several
//! producers interleave on the same partitions; a zombie producer is fenced; offsets sent
//! to a transaction count only on commit; a transaction open past its timeout is aborted;
//! transactions survive a broker SIGKILL, each committed or aborted, never torn.

mod common;

use std::time::{Duration, Instant};

use common::txn::{
    check_whole_or_nothing, read_all, recover, run_transaction, send, txn_producer, Outcome,
    TxnProducer, RECORDS, TIMEOUT,
};
use common::Broker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

#[test]
fn committed_records_are_visible_to_read_committed_and_aborted_ones_never() {
    let broker = Broker::start();
    futures::executor::block_on(broker.create_topic("orders", 2, &[]));
    let p = txn_producer(broker.config(), "txn-basic", &[]);
    p.begin_transaction().unwrap();
    for i in 0..5 {
        send(&p, "orders", i % 2, &format!("c1-{i}"));
    }
    p.commit_transaction(TIMEOUT).expect("commit");
    p.begin_transaction().unwrap();
    for i in 0..5 {
        send(&p, "orders", i % 2, &format!("a1-{i}"));
    }
    p.flush(TIMEOUT).unwrap();
    p.abort_transaction(TIMEOUT).expect("abort");
    p.begin_transaction().unwrap();
    send(&p, "orders", 0, "c2-0");
    p.commit_transaction(TIMEOUT).expect("commit");

    let committed = read_all(broker.config(), "orders", 2, "read_committed");
    assert_eq!(committed[&0], ["c1-0", "c1-2", "c1-4", "c2-0"]);
    assert_eq!(committed[&1], ["c1-1", "c1-3"]);
    let all = read_all(broker.config(), "orders", 2, "read_uncommitted");
    assert_eq!(
        all[&0],
        ["c1-0", "c1-2", "c1-4", "a1-0", "a1-2", "a1-4", "c2-0"]
    );
    assert_eq!(all[&1], ["c1-1", "c1-3", "a1-1", "a1-3"]);
}

#[test]
fn an_open_transaction_holds_read_committed_consumers_back_until_it_ends() {
    let broker = Broker::start();
    let plain = broker.producer(&[]);
    let open = txn_producer(broker.config(), "txn-open", &[]);
    open.begin_transaction().unwrap();
    send(&open, "ledger", 0, "pending-0");
    open.flush(TIMEOUT).unwrap();
    // A plain record after the open transaction's first: read_committed stops before both.
    futures::executor::block_on(
        plain.send(
            rdkafka::producer::FutureRecord::<(), str>::to("ledger")
                .partition(0)
                .payload("plain-after"),
            TIMEOUT,
        ),
    )
    .expect("plain produce");
    assert_eq!(
        read_all(broker.config(), "ledger", 1, "read_committed")[&0],
        Vec::<String>::new()
    );
    assert_eq!(
        read_all(broker.config(), "ledger", 1, "read_uncommitted")[&0],
        ["pending-0", "plain-after"]
    );
    // ListOffsets' latest offset: the last stable offset for read_committed.
    let latest = |isolation: &str| {
        let c: BaseConsumer = broker
            .config()
            .set("isolation.level", isolation)
            .create()
            .unwrap();
        c.fetch_watermarks("ledger", 0, TIMEOUT).unwrap().1
    };
    assert_eq!(
        (latest("read_committed"), latest("read_uncommitted")),
        (0, 2)
    );
    // Operators see the stuck last stable offset and the open transaction in /metrics.
    let (_, metrics) = common::http_get(&broker, "/metrics");
    assert!(
        metrics.contains("sluice_partition_last_stable_offset{topic=\"ledger\",partition=\"0\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_transactions{state=\"Ongoing\"} 1"),
        "{metrics}"
    );
    open.commit_transaction(TIMEOUT).unwrap();
    assert_eq!(
        read_all(broker.config(), "ledger", 1, "read_committed")[&0],
        ["pending-0", "plain-after"]
    );
    assert_eq!(latest("read_committed"), 3, "past the commit marker");
}

#[test]
fn interleaved_transactions_of_several_producers_end_independently() {
    let broker = Broker::start();
    futures::executor::block_on(broker.create_topic("mixed", 2, &[]));
    let producers: Vec<TxnProducer> = (0..3)
        .map(|i| txn_producer(broker.config(), &format!("txn-mixed-{i}"), &[]))
        .collect();
    for p in &producers {
        p.begin_transaction().unwrap();
    }
    // Each producer writes to both partitions, in turns, so their records interleave.
    for round in 0..4 {
        for (i, p) in producers.iter().enumerate() {
            send(p, "mixed", round % 2, &format!("p{i}-{round}"));
            p.flush(TIMEOUT).unwrap();
        }
    }
    // Producer 1 aborts, the others commit, in a different order than they began.
    producers[2].commit_transaction(TIMEOUT).unwrap();
    producers[1].abort_transaction(TIMEOUT).unwrap();
    producers[0].commit_transaction(TIMEOUT).unwrap();
    let committed = read_all(broker.config(), "mixed", 2, "read_committed");
    assert_eq!(committed[&0], ["p0-0", "p2-0", "p0-2", "p2-2"]);
    assert_eq!(committed[&1], ["p0-1", "p2-1", "p0-3", "p2-3"]);
    let all = read_all(broker.config(), "mixed", 2, "read_uncommitted");
    assert_eq!(all[&0].len() + all[&1].len(), 12);
}

#[test]
fn a_zombie_producer_is_fenced_by_a_new_one_with_the_same_transactional_id() {
    let broker = Broker::start();
    let zombie = txn_producer(broker.config(), "txn-zombie", &[]);
    zombie.begin_transaction().unwrap();
    send(&zombie, "fenced", 0, "zombie-0");
    zombie.flush(TIMEOUT).unwrap();
    // The new instance aborts the zombie's open transaction and takes over.
    let fresh = txn_producer(broker.config(), "txn-zombie", &[]);
    fresh.begin_transaction().unwrap();
    send(&fresh, "fenced", 0, "fresh-0");
    fresh.commit_transaction(TIMEOUT).unwrap();
    send(&zombie, "fenced", 0, "zombie-1");
    let err = zombie
        .commit_transaction(TIMEOUT)
        .expect_err("the zombie cannot commit");
    let fatal = err.rdkafka_error_code().is_some_and(|c| {
        matches!(
            c,
            rdkafka::types::RDKafkaErrorCode::ProducerFenced
                | rdkafka::types::RDKafkaErrorCode::InvalidProducerEpoch
        )
    }) || format!("{err:?}").contains("fenced");
    assert!(fatal, "{err:?}");
    assert_eq!(
        read_all(broker.config(), "fenced", 1, "read_committed")[&0],
        ["fresh-0"]
    );
}

#[test]
fn a_transaction_open_past_its_timeout_is_aborted() {
    let broker = Broker::start_with_config(
        "\"transaction.abort.timed.out.transaction.cleanup.interval.ms\" = 200\n",
    );
    let slow = txn_producer(
        broker.config(),
        "txn-slow",
        &[("transaction.timeout.ms", "5000")],
    );
    slow.begin_transaction().unwrap();
    send(&slow, "slow", 0, "late-0");
    slow.flush(TIMEOUT).unwrap();
    let other = txn_producer(broker.config(), "txn-quick", &[]);
    other.begin_transaction().unwrap();
    send(&other, "slow", 0, "quick-0");
    other.commit_transaction(TIMEOUT).unwrap();
    // Held back by the slow transaction until the coordinator aborts it.
    assert_eq!(
        read_all(broker.config(), "slow", 1, "read_committed")[&0],
        Vec::<String>::new()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = read_all(broker.config(), "slow", 1, "read_committed");
        if seen[&0] == ["quick-0"] {
            break;
        }
        assert!(Instant::now() < deadline, "never aborted: {seen:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(broker.log_text().contains("open past its timeout"));
    assert!(
        slow.commit_transaction(TIMEOUT).is_err(),
        "the slow producer was fenced"
    );
}

#[test]
fn offsets_sent_to_a_transaction_count_only_when_it_commits() {
    let broker = Broker::start();
    futures::executor::block_on(broker.create_topic("input", 1, &[]));
    let plain = broker.producer(&[]);
    for i in 0..10 {
        futures::executor::block_on(
            plain.send(
                rdkafka::producer::FutureRecord::<(), str>::to("input")
                    .partition(0)
                    .payload(&format!("in-{i}")),
                TIMEOUT,
            ),
        )
        .unwrap();
    }
    let consumer: BaseConsumer = broker
        .config()
        .set("group.id", "eos-group")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["input"]).unwrap();
    let mut seen = 0;
    let deadline = Instant::now() + TIMEOUT;
    while seen < 4 {
        assert!(Instant::now() < deadline);
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            m.unwrap();
            seen += 1;
        }
    }
    let p = txn_producer(broker.config(), "txn-eos", &[]);
    let offsets_at = |offset: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("input", 0, Offset::Offset(offset))
            .unwrap();
        tpl
    };
    let meta = consumer.group_metadata().unwrap();
    // Aborted: the group's offset does not move.
    p.begin_transaction().unwrap();
    send(&p, "output", 0, "out-aborted");
    p.send_offsets_to_transaction(&offsets_at(2), &meta, TIMEOUT)
        .unwrap();
    p.abort_transaction(TIMEOUT).unwrap();
    let committed = |c: &BaseConsumer| {
        let tpl = c.committed(TIMEOUT).unwrap();
        tpl.find_partition("input", 0).unwrap().offset()
    };
    assert_eq!(committed(&consumer), Offset::Invalid);
    // Committed: it moves with the output.
    p.begin_transaction().unwrap();
    send(&p, "output", 0, "out-4");
    p.send_offsets_to_transaction(&offsets_at(4), &meta, TIMEOUT)
        .unwrap();
    p.commit_transaction(TIMEOUT).unwrap();
    assert_eq!(committed(&consumer), Offset::Offset(4));
    assert_eq!(
        read_all(broker.config(), "output", 1, "read_committed")[&0],
        ["out-4"]
    );
}

#[test]
fn a_broker_sigkill_leaves_every_transaction_committed_or_aborted_never_torn() {
    let mut broker = Broker::start();
    futures::executor::block_on(broker.create_topic("crash", 3, &[]));
    let settings = [
        ("transaction.timeout.ms", "10000"),
        ("reconnect.backoff.max.ms", "200"),
        ("retry.backoff.ms", "50"),
    ];
    const TRANSACTIONS: usize = 60;
    let mut outcomes = Vec::with_capacity(TRANSACTIONS);
    let mut producer = Some(txn_producer(broker.config(), "txn-crash", &settings));
    for k in 0..TRANSACTIONS {
        if k == 20 || k == 40 {
            // Kill in the middle of a transaction: records sent, not yet ended.
            let p = producer.as_ref().unwrap();
            p.begin_transaction().unwrap();
            send(p, "crash", 0, &format!("{k}-0"));
            send(p, "crash", 1, &format!("{k}-1"));
            p.flush(TIMEOUT).unwrap();
            broker.kill();
            std::thread::sleep(Duration::from_millis(300));
            broker.restart();
            producer = None; // a new instance takes over, as after a crash of the app
            outcomes.push(Outcome::Unknown);
            continue;
        }
        let p =
            producer.get_or_insert_with(|| txn_producer(broker.config(), "txn-crash", &settings));
        match run_transaction(p, "crash", 3, k) {
            Ok(o) => outcomes.push(o),
            Err(e) => match recover(p, &e) {
                Some(o) => outcomes.push(o),
                None => {
                    producer = None;
                    outcomes.push(Outcome::Unknown);
                }
            },
        }
    }
    drop(producer);
    let committed = read_all(broker.config(), "crash", 3, "read_committed");
    check_whole_or_nothing(&committed, &outcomes, 3, |k| {
        if k == 20 || k == 40 {
            2
        } else {
            RECORDS
        }
    });
    let committed_count = outcomes
        .iter()
        .filter(|o| **o == Outcome::Committed)
        .count();
    assert!(committed_count >= 40, "{outcomes:?}");
}

/// Three producers run transactions back to back while the broker is SIGKILLed three times
/// at moments unrelated to them (so also while markers are being written): after each
/// restart the coordinator finishes what was prepared, and read_committed consumers see
/// every transaction whole or not at all.
#[test]
fn transactions_of_several_producers_survive_repeated_sigkills_whole_or_not_at_all() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut broker = Broker::start();
    let topics = ["storm-0", "storm-1", "storm-2"];
    futures::executor::block_on(async {
        for t in topics {
            broker.create_topic(t, 3, &[]).await;
        }
    });
    let mut base = broker.config();
    base.set("transaction.timeout.ms", "10000")
        .set("reconnect.backoff.max.ms", "200")
        .set("retry.backoff.ms", "50")
        .set("message.timeout.ms", "10000");
    let stop = AtomicBool::new(false);
    let outcomes: Vec<Vec<Outcome>> = std::thread::scope(|s| {
        let workers: Vec<_> = topics
            .iter()
            .map(|t| {
                let (base, stop) = (&base, &stop);
                s.spawn(move || common::txn::transactions_until(stop, base, t, t, 3))
            })
            .collect();
        for pause_ms in [1700, 2300, 1900] {
            std::thread::sleep(Duration::from_millis(pause_ms));
            broker.kill();
            std::thread::sleep(Duration::from_millis(300));
            broker.restart();
        }
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for (topic, outcomes) in topics.iter().zip(&outcomes) {
        let committed = read_all(broker.config(), topic, 3, "read_committed");
        check_whole_or_nothing(&committed, outcomes, 3, |_| RECORDS);
        let done = outcomes
            .iter()
            .filter(|o| **o == Outcome::Committed)
            .count();
        assert!(done >= 10, "{topic}: {outcomes:?}");
    }
}

/// confluent-kafka's consume-transform-produce loop (tests/python/eos_worker.py) is killed
/// in the middle and started again: the output has every input record exactly once.
#[test]
fn consume_transform_produce_is_exactly_once_across_a_consumer_crash() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let broker = Broker::start();
    futures::executor::block_on(async {
        broker.create_topic("eos-in", 2, &[]).await;
        broker.create_topic("eos-out", 2, &[]).await;
    });
    const N: usize = 2000;
    let plain = broker.producer(&[]);
    for i in 0..N {
        futures::executor::block_on(
            plain.send(
                rdkafka::producer::FutureRecord::<(), str>::to("eos-in")
                    .partition((i % 2) as i32)
                    .payload(&format!("{i}")),
                TIMEOUT,
            ),
        )
        .unwrap();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/eos_worker.py");
    let worker = |idle: &str| {
        Command::new("python3")
            .args([
                script,
                &broker.bootstrap(),
                "eos-in",
                "eos-out",
                "eos-app",
                "eos-app-1",
                idle,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs")
    };
    // The first instance dies (SIGKILL) after a few committed batches, likely mid-transaction.
    let mut first = worker("30");
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    let mut batches = 0;
    while batches < 10 {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("batch") => batches += 1,
            Some(_) => {}
            None => {
                let out = first.wait_with_output().unwrap();
                panic!("worker ended: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let second = worker("4").wait_with_output().unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let out = read_all(broker.config(), "eos-out", 2, "read_committed");
    let mut values: Vec<usize> = out
        .values()
        .flatten()
        .map(|v| v.strip_prefix("out-").unwrap().parse().unwrap())
        .collect();
    values.sort();
    let expected: Vec<usize> = (0..N).collect();
    assert_eq!(values.len(), N, "duplicates or losses in the output");
    assert_eq!(values, expected);
}

/// Runs a Python client's transaction checks (tests/python/) against a broker of its own.
fn python_transactions(script: &str) {
    let broker = Broker::start();
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(path)
        .arg(broker.bootstrap())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// kafka-python's own transactional producer.
#[test]
fn kafka_python_transactions_work() {
    python_transactions("kafka_python_transactions.py");
}

/// confluent-kafka's transactional producer (librdkafka from Python).
#[test]
fn confluent_kafka_transactions_work() {
    python_transactions("confluent_transactions.py");
}

#[test]
fn idle_transactional_ids_expire_and_stay_forgotten_after_a_restart() {
    let mut broker = Broker::start_with_config(
        "\"transaction.abort.timed.out.transaction.cleanup.interval.ms\" = 200\n\
         \"transactional.id.expiration.ms\" = 1500\n",
    );
    let p = txn_producer(broker.config(), "txn-idle", &[]);
    p.begin_transaction().unwrap();
    send(&p, "idle", 0, "v");
    p.commit_transaction(TIMEOUT).unwrap();
    drop(p);
    let ids = |b: &Broker| {
        common::sluice_json(b, "transaction", &["list"])
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["transactional_id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&broker), ["txn-idle"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ids(&broker).is_empty() {
        assert!(Instant::now() < deadline, "never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
    broker.stop();
    broker.restart();
    let (code, _, err) = common::sluice_at(&broker, "transaction", &["describe", "txn-idle"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("TRANSACTIONAL_ID_NOT_FOUND"),
        "the tombstone keeps it forgotten: {err}"
    );
    assert!(ids(&broker).is_empty());
}

/// WriteTxnMarkers (v1) from a raw client: a COMMIT marker for `producer_id` at `epoch` on
/// partition 0 of `topic`; the partition's error code.
fn forged_marker(broker: &Broker, topic: &str, producer_id: i64, epoch: i16) -> i16 {
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use kafka_protocol::messages::{
        ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
    };
    use kafka_protocol::protocol::StrBytes;
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_transaction_result(true)
            .with_coordinator_epoch(0)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partition_indexes(vec![0])])]);
    let mut raw = common::raw::Raw::connect(broker);
    let c = raw.send(ApiKey::WriteTxnMarkers, 1, &request);
    let r: WriteTxnMarkersResponse = raw.receive_response(ApiKey::WriteTxnMarkers, 1, c);
    r.markers[0].topics[0].partitions[0].error_code
}

/// Before the fix a marker for a producer with no open transaction was written anyway: it
/// took an offset and moved the producer to the marker's epoch, so the idempotent producer
/// it named was refused from then on (INVALID_PRODUCER_EPOCH).
#[test]
fn a_marker_for_a_producer_without_an_open_transaction_changes_nothing() {
    use common::raw::{idempotent_batch, Raw};
    let broker = Broker::start();
    futures::executor::block_on(broker.create_topic("untouched", 1, &[]));
    let mut raw = Raw::connect(&broker);
    let first = raw.produce("untouched", idempotent_batch(b"a", 4242, 0, 0));
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    assert_eq!(forged_marker(&broker, "untouched", 4242, 7), 0);
    let next = raw.produce("untouched", idempotent_batch(b"b", 4242, 0, 1));
    assert_eq!(
        (next.error_code, next.base_offset),
        (0, 1),
        "the marker took an offset or fenced the producer"
    );
}

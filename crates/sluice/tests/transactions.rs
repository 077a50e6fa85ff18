//! Transactions with librdkafka against one broker: committed records are visible to
//! read_committed consumers, aborted ones never; read_uncommitted sees both; several
//! producers interleave on the same partitions; a zombie producer is fenced; offsets sent
//! to a transaction count only on commit; a transaction open past its timeout is aborted;
//! transactions survive a broker SIGKILL, each committed or aborted, never torn.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::Broker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

const TIMEOUT: Duration = Duration::from_secs(30);

fn txn_producer(broker: &Broker, id: &str, extra: &[(&str, &str)]) -> TxnProducer {
    let mut c = broker.config();
    c.set("transactional.id", id).set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let p: TxnProducer = c.create().expect("producer");
    p.init_transactions(TIMEOUT).expect("init_transactions");
    p
}

fn send(p: &TxnProducer, topic: &str, partition: i32, value: &str) {
    p.send(
        BaseRecord::<(), str>::to(topic)
            .partition(partition)
            .payload(value),
    )
    .map_err(|(e, _)| e)
    .expect("send");
}

/// Every value in the topic's partitions as a consumer with `isolation` reads them, until
/// the end (the last stable offset for read_committed): partition → values in order.
fn read_all(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> BTreeMap<i32, Vec<String>> {
    let consumer: BaseConsumer = broker
        .config()
        .set("group.id", "txn-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out: BTreeMap<i32, Vec<String>> = (0..partitions).map(|p| (p, Vec::new())).collect();
    let mut at_end = BTreeSet::new();
    let deadline = Instant::now() + TIMEOUT;
    while at_end.len() < partitions as usize {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                out.get_mut(&m.partition()).unwrap().push(v);
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    out
}

#[test]
fn committed_records_are_visible_to_read_committed_and_aborted_ones_never() {
    let broker = Broker::start();
    futures::executor::block_on(broker.create_topic("orders", 2, &[]));
    let p = txn_producer(&broker, "txn-basic", &[]);
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

    let committed = read_all(&broker, "orders", 2, "read_committed");
    assert_eq!(committed[&0], ["c1-0", "c1-2", "c1-4", "c2-0"]);
    assert_eq!(committed[&1], ["c1-1", "c1-3"]);
    let all = read_all(&broker, "orders", 2, "read_uncommitted");
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
    let open = txn_producer(&broker, "txn-open", &[]);
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
        read_all(&broker, "ledger", 1, "read_committed")[&0],
        Vec::<String>::new()
    );
    assert_eq!(
        read_all(&broker, "ledger", 1, "read_uncommitted")[&0],
        ["pending-0", "plain-after"]
    );
    open.commit_transaction(TIMEOUT).unwrap();
    assert_eq!(
        read_all(&broker, "ledger", 1, "read_committed")[&0],
        ["pending-0", "plain-after"]
    );
}

#[test]
fn interleaved_transactions_of_several_producers_end_independently() {
    let broker = Broker::start();
    futures::executor::block_on(broker.create_topic("mixed", 2, &[]));
    let producers: Vec<TxnProducer> = (0..3)
        .map(|i| txn_producer(&broker, &format!("txn-mixed-{i}"), &[]))
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
    let committed = read_all(&broker, "mixed", 2, "read_committed");
    assert_eq!(committed[&0], ["p0-0", "p2-0", "p0-2", "p2-2"]);
    assert_eq!(committed[&1], ["p0-1", "p2-1", "p0-3", "p2-3"]);
    let all = read_all(&broker, "mixed", 2, "read_uncommitted");
    assert_eq!(all[&0].len() + all[&1].len(), 12);
}

#[test]
fn a_zombie_producer_is_fenced_by_a_new_one_with_the_same_transactional_id() {
    let broker = Broker::start();
    let zombie = txn_producer(&broker, "txn-zombie", &[]);
    zombie.begin_transaction().unwrap();
    send(&zombie, "fenced", 0, "zombie-0");
    zombie.flush(TIMEOUT).unwrap();
    // The new instance aborts the zombie's open transaction and takes over.
    let fresh = txn_producer(&broker, "txn-zombie", &[]);
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
    assert_eq!(read_all(&broker, "fenced", 1, "read_committed")[&0], ["fresh-0"]);
}

#[test]
fn a_transaction_open_past_its_timeout_is_aborted() {
    let broker = Broker::start_with_config(
        "\"transaction.abort.timed.out.transaction.cleanup.interval.ms\" = 200\n",
    );
    let slow = txn_producer(&broker, "txn-slow", &[("transaction.timeout.ms", "5000")]);
    slow.begin_transaction().unwrap();
    send(&slow, "slow", 0, "late-0");
    slow.flush(TIMEOUT).unwrap();
    let other = txn_producer(&broker, "txn-quick", &[]);
    other.begin_transaction().unwrap();
    send(&other, "slow", 0, "quick-0");
    other.commit_transaction(TIMEOUT).unwrap();
    // Held back by the slow transaction until the coordinator aborts it.
    assert_eq!(read_all(&broker, "slow", 1, "read_committed")[&0], Vec::<String>::new());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = read_all(&broker, "slow", 1, "read_committed");
        if seen[&0] == ["quick-0"] {
            break;
        }
        assert!(Instant::now() < deadline, "never aborted: {seen:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(broker.log_text().contains("open past its timeout"));
    assert!(slow.commit_transaction(TIMEOUT).is_err(), "the slow producer was fenced");
}

#[test]
fn offsets_sent_to_a_transaction_count_only_when_it_commits() {
    let broker = Broker::start();
    futures::executor::block_on(broker.create_topic("input", 1, &[]));
    let plain = broker.producer(&[]);
    for i in 0..10 {
        futures::executor::block_on(plain.send(
            rdkafka::producer::FutureRecord::<(), str>::to("input")
                .partition(0)
                .payload(&format!("in-{i}")),
            TIMEOUT,
        ))
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
    let p = txn_producer(&broker, "txn-eos", &[]);
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
    assert_eq!(read_all(&broker, "output", 1, "read_committed")[&0], ["out-4"]);
}

/// How a transaction ended, as its producer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Committed,
    Aborted,
    /// Its end was cut by the crash: it may have gone either way.
    Unknown,
}

/// Runs transaction `k` (6 records over 3 partitions; every fourth aborted) and says how it
/// ended.
fn run_transaction(p: &TxnProducer, k: usize) -> Result<Outcome, rdkafka::error::KafkaError> {
    p.begin_transaction()?;
    for j in 0..6 {
        p.send(
            BaseRecord::<(), str>::to("crash")
                .partition((j % 3) as i32)
                .payload(&format!("{k}-{j}")),
        )
        .map_err(|(e, _)| e)?;
    }
    if k % 4 == 3 {
        p.flush(TIMEOUT)?;
        p.abort_transaction(TIMEOUT)?;
        Ok(Outcome::Aborted)
    } else {
        p.commit_transaction(TIMEOUT)?;
        Ok(Outcome::Committed)
    }
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
    let mut producer = Some(txn_producer(&broker, "txn-crash", &settings));
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
        let p = producer.get_or_insert_with(|| txn_producer(&broker, "txn-crash", &settings));
        match run_transaction(p, k) {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                eprintln!("transaction {k}: {e}");
                if let rdkafka::error::KafkaError::Transaction(te) = &e {
                    if te.txn_requires_abort() && p.abort_transaction(TIMEOUT).is_ok() {
                        outcomes.push(Outcome::Aborted);
                        continue;
                    }
                }
                producer = None;
                outcomes.push(Outcome::Unknown);
            }
        }
    }
    drop(producer);
    let committed = read_all(&broker, "crash", 3, "read_committed");
    let mut seen: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (partition, values) in &committed {
        for v in values {
            let (k, j) = v.split_once('-').unwrap();
            let (k, j): (usize, usize) = (k.parse().unwrap(), j.parse().unwrap());
            assert_eq!(j % 3, *partition as usize, "{v} in partition {partition}");
            seen.entry(k).or_default().push(j);
        }
    }
    for (k, outcome) in outcomes.iter().enumerate() {
        let mut js = seen.remove(&k).unwrap_or_default();
        js.sort();
        let whole = if k == 20 || k == 40 {
            vec![0, 1]
        } else {
            (0..6).collect()
        };
        match outcome {
            Outcome::Committed => assert_eq!(js, whole, "committed transaction {k}"),
            Outcome::Aborted => assert!(js.is_empty(), "aborted transaction {k}: {js:?}"),
            Outcome::Unknown => assert!(
                js.is_empty() || js == whole,
                "transaction {k} is torn: {js:?}"
            ),
        }
    }
    assert!(seen.is_empty(), "records of no transaction: {seen:?}");
    let committed_count = outcomes
        .iter()
        .filter(|o| **o == Outcome::Committed)
        .count();
    assert!(committed_count >= 40, "{outcomes:?}");
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
        futures::executor::block_on(plain.send(
            rdkafka::producer::FutureRecord::<(), str>::to("eos-in")
                .partition((i % 2) as i32)
                .payload(&format!("{i}")),
            TIMEOUT,
        ))
        .unwrap();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/eos_worker.py");
    let worker = |idle: &str| {
        Command::new("python3")
            .args([script, &broker.bootstrap(), "eos-in", "eos-out", "eos-app", "eos-app-1", idle])
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
    let out = read_all(&broker, "eos-out", 2, "read_committed");
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

/// kafka-python's own transactional producer (tests/python/kafka_python_transactions.py).
#[test]
fn kafka_python_transactions_work() {
    let broker = Broker::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/kafka_python_transactions.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
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

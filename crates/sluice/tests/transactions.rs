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

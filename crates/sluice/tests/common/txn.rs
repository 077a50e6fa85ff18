//! Transactional producers and read_committed readers (librdkafka), and the check that each
//! transaction is seen whole or not at all.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

pub type TxnProducer = ThreadedProducer<DefaultProducerContext>;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A producer with `transactional.id` = `id`, its transactions initialised.
pub fn txn_producer(base: ClientConfig, id: &str, extra: &[(&str, &str)]) -> TxnProducer {
    let mut c = base;
    c.set("transactional.id", id).set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let p: TxnProducer = c.create().expect("producer");
    p.init_transactions(TIMEOUT).expect("init_transactions");
    p
}

pub fn send(p: &TxnProducer, topic: &str, partition: i32, value: &str) {
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
pub fn read_all(
    base: ClientConfig,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> BTreeMap<i32, Vec<String>> {
    let consumer: BaseConsumer = base
        .clone()
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
    let deadline = Instant::now() + TIMEOUT * 2;
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

/// How a transaction ended, as its producer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    Aborted,
    /// Its end was cut by a crash: it may have gone either way.
    Unknown,
}

/// Records per transaction of `run_transaction`.
pub const RECORDS: usize = 6;

/// Runs transaction `k`: records "k-j" for j in 0..6 over `partitions` partitions (j mod
/// partitions); every fourth is aborted. Says how it ended.
pub fn run_transaction(
    p: &TxnProducer,
    topic: &str,
    partitions: usize,
    k: usize,
) -> Result<Outcome, rdkafka::error::KafkaError> {
    p.begin_transaction()?;
    for j in 0..RECORDS {
        p.send(
            BaseRecord::<(), str>::to(topic)
                .partition((j % partitions) as i32)
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

/// After a failed transaction: aborts it if the producer can go on (Some(Aborted)), else
/// None (the producer must be replaced).
pub fn recover(p: &TxnProducer, e: &rdkafka::error::KafkaError) -> Option<Outcome> {
    eprintln!("transaction failed: {e}");
    match e {
        rdkafka::error::KafkaError::Transaction(te)
            if te.txn_requires_abort() && p.abort_transaction(TIMEOUT).is_ok() =>
        {
            Some(Outcome::Aborted)
        }
        _ => None,
    }
}

/// Checks what read_committed saw (`committed`, values "k-j") against the outcomes: a
/// committed transaction whole (`whole(k)` records: j in 0..whole(k)), an aborted one absent,
/// an unknown one whole or absent, nothing else, each record in partition j mod `partitions`.
pub fn check_whole_or_nothing(
    committed: &BTreeMap<i32, Vec<String>>,
    outcomes: &[Outcome],
    partitions: usize,
    whole: impl Fn(usize) -> usize,
) {
    let mut seen: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (partition, values) in committed {
        for v in values {
            let (k, j) = v.split_once('-').unwrap();
            let (k, j): (usize, usize) = (k.parse().unwrap(), j.parse().unwrap());
            assert_eq!(
                j % partitions,
                *partition as usize,
                "{v} in partition {partition}"
            );
            seen.entry(k).or_default().push(j);
        }
    }
    for (k, outcome) in outcomes.iter().enumerate() {
        let mut js = seen.remove(&k).unwrap_or_default();
        js.sort();
        let all: Vec<usize> = (0..whole(k)).collect();
        match outcome {
            Outcome::Committed => assert_eq!(js, all, "committed transaction {k}"),
            Outcome::Aborted => assert!(js.is_empty(), "aborted transaction {k}: {js:?}"),
            Outcome::Unknown => {
                assert!(
                    js.is_empty() || js == all,
                    "transaction {k} is torn: {js:?}"
                )
            }
        }
    }
    assert!(seen.is_empty(), "records of no transaction: {seen:?}");
}

/// Runs transactions `run_transaction(k)` for k = 0, 1, ... until `stop`, through broker
/// failures: a failed one is aborted when the producer can go on, else the producer is
/// replaced by a new instance (whose `init_transactions` ends what the old one left open).
/// Returns each transaction's outcome.
pub fn transactions_until(
    stop: &std::sync::atomic::AtomicBool,
    base: &ClientConfig,
    id: &str,
    topic: &str,
    partitions: usize,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut producer: Option<TxnProducer> = None;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let p = match &producer {
            Some(p) => p,
            None => {
                let mut c = base.clone();
                c.set("transactional.id", id).set("linger.ms", "5");
                let p: TxnProducer = c.create().expect("producer");
                match p.init_transactions(TIMEOUT) {
                    Ok(()) => producer.insert(p),
                    Err(e) => {
                        eprintln!("init_transactions: {e}");
                        continue;
                    }
                }
            }
        };
        let k = outcomes.len();
        match run_transaction(p, topic, partitions, k) {
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
    outcomes
}

//! Transactions on three brokers and a real etcd: markers go to partitions other brokers
//! lead, and when the transaction coordinator's broker is SIGKILLed its transactions move
//! with `__transaction_state` to a new leader; every transaction is then seen whole or not
//! at all by read_committed consumers.

mod common;

use common::cluster::{leaders, wait_until, Cluster};
use common::raw::{produce_transactional, transactional_batch, Raw};
use common::txn::{
    check_whole_or_nothing, read_all, recover, run_transaction, send, txn_producer, Outcome,
    TxnProducer, RECORDS, TIMEOUT,
};
use common::Broker;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::Producer;

const SETTINGS: &str = "\"transaction.state.log.replication.factor\" = 3\n\
\"offsets.topic.replication.factor\" = 3\n\
\"transaction.state.log.num.partitions\" = 5\n";

/// The transaction coordinator `b` names for `id` (-1 while there is none).
fn txn_coordinator_of(b: &Broker, id: &str) -> i32 {
    let mut raw = Raw::connect(b);
    let c = raw.send(
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(id.into()))
            .with_key_type(1),
    );
    let r: FindCoordinatorResponse = raw.receive_response(ApiKey::FindCoordinator, 3, c);
    if r.error_code != 0 {
        return -1;
    }
    r.node_id.0
}

#[test]
fn transactions_survive_the_loss_of_their_coordinators_broker() {
    let mut c = Cluster::start_with(3, SETTINGS);
    let topic = "cluster-txn";
    futures::executor::block_on(async {
        let new =
            NewTopic::new(topic, 3, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
        let created = c.brokers[0]
            .admin()
            .create_topics([&new], &AdminOptions::new())
            .await
            .unwrap();
        created[0].as_ref().expect("created");
    });
    for b in &c.brokers {
        wait_until("every broker knows the topic", || {
            leaders(b, topic).len() == 3
        });
    }
    let mut base = c.brokers[0].config();
    base.set("bootstrap.servers", c.bootstrap())
        .set("reconnect.backoff.max.ms", "200")
        .set("retry.backoff.ms", "50");
    let config = || base.clone();
    let id = "txn-cluster";
    let settings = [("transaction.timeout.ms", "10000")];
    let mut outcomes = Vec::new();
    let mut producer: Option<TxnProducer> = Some(txn_producer(config(), id, &settings));
    // Some transactions with the partitions' leaders spread over the three brokers: the
    // coordinator's markers go over the network to two of them.
    for k in 0..10 {
        let o = run_transaction(producer.as_ref().unwrap(), topic, 3, k).expect("transaction");
        outcomes.push(o);
    }
    // The coordinator's broker dies in the middle of a transaction.
    let coordinator = txn_coordinator_of(&c.brokers[0], id);
    assert!(coordinator > 0);
    {
        let p = producer.as_ref().unwrap();
        p.begin_transaction().unwrap();
        for j in 0..RECORDS {
            send(p, topic, (j % 3) as i32, &format!("10-{j}"));
        }
        p.flush(TIMEOUT).unwrap();
    }
    c.broker(coordinator).kill();
    let other = &c.brokers[if coordinator == 1 { 1 } else { 0 }];
    wait_until("another broker coordinates the transactional id", || {
        let now = txn_coordinator_of(other, id);
        now > 0 && now != coordinator
    });
    // The producer commits against the new coordinator (or, if it cannot, gives up).
    let p = producer.as_ref().unwrap();
    match p.commit_transaction(TIMEOUT) {
        Ok(()) => outcomes.push(Outcome::Committed),
        Err(e) => match recover(p, &e) {
            Some(o) => outcomes.push(o),
            None => {
                producer = None;
                outcomes.push(Outcome::Unknown);
            }
        },
    }
    for k in 11..25 {
        if k == 18 {
            c.broker(coordinator).restart();
        }
        let p = producer.get_or_insert_with(|| txn_producer(config(), id, &settings));
        match run_transaction(p, topic, 3, k) {
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
    let committed = read_all(config(), topic, 3, "read_committed");
    check_whole_or_nothing(&committed, &outcomes, 3, |_| RECORDS);
    let done = outcomes
        .iter()
        .filter(|o| **o == Outcome::Committed)
        .count();
    assert!(done >= 15, "{outcomes:?}");
    leaders_elsewhere_ask_the_coordinator(&c);
}

/// A partition's leader that is not the transaction's coordinator asks it over the network
/// before a transactional batch opens a transaction there: a partition never added is
/// refused (original protocol), and Produce v12 adds it (transactions v2).
fn leaders_elsewhere_ask_the_coordinator(c: &Cluster) {
    let topic = "cluster-txn";
    let partition_leaders = leaders(&c.brokers[0], topic);
    // An id whose coordinator does not lead some partition of the topic.
    let (id, coordinator) = (0..100)
        .map(|n| format!("txn-remote-check-{n}"))
        .map(|id| {
            let coordinator = txn_coordinator_of(&c.brokers[0], &id);
            (id, coordinator)
        })
        .find(|(_, co)| *co > 0 && partition_leaders.iter().any(|l| l != co && *l > 0))
        .expect("a coordinator that does not lead every partition");
    let id = id.as_str();
    let broker_of = |node: i32| &c.brokers[(node - 1) as usize];
    let mut at_coordinator = Raw::connect(broker_of(coordinator));
    let c0 = at_coordinator.send(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.into()))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    let init: InitProducerIdResponse =
        at_coordinator.receive_response(ApiKey::InitProducerId, 4, c0);
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let (partition, leader) = partition_leaders
        .into_iter()
        .enumerate()
        .find(|(_, l)| *l != coordinator && *l > 0)
        .map(|(p, l)| (p as i32, l))
        .expect("a partition led by another broker");
    let mut at_leader = Raw::connect(broker_of(leader));
    let refused = produce_transactional(
        &mut at_leader,
        11,
        id,
        (topic, partition),
        transactional_batch(&["unadded"], pid, epoch, 0),
    );
    assert_eq!(
        refused, 48,
        "INVALID_TXN_STATE from broker {leader}, asking {coordinator}"
    );
    let added = produce_transactional(
        &mut at_leader,
        12,
        id,
        (topic, partition),
        transactional_batch(&["implicit"], pid, epoch, 0),
    );
    assert_eq!(added, 0);
}

//! Transactions v2 (KIP-890 part 2) on the wire: no client used in these tests speaks it
//! yet (the Java client 4.x does), so the requests are made by hand: Produce v12 adds the
//! partition to the transaction itself, TxnOffsetCommit v5 the offsets partition, EndTxn v5
//! bumps the epoch with every transaction (a retry of it is recognised), and the old epoch is
//! fenced. Also the original protocol's verification: a transactional batch for a partition
//! never added to the transaction is refused.

mod common;

use std::time::{Duration, Instant};

use common::raw::{produce_transactional, transactional_batch, Raw};
use common::txn::read_all;
use common::Broker;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, EndTxnRequest, EndTxnResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, InitProducerIdRequest,
    InitProducerIdResponse, OffsetFetchRequest, OffsetFetchResponse, ProducerId, TopicName,
    TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;

const ID: &str = "tv2-app";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// InitProducerId v4 for `id` with `timeout_ms`: the answer.
fn init_producer(raw: &mut Raw, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
    let c = raw.send(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(id))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    raw.receive_response(ApiKey::InitProducerId, 4, c)
}

/// A producer id and epoch for `id`, asked again while the coordinator gets ready.
fn init_transactional(raw: &mut Raw, id: &str) -> (i64, i16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = init_producer(raw, id, 60_000);
        if r.error_code == 0 {
            return (r.producer_id.0, r.producer_epoch);
        }
        assert!(
            Instant::now() < deadline,
            "InitProducerId: {}",
            r.error_code
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn produce(raw: &mut Raw, version: i16, topic: &str, batch: Vec<u8>) -> i16 {
    produce_transactional(raw, version, ID, (topic, 0), batch)
}

fn end_txn(raw: &mut Raw, pid: i64, epoch: i16, commit: bool) -> EndTxnResponse {
    let c = raw.send(
        ApiKey::EndTxn,
        5,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(ID)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
    );
    raw.receive_response(ApiKey::EndTxn, 5, c)
}

/// The group's offset of tv2-0 (OffsetFetch v7 with require_stable): (error, offset).
fn group_offset(raw: &mut Raw, group: &str) -> (i16, i64) {
    let c = raw.send(
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_require_stable(true)
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("tv2")))
                .with_partition_indexes(vec![0])])),
    );
    let r: OffsetFetchResponse = raw.receive_response(ApiKey::OffsetFetch, 7, c);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

#[test]
fn transactions_v2_add_partitions_implicitly_and_bump_the_epoch_every_transaction() {
    let broker = Broker::start();
    futures::executor::block_on(broker.create_topic("tv2", 1, &[]));
    let mut raw = Raw::connect(&broker);
    // The broker offers transaction version 2.
    let c = raw.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let versions: ApiVersionsResponse = raw.receive_response(ApiKey::ApiVersions, 3, c);
    let tv = versions
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .expect("transaction.version is finalized");
    assert_eq!(tv.max_version_level, 2);
    // The coordinator (this broker), then a producer id.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = raw.send(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default()
                .with_key(s(ID))
                .with_key_type(1),
        );
        let r: FindCoordinatorResponse = raw.receive_response(ApiKey::FindCoordinator, 3, c);
        if r.error_code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no transaction coordinator");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (pid, e) = init_transactional(&mut raw, ID);

    // Transaction 1: Produce v12 without AddPartitionsToTxn; committed.
    assert_eq!(
        produce(
            &mut raw,
            12,
            "tv2",
            transactional_batch(&["a0", "a1"], pid, e, 0)
        ),
        0
    );
    let end = end_txn(&mut raw, pid, e, true);
    assert_eq!(end.error_code, 0);
    assert_eq!(
        (end.producer_id.0, end.producer_epoch),
        (pid, e + 1),
        "the epoch is bumped"
    );
    // A retry of that EndTxn (its answer lost) gets the same answer.
    let retry = end_txn(&mut raw, pid, e, true);
    assert_eq!(retry.error_code, 0);
    assert_eq!((retry.producer_id.0, retry.producer_epoch), (pid, e + 1));

    // Transaction 2 at the new epoch, sequences from 0; aborted.
    assert_eq!(
        produce(
            &mut raw,
            12,
            "tv2",
            transactional_batch(&["b0"], pid, e + 1, 0)
        ),
        0
    );
    let end = end_txn(&mut raw, pid, e + 1, false);
    assert_eq!((end.error_code, end.producer_epoch), (0, e + 2));
    // The first transaction's epoch is fenced.
    let zombie = produce(&mut raw, 12, "tv2", transactional_batch(&["z0"], pid, e, 2));
    assert!(
        zombie == 47 || zombie == 90,
        "INVALID_PRODUCER_EPOCH or PRODUCER_FENCED, got {zombie}"
    );

    // Transaction 3: offsets sent with TxnOffsetCommit v5, no AddOffsetsToTxn.
    assert_eq!(
        produce(
            &mut raw,
            12,
            "tv2",
            transactional_batch(&["c0"], pid, e + 2, 0)
        ),
        0
    );
    let c = raw.send(
        ApiKey::TxnOffsetCommit,
        5,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(ID)))
            .with_group_id(GroupId(s("tv2-group")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(e + 2)
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s("tv2")))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(7)
                    .with_committed_leader_epoch(-1)])]),
    );
    let r: TxnOffsetCommitResponse = raw.receive_response(ApiKey::TxnOffsetCommit, 5, c);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let mut other = Raw::connect(&broker);
    assert_eq!(
        group_offset(&mut other, "tv2-group").0,
        88,
        "UNSTABLE_OFFSET_COMMIT while open"
    );
    let end = end_txn(&mut raw, pid, e + 2, true);
    assert_eq!((end.error_code, end.producer_epoch), (0, e + 3));
    assert_eq!(group_offset(&mut other, "tv2-group"), (0, 7));

    let committed = read_all(broker.config(), "tv2", 1, "read_committed");
    assert_eq!(committed[&0], ["a0", "a1", "c0"]);
}

#[test]
fn a_transactional_batch_for_a_partition_never_added_is_refused() {
    let broker = Broker::start();
    futures::executor::block_on(broker.create_topic("unadded", 1, &[]));
    let mut raw = Raw::connect(&broker);
    let init = init_transactional(&mut raw, ID);
    // A timeout past transaction.max.timeout.ms (900000 by default) is refused.
    let r = init_producer(&mut raw, "too-long", 900_001);
    assert_eq!(r.error_code, 50, "INVALID_TRANSACTION_TIMEOUT");
    // A transactional id too long for its state record's key is refused, nothing stored.
    let long = "x".repeat(40_000);
    let r = init_producer(&mut raw, &long, 60_000);
    assert_eq!(r.error_code, 42, "INVALID_REQUEST");
    // Produce v11 is the original protocol: the partition must have been added first.
    let code = produce(
        &mut raw,
        11,
        "unadded",
        transactional_batch(&["x"], init.0, init.1, 0),
    );
    assert_eq!(code, 48, "INVALID_TXN_STATE");
    assert!(read_all(broker.config(), "unadded", 1, "read_uncommitted")[&0].is_empty());
}

/// AddPartitionsToTxn v4+, the brokers' batched form: several transactions in one request,
/// each adding partitions or (verify_only) asking whether they are in it.
#[test]
fn add_partitions_to_txn_v4_batches_transactions_and_verifies() {
    use kafka_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
    };
    use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
    let broker = Broker::start();
    futures::executor::block_on(broker.create_topic("batched", 2, &[]));
    let mut raw = Raw::connect(&broker);
    let (a, ea) = init_transactional(&mut raw, "batched-a");
    let (b, eb) = init_transactional(&mut raw, "batched-b");
    let txn = |id: &str, pid: i64, epoch: i16, partition: i32, verify_only: bool| {
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(verify_only)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s("batched")))
                .with_partitions(vec![partition])])
    };
    let mut ask = |transactions: Vec<AddPartitionsToTxnTransaction>| -> Vec<(String, i16)> {
        let c = raw.send(
            ApiKey::AddPartitionsToTxn,
            5,
            &AddPartitionsToTxnRequest::default().with_transactions(transactions),
        );
        let r: AddPartitionsToTxnResponse = raw.receive_response(ApiKey::AddPartitionsToTxn, 5, c);
        r.results_by_transaction
            .iter()
            .map(|t| {
                let code = t.topic_results[0].results_by_partition[0].partition_error_code;
                (t.transactional_id.to_string(), code)
            })
            .collect()
    };
    // A adds partition 0; B only asks about partition 1, which it never added.
    let answers = ask(vec![
        txn("batched-a", a, ea, 0, false),
        txn("batched-b", b, eb, 1, true),
    ]);
    assert_eq!(
        answers,
        [("batched-a".to_string(), 0), ("batched-b".to_string(), 48)]
    );
    // Now A's partition 0 is in its transaction; a stale epoch is fenced.
    let answers = ask(vec![
        txn("batched-a", a, ea, 0, true),
        txn("batched-b", b, eb - 1, 1, false),
    ]);
    assert_eq!(answers[0], ("batched-a".to_string(), 0));
    assert!(matches!(answers[1].1, 47 | 90), "{answers:?}");
}

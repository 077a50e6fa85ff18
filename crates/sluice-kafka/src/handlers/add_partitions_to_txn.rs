//! AddPartitionsToTxn (24): a transactional producer adds partitions to its open
//! transaction (v0-3, from clients). v4+ batches several transactions, and with
//! `verify_only` asks whether partitions are in them (brokers verifying a transactional
//! append, KIP-890).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName};
use sluice_broker::Broker;

use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 5);

pub fn handle(ctx: &Context, reply: Reply, req: AddPartitionsToTxnRequest) -> ResponseFuture {
    // v4+ is the brokers' form (KIP-890): refused from clients, as Kafka's CLUSTER_ACTION.
    if reply.version >= 4 && !ctx.from_broker(&reply) {
        return super::ready(reply.encode(
            &AddPartitionsToTxnResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
        ));
    }
    let broker = ctx.broker.clone();
    Box::pin(super::detached(async move {
        if reply.version <= 3 {
            let results = add(
                &broker,
                &req.v3_and_below_transactional_id,
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                &req.v3_and_below_topics,
                reply.version,
            )
            .await;
            return reply.encode(
                &AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
            );
        }
        let mut out = Vec::with_capacity(req.transactions.len());
        for t in &req.transactions {
            let results = if t.verify_only {
                verify(
                    &broker,
                    &t.transactional_id,
                    t.producer_id.0,
                    t.producer_epoch,
                    &t.topics,
                )
            } else {
                add(
                    &broker,
                    &t.transactional_id,
                    t.producer_id.0,
                    t.producer_epoch,
                    &t.topics,
                    reply.version,
                )
                .await
            };
            out.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(t.transactional_id.clone())
                    .with_topic_results(results),
            );
        }
        reply.encode(&AddPartitionsToTxnResponse::default().with_results_by_transaction(out))
    }))
}

/// Every partition answered with `code(topic, partition)`.
fn answer(
    topics: &[AddPartitionsToTxnTopic],
    code: impl Fn(&TopicName, i32) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code(&t.name, *p))
                        })
                        .collect(),
                )
        })
        .collect()
}

async fn add(
    broker: &Broker,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    // Partitions that do not exist fail alone; the others are not attempted.
    let image = broker.replicas.image();
    let unknown = |t: &TopicName, p: i32| {
        image
            .topic(t.as_str())
            .is_none_or(|meta| !(0..meta.partition_count()).contains(&p))
    };
    if topics
        .iter()
        .any(|t| t.partitions.iter().any(|p| unknown(&t.name, *p)))
    {
        return answer(topics, |t, p| {
            if unknown(t, p) {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                ResponseError::OperationNotAttempted.code()
            }
        });
    }
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect();
    let code = match broker
        .transactions
        .add_partitions(transactional_id, producer_id, epoch, &partitions)
        .await
    {
        Ok(()) => 0,
        Err(e) => super::txn_code(&e, version, 2),
    };
    answer(topics, |_, _| code)
}

fn verify(
    broker: &Broker,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let txns = &broker.transactions;
    answer(topics, |t, p| {
        crate::errors::of(&txns.verify_partition(
            transactional_id,
            producer_id,
            epoch,
            t.as_str(),
            p,
        ))
        .0
    })
}

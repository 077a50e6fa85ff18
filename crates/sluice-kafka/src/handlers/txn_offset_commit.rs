//! TxnOffsetCommit (28): offsets a transactional producer commits for a consumer group
//! (sendOffsetsToTransaction): they count only if its transaction commits. v5 is
//! transactions v2: the group's offsets partition joins the transaction here (what
//! AddOffsetsToTxn does in the original protocol).

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use sluice_broker::group::{OffsetCommit, TxnCommitter};
use sluice_broker::txn::PartitionInTxn;

use super::opt_string;
use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 5);

pub fn handle(ctx: &Context, reply: Reply, req: TxnOffsetCommitRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    let commits: Vec<OffsetCommit> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetCommit {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: opt_string(&p.committed_metadata),
            })
        })
        .collect();
    let committer = TxnCommitter {
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        generation: if reply.version >= 3 {
            req.generation_id
        } else {
            -1
        },
        member_id: req.member_id.to_string(),
        instance_id: opt_string(&req.group_instance_id),
    };
    let implicit_add = reply.version >= 5;
    Box::pin(super::detached(async move {
        let added = if implicit_add {
            add_offsets_partition(&broker, &req).await
        } else {
            Ok(())
        };
        let result = match added {
            Ok(()) => {
                broker
                    .groups
                    .txn_commit_offsets(&req.group_id, committer, commits)
                    .await
            }
            Err(e) => Err(e),
        };
        let mut codes = match &result {
            Ok(per_partition) => per_partition
                .iter()
                .map(|r| match r {
                    Ok(()) => 0,
                    Err(e) => super::txn_code(e, reply.version, 2),
                })
                .collect::<Vec<_>>()
                .into_iter(),
            Err(e) => {
                let code = super::txn_code(e, reply.version, 2);
                vec![code; req.topics.iter().map(|t| t.partitions.len()).sum()].into_iter()
            }
        };
        let topics = req
            .topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(codes.next().unwrap_or(0))
                            })
                            .collect(),
                    )
            })
            .collect();
        reply.encode(&TxnOffsetCommitResponse::default().with_topics(topics))
    }))
}

/// The group's `__consumer_offsets` partition joins the producer's transaction.
async fn add_offsets_partition(
    broker: &sluice_broker::Broker,
    req: &TxnOffsetCommitRequest,
) -> sluice_broker::Result<()> {
    let topic = broker.groups.offsets_topic()?;
    let partition =
        sluice_broker::group::offsets_partition_for(&req.group_id, topic.partition_count);
    broker
        .transactions.add_to_transaction(
            PartitionInTxn {
                transactional_id: req.transactional_id.to_string(),
                producer_id: req.producer_id.0,
                producer_epoch: req.producer_epoch,
                topic: sluice_broker::OFFSETS_TOPIC.to_string(),
                partition,
            },
            false,
        )
        .await
}

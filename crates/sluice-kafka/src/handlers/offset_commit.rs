//! OffsetCommit (8): durable in `__consumer_offsets` before the answer.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use sluice_broker::group::OffsetCommit;

use super::opt_string;
use crate::errors;
use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (2, 9);

pub fn handle(ctx: &Context, reply: Reply, req: OffsetCommitRequest) -> ResponseFuture {
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
    let shape: Vec<_> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions
                    .iter()
                    .map(|p| p.partition_index)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let instance = opt_string(&req.group_instance_id);
    Box::pin(async move {
        let result = broker
            .groups
            .commit_offsets(
                &req.group_id,
                req.generation_id_or_member_epoch,
                &req.member_id,
                instance.as_deref(),
                commits,
            )
            .await;
        let mut codes = match &result {
            Ok(per_partition) => per_partition
                .iter()
                .map(|r| errors::of(r).0)
                .collect::<Vec<_>>()
                .into_iter(),
            Err(e) => vec![errors::code(e); shape.iter().map(|(_, p)| p.len()).sum()].into_iter(),
        };
        let topics = shape
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(codes.next().unwrap_or(0))
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        reply.encode(&OffsetCommitResponse::default().with_topics(topics))
    })
}

//! AlterShareGroupOffsets (91): an administrator moves an empty share group's start offsets
//! (`kafka-share-groups.sh --reset-offsets`). GROUP_NOT_EMPTY while the group has members.

use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse};

use crate::errors;
use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 0);

pub fn handle(ctx: &Context, reply: Reply, req: AlterShareGroupOffsetsRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    Box::pin(async move {
        let group = req.group_id.to_string();
        let asked: Vec<(String, i32, i64)> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic_name.to_string(), p.partition_index, p.start_offset))
            })
            .collect();
        let outcomes = match broker.shares.alter_share_group_offsets(&group, &asked).await {
            Ok(o) => o,
            Err(e) => {
                return reply.encode(
                    &AlterShareGroupOffsetsResponse::default()
                        .with_error_code(errors::code(&e))
                        .with_error_message(errors::message(&e)),
                )
            }
        };
        let mut outcomes = outcomes.into_iter();
        let responses = req
            .topics
            .iter()
            .map(|t| {
                let id = broker
                    .replicas.topic(&t.topic_name)
                    .map(|t| t.id)
                    .unwrap_or_default();
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let (code, message) = errors::of(&outcomes.next().unwrap_or(Ok(())));
                        AlterShareGroupOffsetsResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                            .with_error_message(message)
                    })
                    .collect();
                AlterShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_topic_id(id)
                    .with_partitions(partitions)
            })
            .collect();
        reply.encode(&AlterShareGroupOffsetsResponse::default().with_responses(responses))
    })
}

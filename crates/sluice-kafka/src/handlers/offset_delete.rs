//! OffsetDelete (47): drop a group's committed offsets for some partitions, unless the
//! group is active and subscribed to their topic.

use std::collections::HashSet;

use bytes::Bytes;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetDeleteRequest, OffsetDeleteResponse,
};
use kafka_protocol::protocol::Decodable;

use crate::errors;
use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 0);

/// Topics named in a consumer-protocol subscription (`[version i16][subscription]`).
fn subscribed_topics(metadata: &Bytes) -> Vec<String> {
    let mut buf = metadata.clone();
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3))
        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

pub fn handle(ctx: &Context, reply: Reply, req: OffsetDeleteRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    Box::pin(async move {
        let subscribed: HashSet<String> = broker
            .groups
            .describe_group(&req.group_id)
            .map(|g| {
                g.members
                    .iter()
                    .flat_map(|m| subscribed_topics(&m.metadata))
                    .collect()
            })
            .unwrap_or_default();
        let partitions: Vec<(String, i32)> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.to_string(), p.partition_index))
            })
            .collect();
        let result = broker
            .groups
            .delete_offsets(&req.group_id, partitions, &subscribed)
            .await;
        let response = match result {
            Err(e) => OffsetDeleteResponse::default().with_error_code(errors::code(&e)),
            Ok(per_partition) => {
                let mut codes = per_partition.iter().map(|r| errors::of(r).0);
                let topics = req
                    .topics
                    .into_iter()
                    .map(|t| {
                        let partitions = t
                            .partitions
                            .iter()
                            .map(|p| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(codes.next().unwrap_or(0))
                            })
                            .collect();
                        OffsetDeleteResponseTopic::default()
                            .with_name(t.name)
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetDeleteResponse::default().with_topics(topics)
            }
        };
        reply.encode(&response)
    })
}

//! OffsetFetch (9): one group (v1-7) or several (v8+); all committed partitions for null topics.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use sluice_broker::group::{CommittedOffset, TopicOffsets};
use sluice_broker::Broker;

use super::str;
use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (1, 9);

/// (offset, leader epoch, metadata) as the wire wants them; -1s for "nothing committed".
fn committed(c: Option<CommittedOffset>) -> (i64, i32, String) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata),
        None => (-1, -1, String::new()),
    }
}

fn lookup(
    broker: &Broker,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<TopicOffsets> {
    broker.groups.fetch_offsets(group, topics)
}

/// With require_stable (v7+, read_committed consumers): a partition with offsets committed
/// in a transaction not yet ended answers UNSTABLE_OFFSET_COMMIT (the client retries).
fn unstable(broker: &Broker, require_stable: bool, group: &str, topic: &str, p: i32) -> i16 {
    if require_stable && broker.groups.has_unstable_offset(group, topic, p) {
        errors::code(&sluice_broker::BrokerError::UnstableOffsetCommit)
    } else {
        0
    }
}

pub fn handle(ctx: &Context, reply: &Reply, req: OffsetFetchRequest) -> Response {
    let broker = &ctx.broker;
    let require_stable = reply.version >= 7 && req.require_stable;
    if reply.version >= 8 {
        let groups = req
            .groups
            .iter()
            .map(|g| {
                if let Err(e) = broker.groups.check_coordinator(&g.group_id) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(errors::code(&e));
                }
                let wanted = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let topics = lookup(broker, &g.group_id, wanted)
                    .into_iter()
                    .map(|(name, parts)| {
                        let partitions = parts
                            .into_iter()
                            .map(|(p, c)| {
                                let (offset, epoch, metadata) = committed(c);
                                OffsetFetchResponsePartitions::default()
                                    .with_error_code(unstable(
                                        broker,
                                        require_stable,
                                        &g.group_id,
                                        &name,
                                        p,
                                    ))
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(str(&metadata)))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(str(&name)))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(str(&g.group_id)))
                    .with_topics(topics)
            })
            .collect();
        return reply.encode(&OffsetFetchResponse::default().with_groups(groups));
    }
    if let Err(e) = broker.groups.check_coordinator(&req.group_id) {
        return reply.encode(&OffsetFetchResponse::default().with_error_code(errors::code(&e)));
    }
    let wanted = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let topics = lookup(broker, &req.group_id, wanted)
        .into_iter()
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(p, c)| {
                    let (offset, epoch, metadata) = committed(c);
                    let mut r = OffsetFetchResponsePartition::default()
                        .with_error_code(unstable(broker, require_stable, &req.group_id, &name, p))
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_metadata(Some(str(&metadata)));
                    if reply.version >= 5 {
                        r.committed_leader_epoch = epoch;
                    }
                    r
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str(&name)))
                .with_partitions(partitions)
        })
        .collect();
    reply.encode(&OffsetFetchResponse::default().with_topics(topics))
}

//! DescribeShareGroupOffsets (90): a share group's start offset in each partition (where its
//! unfinished records begin), from the share coordinators; -1 where it never read.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as Group,
    DescribeShareGroupOffsetsResponsePartition as PartitionAnswer,
    DescribeShareGroupOffsetsResponseTopic as TopicAnswer,
};
use kafka_protocol::messages::{
    DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, TopicName,
};
use sluice_broker::Broker;

use super::str;
use crate::errors;
use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 0);

pub fn handle(
    ctx: &Context,
    reply: Reply,
    req: DescribeShareGroupOffsetsRequest,
) -> ResponseFuture {
    let broker = ctx.broker.clone();
    Box::pin(async move {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            groups.push(describe(&broker, g).await);
        }
        reply.encode(&DescribeShareGroupOffsetsResponse::default().with_groups(groups))
    })
}

async fn describe(
    broker: &Broker,
    g: &kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup,
) -> Group {
    let group = g.group_id.to_string();
    let answer = Group::default().with_group_id(g.group_id.clone());
    if let Err(e) = broker.groups.check_coordinator(&group) {
        return answer
            .with_error_code(errors::code(&e))
            .with_error_message(errors::message(&e));
    }
    // Without topics named: those the group's members subscribe to.
    let asked: Vec<(String, Vec<i32>)> = match &g.topics {
        Some(ts) => ts
            .iter()
            .map(|t| (t.topic_name.to_string(), t.partitions.clone()))
            .collect(),
        None => {
            let subscribed: BTreeSet<String> = broker
                .groups
                .share_group_members(&group)
                .map(|(_, ms)| ms.into_iter().flat_map(|(_, m)| m.subscribed).collect())
                .unwrap_or_default();
            subscribed
                .into_iter()
                .filter_map(|t| {
                    let n = broker.replicas.topic(&t)?.partition_count;
                    Some((t, (0..n).collect()))
                })
                .collect()
        }
    };
    let mut topics = Vec::with_capacity(asked.len());
    for (name, partitions) in asked {
        let id = broker.replicas.topic(&name).map(|t| t.id).unwrap_or_default();
        let mut answers = Vec::with_capacity(partitions.len());
        for p in partitions {
            let a = PartitionAnswer::default()
                .with_partition_index(p)
                .with_leader_epoch(-1);
            let state = match broker.shares.state_key(&group, &name, p) {
                Ok(key) => broker.share_coordinator.load_share_state(&key).await,
                Err(e) => Err(e),
            };
            answers.push(match state {
                Ok(Some(s)) => a.with_start_offset(s.start_offset),
                Ok(None) => a.with_start_offset(-1),
                Err(e) => a
                    .with_start_offset(-1)
                    .with_error_code(errors::code(&e))
                    .with_error_message(errors::message(&e)),
            });
        }
        topics.push(
            TopicAnswer::default()
                .with_topic_name(TopicName(str(&name)))
                .with_topic_id(id)
                .with_partitions(answers),
        );
    }
    answer.with_topics(topics)
}

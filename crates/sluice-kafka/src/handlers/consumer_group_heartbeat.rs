//! ConsumerGroupHeartbeat (68): the KIP-848 protocol; topics travel by id.

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use sluice_broker::group::ConsumerHeartbeat;
use sluice_broker::Broker;

use super::{opt_string, str};
use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 1);

pub fn handle(ctx: &Context, reply: &Reply, req: ConsumerGroupHeartbeatRequest) -> Response {
    let broker = &ctx.broker;
    if req
        .subscribed_topic_regex
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        return reply.encode(
            &ConsumerGroupHeartbeatResponse::default()
                .with_error_code(kafka_protocol::error::ResponseError::InvalidRequest.code())
                .with_error_message(Some(str(
                    "regular-expression subscriptions are not supported yet",
                ))),
        );
    }
    let owned = req.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .filter_map(|tp| {
                broker
                    .replicas.topic_by_id(tp.topic_id)
                    .map(|t| (t.name.to_string(), &tp.partitions))
            })
            .flat_map(|(name, ps)| ps.iter().map(move |p| (name.clone(), *p)))
            .collect()
    });
    let heartbeat = ConsumerHeartbeat {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: opt_string(&req.instance_id),
        rack_id: opt_string(&req.rack_id),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.to_string()).collect()),
        server_assignor: opt_string(&req.server_assignor).filter(|a| !a.is_empty()),
        owned,
        client_id: reply.client_id.clone(),
        client_host: format!("/{}", reply.peer.ip()),
    };
    let response = match broker.groups.consumer_group_heartbeat(heartbeat) {
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str(&r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(
                r.assignment
                    .map(|a| Assignment::default().with_topic_partitions(by_topic_id(broker, &a))),
            ),
        Err(e) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(errors::code(&e))
            .with_error_message(errors::message(&e)),
    };
    reply.encode(&response)
}

fn by_topic_id(
    broker: &Broker,
    assignment: &sluice_broker::group::Assignment,
) -> Vec<TopicPartitions> {
    super::by_topic(broker, assignment.iter().map(|(t, p)| (t, *p)))
        .into_iter()
        .map(|(id, _, partitions)| {
            TopicPartitions::default()
                .with_topic_id(id)
                .with_partitions(partitions)
        })
        .collect()
}

//! ShareGroupHeartbeat (76): membership of a share group (KIP-932); topics travel by id.

use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};
use sluice_broker::share::{ShareAssignment, ShareHeartbeat};
use sluice_broker::Broker;

use super::{opt_string, str};
use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs): v1, what Kafka 4.1+ and
/// librdkafka 2.16 speak (v0 was Kafka 4.0's early access).
pub const VERSIONS: (i16, i16) = (1, 1);

pub fn handle(ctx: &Context, reply: &Reply, req: ShareGroupHeartbeatRequest) -> Response {
    let broker = &ctx.broker;
    let heartbeat = ShareHeartbeat {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: opt_string(&req.rack_id),
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.to_string()).collect()),
        client_id: reply.client_id.clone(),
        client_host: format!("/{}", reply.peer.ip()),
    };
    let response = match broker.groups.share_group_heartbeat(heartbeat) {
        Ok(r) => ShareGroupHeartbeatResponse::default()
            .with_member_id(Some(str(&r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(
                r.assignment
                    .map(|a| Assignment::default().with_topic_partitions(by_topic_id(broker, &a))),
            ),
        Err(e) => ShareGroupHeartbeatResponse::default()
            .with_error_code(errors::code(&e))
            .with_error_message(errors::message(&e)),
    };
    reply.encode(&response)
}

fn by_topic_id(broker: &Broker, assignment: &ShareAssignment) -> Vec<TopicPartitions> {
    super::by_topic(broker, assignment.iter().map(|(t, p)| (t, *p)))
        .into_iter()
        .map(|(id, _, partitions)| {
            TopicPartitions::default()
                .with_topic_id(id)
                .with_partitions(partitions)
        })
        .collect()
}

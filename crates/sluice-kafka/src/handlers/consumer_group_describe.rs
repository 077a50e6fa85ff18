//! ConsumerGroupDescribe (69): KIP-848 groups with members, epochs and assignments.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use sluice_broker::Broker;

use super::{str, AUTHORIZED_OPERATIONS_OMITTED};
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 1);

const MEMBER_TYPE_CONSUMER: i8 = 1;

pub fn handle(ctx: &Context, reply: &Reply, req: ConsumerGroupDescribeRequest) -> Response {
    let broker = &ctx.broker;
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let described = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            if let Err(e) = broker.groups.check_coordinator(&id) {
                return described
                    .with_error_code(crate::errors::code(&e))
                    .with_error_message(crate::errors::message(&e));
            }
            match broker.groups.describe_consumer_group(&id) {
                None => described
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str(&format!(
                        "group {} is not a consumer-protocol group here",
                        id.0
                    )))),
                Some(g) => {
                    let members = g
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut member = Member::default()
                                .with_member_id(str(&m.member_id))
                                .with_instance_id(m.instance_id.as_deref().map(str))
                                .with_rack_id(m.rack_id.as_deref().map(str))
                                .with_member_epoch(m.epoch)
                                .with_client_id(str(&m.client_id))
                                .with_client_host(str(&m.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed.iter().map(|t| TopicName(str(t))).collect(),
                                )
                                .with_assignment(assignment(broker, &m.assignment))
                                .with_target_assignment(assignment(broker, &m.target));
                            if reply.version >= 1 {
                                member.member_type = MEMBER_TYPE_CONSUMER;
                            }
                            member
                        })
                        .collect();
                    described
                        .with_group_state(str(g.state))
                        .with_group_epoch(g.epoch)
                        .with_assignment_epoch(g.epoch)
                        .with_assignor_name(str(&g.assignor))
                        .with_members(members)
                }
            }
        })
        .collect();
    reply.encode(&ConsumerGroupDescribeResponse::default().with_groups(groups))
}

fn assignment(broker: &Broker, a: &sluice_broker::group::Assignment) -> Assignment {
    let mut out: Vec<TopicPartitions> = Vec::new();
    for (topic, partition) in a {
        let id = broker.replicas.topic(topic).map(|t| t.id).unwrap_or_default();
        match out.iter_mut().find(|tp| tp.topic_name.0.as_str() == topic) {
            Some(tp) => tp.partitions.push(*partition),
            None => out.push(
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(TopicName(str(topic)))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    Assignment::default().with_topic_partitions(out)
}

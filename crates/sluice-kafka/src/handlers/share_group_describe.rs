//! ShareGroupDescribe (77): a share group's members, their subscriptions and assignments.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{ShareGroupDescribeRequest, ShareGroupDescribeResponse, TopicName};
use sluice_broker::share::ShareAssignment;
use sluice_broker::Broker;

use super::{str, AUTHORIZED_OPERATIONS_OMITTED};
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (1, 1);

/// Every member gets every partition of its topics: Kafka's `simple` share assignor does so
/// for a small group.
const ASSIGNOR: &str = "simple";

pub fn handle(ctx: &Context, reply: &Reply, req: ShareGroupDescribeRequest) -> Response {
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
            let Some((epoch, members)) = broker.groups.share_group_members(&id) else {
                return described
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str(&format!("no share group {} here", id.0))));
            };
            let state = if members.is_empty() {
                "Empty"
            } else {
                "Stable"
            };
            described
                .with_group_state(str(state))
                .with_group_epoch(epoch)
                .with_assignment_epoch(epoch)
                .with_assignor_name(str(ASSIGNOR))
                .with_members(
                    members
                        .into_iter()
                        .map(|(member_id, m)| {
                            Member::default()
                                .with_member_id(str(&member_id))
                                .with_rack_id(m.rack_id.as_deref().map(str))
                                .with_member_epoch(m.epoch)
                                .with_client_id(str(&m.client_id))
                                .with_client_host(str(&m.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed.iter().map(|t| TopicName(str(t))).collect(),
                                )
                                .with_assignment(assignment(broker, &m.assignment))
                        })
                        .collect(),
                )
        })
        .collect();
    reply.encode(&ShareGroupDescribeResponse::default().with_groups(groups))
}

fn assignment(broker: &Broker, a: &ShareAssignment) -> Assignment {
    let topics = super::by_topic(broker, a.iter().map(|(t, p)| (t, *p)))
        .into_iter()
        .map(|(id, name, partitions)| {
            TopicPartitions::default()
                .with_topic_id(id)
                .with_topic_name(TopicName(str(name)))
                .with_partitions(partitions)
        })
        .collect();
    Assignment::default().with_topic_partitions(topics)
}

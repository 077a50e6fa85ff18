//! ShareAcknowledge (79): a share group member's acknowledgements outside a fetch.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use sluice_broker::share::{AckBatch, ShareFetchPartition};
use sluice_broker::BrokerError;
use uuid::Uuid;

use super::share_fetch::{ids, leader_of};
use crate::errors;
use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (1, 2);

pub fn handle(ctx: &Context, reply: Reply, req: ShareAcknowledgeRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    Box::pin(async move { answer(&broker, &reply, req).await })
}

async fn answer(
    broker: &sluice_broker::Broker,
    reply: &Reply,
    req: ShareAcknowledgeRequest,
) -> crate::reply::Response {
    let Some((group_id, member_id)) = ids(&req.group_id, &req.member_id) else {
        return reply.encode(&top_level_error(&BrokerError::InvalidRequest(
            "an acknowledgement names its group and member".into(),
        )));
    };
    let mut by_topic: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    let mut partitions = Vec::new();
    let mut ids_of = Vec::new();
    for t in &req.topics {
        let Some(topic) = broker.replicas.topic_by_id(t.topic_id) else {
            for p in &t.partitions {
                by_topic.entry(t.topic_id).or_default().push(
                    PartitionData::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(
                            kafka_protocol::error::ResponseError::UnknownTopicId.code(),
                        ),
                );
            }
            continue;
        };
        let name: Arc<str> = Arc::from(topic.name.as_ref());
        for p in &t.partitions {
            ids_of.push(t.topic_id);
            partitions.push(ShareFetchPartition {
                topic: name.clone(),
                partition: p.partition_index,
                acks: p
                    .acknowledgement_batches
                    .iter()
                    .map(|b| AckBatch {
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                        types: b.acknowledge_types.clone(),
                    })
                    .collect(),
            });
        }
    }
    let outcomes = match broker
        .shares.share_acknowledge(&group_id, &member_id, req.share_session_epoch, &partitions)
        .await
    {
        Ok(o) => o,
        Err(e) => return reply.encode(&top_level_error(&e)),
    };
    for ((p, outcome), id) in partitions.iter().zip(outcomes).zip(ids_of) {
        let (code, message) = errors::of(&outcome);
        let leader = leader_of(broker, &p.topic, p.partition);
        by_topic.entry(id).or_default().push(
            PartitionData::default()
                .with_partition_index(p.partition)
                .with_error_code(code)
                .with_error_message(message)
                .with_current_leader(
                    LeaderIdAndEpoch::default()
                        .with_leader_id(leader.leader_id)
                        .with_leader_epoch(leader.leader_epoch),
                ),
        );
    }
    let lock_ms = broker.shares.share_limits(&group_id).lock_duration_ms;
    reply.encode(
        &ShareAcknowledgeResponse::default()
            .with_acquisition_lock_timeout_ms(lock_ms.min(i32::MAX as i64) as i32)
            .with_responses(
                by_topic
                    .into_iter()
                    .map(|(id, partitions)| {
                        ShareAcknowledgeTopicResponse::default()
                            .with_topic_id(id)
                            .with_partitions(partitions)
                    })
                    .collect(),
            ),
    )
}

fn top_level_error(e: &BrokerError) -> ShareAcknowledgeResponse {
    ShareAcknowledgeResponse::default()
        .with_error_code(errors::code(e))
        .with_error_message(errors::message(e))
}

//! AlterPartition (56): a partition leader asks the controller to change the partition's
//! in-sync replicas. Sent between brokers (to the controller, forwarded there if it reaches
//! another broker) and not advertised to clients, as Kafka serves it on its controller
//! listener.

use kafka_protocol::messages::alter_partition_response::{PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, BrokerId};

use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions served (see versions.rs, BETWEEN_BROKERS): v2+ name topics by id.
pub const VERSIONS: (i16, i16) = (2, 3);

pub fn handle(ctx: &Context, reply: &Reply, req: AlterPartitionRequest) -> Response {
    let leader = req.broker_id.0;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    // v3 names each ISR member with its broker epoch; v2 by id alone.
                    let new_isr = if p.new_isr_with_epochs.is_empty() {
                        p.new_isr.iter().map(|b| b.0).collect()
                    } else {
                        p.new_isr_with_epochs
                            .iter()
                            .map(|b| b.broker_id.0)
                            .collect()
                    };
                    let answer = PartitionData::default().with_partition_index(p.partition_index);
                    match ctx.broker.admin.alter_isr(
                        t.topic_id,
                        p.partition_index,
                        leader,
                        p.leader_epoch,
                        p.partition_epoch,
                        new_isr,
                    ) {
                        Ok(now) => answer
                            .with_leader_id(BrokerId(now.leader))
                            .with_leader_epoch(now.leader_epoch)
                            .with_isr(now.isr.iter().map(|&id| BrokerId(id)).collect())
                            .with_partition_epoch(now.partition_epoch),
                        Err(e) => answer.with_error_code(errors::code(&e)),
                    }
                })
                .collect();
            TopicData::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    reply.encode(&AlterPartitionResponse::default().with_topics(topics))
}

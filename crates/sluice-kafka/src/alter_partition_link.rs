//! The ISR tracker's way to a controller on another broker (sluice-broker's
//! `isr_tracker.rs` decides the changes): one AlterPartition (v2, topic ids) per round, each
//! partition's error code read back in the order proposed.

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::alter_partition_request::{PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, ApiKey, BrokerId};
use sluice_broker::isr_tracker::{AlterPartitionPort, Proposal};
use sluice_cluster::BrokerInfo;

const ALTER_PARTITION_VERSION: i16 = 2;

pub struct AlterPartitionLink {
    /// How this broker reaches the controller's inter-broker listener.
    pub security: std::sync::Arc<sluice_client::ClientSecurity>,
}

impl AlterPartitionPort for AlterPartitionLink {
    fn alter_partition<'a>(
        &'a self,
        to: &'a BrokerInfo,
        me: i32,
        proposals: &'a [Proposal],
    ) -> BoxFuture<'a, Result<Vec<i16>, String>> {
        async move {
            let mut topics: Vec<TopicData> = Vec::new();
            for (id, p, proposal) in proposals {
                let data = PartitionData::default()
                    .with_partition_index(p.index)
                    .with_leader_epoch(proposal.leader_epoch)
                    .with_partition_epoch(proposal.partition_epoch)
                    .with_new_isr(proposal.isr.iter().map(|&r| BrokerId(r)).collect());
                match topics.iter_mut().find(|t| t.topic_id == *id) {
                    Some(t) => t.partitions.push(data),
                    None => topics.push(
                        TopicData::default()
                            .with_topic_id(*id)
                            .with_partitions(vec![data]),
                    ),
                }
            }
            let request = AlterPartitionRequest::default()
                .with_broker_id(BrokerId(me))
                .with_broker_epoch(-1)
                .with_topics(topics);
            let response: AlterPartitionResponse = sluice_client::call_once(
                &(to.host.clone(), to.port),
                crate::forward::client_id(me),
                &self.security,
                ApiKey::AlterPartition,
                ALTER_PARTITION_VERSION,
                &request,
            )
            .await?;
            Ok(proposals
                .iter()
                .map(|(id, p, _)| {
                    response
                        .topics
                        .iter()
                        .filter(|t| t.topic_id == *id)
                        .flat_map(|t| t.partitions.iter())
                        .find(|d| d.partition_index == p.index)
                        .map_or(-1, |d| d.error_code)
                })
                .collect())
        }
        .boxed()
    }
}

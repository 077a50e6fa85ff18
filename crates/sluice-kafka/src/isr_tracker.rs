//! The leader's side of the ISR: every round (and as soon as a follower catches up) the
//! partitions led here say which followers should leave the in-sync replicas (not caught up
//! for `replica.lag.time.max.ms`) or join them (caught up with the high watermark), and the
//! changes go to the controller as one AlterPartition, applied directly when this broker is
//! the controller. Each change names the leader epoch and partition epoch it is based on, so
//! the controller refuses one made from a stale view; a refused change is proposed again
//! from the next image.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_request::{PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, ApiKey, BrokerId};
use sluice_broker::{Broker, IsrProposal, Partition};
use tokio::sync::watch;
use tracing::{debug, info};

/// How often lagging followers are looked for; Kafka checks every half of the lag time.
fn round(broker: &Broker) -> Duration {
    Duration::from_millis((broker.config.replica_lag_time_max_ms() / 2).clamp(50, 5000) as u64)
}

const ALTER_PARTITION_VERSION: i16 = 2;

/// Runs the tracker until `shutdown` turns true.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let proposals = broker.replicas.isr_proposals();
        if !proposals.is_empty() {
            send(&broker, proposals).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(round(&broker)) => {}
            _ = broker.replicas.isr_wakeup.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

type Proposal = (uuid::Uuid, Arc<Partition>, IsrProposal);

async fn send(broker: &Arc<Broker>, proposals: Vec<Proposal>) {
    let me = broker.config.node_id;
    for (_, p, proposal) in &proposals {
        info!(topic = %p.topic, partition = p.index, isr = ?proposal.isr, "asking for an ISR change");
    }
    if broker.is_controller() {
        let b = broker.clone();
        let results = tokio::task::spawn_blocking(move || {
            proposals
                .into_iter()
                .map(|(id, p, proposal)| {
                    let result = b.admin.alter_isr(
                        id,
                        p.index,
                        me,
                        proposal.leader_epoch,
                        proposal.partition_epoch,
                        proposal.isr.clone(),
                    );
                    if let Err(e) = result {
                        debug!(topic = %p.topic, partition = p.index, error = %e, "ISR change refused");
                        p.proposal_failed(&proposal);
                    }
                })
                .count()
        })
        .await;
        if let Err(e) = results {
            debug!(error = %e, "ISR change task failed");
        }
        return;
    }
    let image = broker.replicas.image();
    let Some(controller) = image.broker(image.controller_id) else {
        fail_all(&proposals, "no controller is known");
        return;
    };
    let to = (controller.host.clone(), controller.port);
    let mut topics: Vec<TopicData> = Vec::new();
    for (id, p, proposal) in &proposals {
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
    let response: Result<AlterPartitionResponse, String> = sluice_client::call_once(
        &to,
        crate::forward::client_id(me),
        ApiKey::AlterPartition,
        ALTER_PARTITION_VERSION,
        &request,
    )
    .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            fail_all(&proposals, &e);
            return;
        }
    };
    for (id, p, proposal) in &proposals {
        let code = response
            .topics
            .iter()
            .filter(|t| t.topic_id == *id)
            .flat_map(|t| t.partitions.iter())
            .find(|d| d.partition_index == p.index)
            .map_or(-1, |d| d.error_code);
        if code != 0 {
            debug!(topic = %p.topic, partition = p.index, code, "ISR change refused");
            p.proposal_failed(proposal);
        }
    }
}

fn fail_all(proposals: &[Proposal], why: &str) {
    for (_, p, proposal) in proposals {
        debug!(topic = %p.topic, partition = p.index, error = why, "ISR change not sent");
        p.proposal_failed(proposal);
    }
}

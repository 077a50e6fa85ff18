//! The leader's side of the ISR: every round (and as soon as a follower catches up) the
//! partitions led here say which followers should leave the in-sync replicas (not caught up
//! for `replica.lag.time.max.ms`) or join them (caught up with the high watermark), and the
//! changes go to the controller as one AlterPartition (through `AlterPartitionPort`, the
//! Kafka front end's), applied directly when this broker is the controller. Each change
//! names the leader epoch and partition epoch it is based on, so the controller refuses one
//! made from a stale view; a refused change is proposed again from the next image.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sluice_cluster::BrokerInfo;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::admin::TopicAdmin;
use crate::replica::partition::{IsrProposal, Partition};
use crate::replica::ReplicaManager;

/// An ISR change for a partition (by its topic's id).
pub type Proposal = (uuid::Uuid, Arc<Partition>, IsrProposal);

/// The way to a controller on another broker.
pub trait AlterPartitionPort: Send + Sync + 'static {
    /// Sends `proposals` to the controller `to` as one AlterPartition from broker `me`: each
    /// proposal's error code (0: applied), in order, or why nothing was answered.
    fn alter_partition<'a>(
        &'a self,
        to: &'a BrokerInfo,
        me: i32,
        proposals: &'a [Proposal],
    ) -> BoxFuture<'a, Result<Vec<i16>, String>>;
}

/// How often lagging followers are looked for; Kafka checks every half of the lag time.
fn round(replicas: &ReplicaManager) -> Duration {
    Duration::from_millis((replicas.config.replica_lag_time_max_ms() / 2).clamp(50, 5000) as u64)
}

/// Runs the tracker until `shutdown` turns true.
pub async fn run(
    replicas: Arc<ReplicaManager>,
    admin: Arc<TopicAdmin>,
    port: Arc<dyn AlterPartitionPort>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let proposals = replicas.isr_proposals();
        if !proposals.is_empty() {
            send(&replicas, &admin, port.as_ref(), proposals).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(round(&replicas)) => {}
            _ = replicas.isr_wakeup.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn send(
    replicas: &ReplicaManager,
    admin: &Arc<TopicAdmin>,
    port: &dyn AlterPartitionPort,
    proposals: Vec<Proposal>,
) {
    let me = replicas.config.node_id;
    for (_, p, proposal) in &proposals {
        info!(topic = %p.topic, partition = p.index, isr = ?proposal.isr, "asking for an ISR change");
    }
    if admin.coordinator.is_controller() {
        let admin = admin.clone();
        // The controller's commit waits for etcd: on a blocking thread.
        let applied = tokio::task::spawn_blocking(move || {
            for (id, p, proposal) in proposals {
                let result = admin.alter_isr(
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
            }
        })
        .await;
        if let Err(e) = applied {
            debug!(error = %e, "ISR change task failed");
        }
        return;
    }
    let image = replicas.image();
    let Some(controller) = image.broker(image.controller_id) else {
        fail_all(&proposals, "no controller is known");
        return;
    };
    match port.alter_partition(controller, me, &proposals).await {
        Ok(codes) => {
            for (i, (_, p, proposal)) in proposals.iter().enumerate() {
                let code = codes.get(i).copied().unwrap_or(-1);
                if code != 0 {
                    debug!(topic = %p.topic, partition = p.index, code, "ISR change refused");
                    p.proposal_failed(proposal);
                }
            }
        }
        Err(e) => fail_all(&proposals, &e),
    }
}

fn fail_all(proposals: &[Proposal], why: &str) {
    for (_, p, proposal) in proposals {
        debug!(topic = %p.topic, partition = p.index, error = why, "ISR change not sent");
        p.proposal_failed(proposal);
    }
}

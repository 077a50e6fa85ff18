//! The leader's view of its followers: who may fetch, where an epoch ends, which ISR
//! changes the partitions led here need, and how many leaderships a shutdown hands over.

use std::sync::Arc;

use super::partition::{IsrProposal, Partition};
use super::ReplicaManager;
use crate::error::{BrokerError, Result};

impl ReplicaManager {
    /// The ISR changes the partitions led here need now (each marked in flight until the
    /// image settles it), with their topic ids.
    pub fn isr_proposals(&self) -> Vec<(uuid::Uuid, Arc<Partition>, IsrProposal)> {
        let now = crate::now_ms();
        let lag = self.config.replica_lag_time_max_ms();
        let mut out = Vec::new();
        for topic in self.topics() {
            for p in &topic.partitions {
                if let Some(proposal) = p.propose_isr(now, lag) {
                    out.push((topic.id, p.clone(), proposal));
                }
            }
        }
        out
    }

    /// Partitions this broker leads while another broker is alive to take them over.
    pub fn leaderships_to_hand_over(&self) -> usize {
        let image = self.image();
        let me = self.config.node_id;
        if !image.brokers.keys().any(|&b| b != me) {
            return 0;
        }
        image
            .topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.leader == me && p.replicas.iter().any(|&r| r != me))
            .count()
    }

    /// Ok if broker `replica` holds a replica of the partition (a follower may fetch it).
    pub fn check_follower(&self, topic: &str, partition: i32, replica: i32) -> Result<()> {
        let image = self.image();
        let placed = image
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .is_some_and(|p| p.replicas.contains(&replica) && replica != self.config.node_id);
        if placed {
            Ok(())
        } else {
            // Kafka's answer to a fetch from a broker that is not a follower.
            Err(BrokerError::NotLeaderOrFollower {
                leader: -1,
                leader_epoch: -1,
            })
        }
    }

    /// Where `leader_epoch` ends in the log of a partition this broker leads
    /// (OffsetForLeaderEpoch), checking the asker's `current_leader_epoch` as `local_leader`
    /// does.
    pub fn end_offset_for_epoch(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> Result<(i32, i64)> {
        let p = self.local_leader(topic, partition, current_leader_epoch)?;
        let answer = p.log().end_offset_for_epoch(leader_epoch);
        Ok(answer)
    }
}

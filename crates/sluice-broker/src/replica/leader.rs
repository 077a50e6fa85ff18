//! The leader's view of its followers: who may fetch, where an epoch ends, which ISR
//! changes the partitions led here need, and how many leaderships a shutdown hands over.

use std::sync::Arc;

use super::partition::{IsrProposal, Partition};
use super::ReplicaManager;
use crate::error::{BrokerError, Result};

/// Where a follower's log parts from the leader's: the leader's epoch (the latest at or below
/// the follower's) and where it ends here.
pub type Divergence = (i32, i64);

impl ReplicaManager {
    /// A follower's fetch of a partition led here, from `fetch_offset`: the partition to read
    /// (to its log end), or the error for the follower. When `last_fetched_epoch` is given
    /// (Fetch v12+) and the follower's log diverges from this one, the answer says where
    /// (the epoch and its end offset here) and the fetch offset does not count as the
    /// follower's log end; otherwise it does, which may advance the high watermark and wake
    /// the ISR tracker when the follower has caught up. A fetch offset past this leader's log
    /// end is OFFSET_OUT_OF_RANGE and counts for nothing. Only a broker holding a replica of
    /// the partition, fetching with the broker epoch it registered with (`replica_epoch`,
    /// Fetch v15+; -1 before), is a follower.
    #[allow(clippy::too_many_arguments)]
    pub fn follower_fetch(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        replica: i32,
        replica_epoch: i64,
        fetch_offset: i64,
        last_fetched_epoch: Option<i32>,
    ) -> Result<(Arc<Partition>, Option<Divergence>)> {
        let p = self.local_leader(topic, partition, current_leader_epoch)?;
        self.check_follower(topic, partition, replica, replica_epoch)?;
        let diverging = last_fetched_epoch.and_then(|e| p.diverging_epoch(e, fetch_offset));
        if diverging.is_some() {
            return Ok((p, diverging));
        }
        // A follower cannot hold what this leader never wrote: such a fetch offset (a
        // forged fetch) must not count as a log end, or acks=all would be answered for
        // records no other replica has.
        let log_end = p.offsets().log_end_offset;
        if fetch_offset > log_end {
            return Err(BrokerError::OffsetOutOfRange(format!(
                "replica {replica} fetches {topic}-{partition} at {fetch_offset}, past the leader's log end {log_end}"
            )));
        }
        if p.note_follower_fetch(replica, fetch_offset, crate::now_ms()) {
            self.isr_wakeup.notify_one();
        }
        Ok((p, None))
    }

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

    /// Ok if broker `replica` holds a replica of the partition (a follower may fetch it) and
    /// `replica_epoch` is its current registration. Registrations are 0 only where there is
    /// no registry (embedded), which has no followers to check.
    fn check_follower(
        &self,
        topic: &str,
        partition: i32,
        replica: i32,
        replica_epoch: i64,
    ) -> Result<()> {
        let image = self.image();
        let placed = image
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .is_some_and(|p| p.replicas.contains(&replica) && replica != self.config.node_id);
        if !placed {
            // Kafka's answer to a fetch from a broker that is not a follower.
            return Err(BrokerError::NotLeaderOrFollower {
                leader: -1,
                leader_epoch: -1,
            });
        }
        let registered = image.broker(replica).map_or(-1, |b| b.incarnation);
        if registered != 0 && registered != replica_epoch {
            return Err(BrokerError::StaleBrokerEpoch(format!(
                "replica {replica} fetches {topic}-{partition} with broker epoch {replica_epoch}, not its registration {registered}"
            )));
        }
        Ok(())
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

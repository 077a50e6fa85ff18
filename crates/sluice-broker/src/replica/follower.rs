//! The follower's side: the replicas copied from another broker's leader, appended with
//! the leader's offsets, restarted or truncated when the leader says so.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::partition::Partition;
use super::ReplicaManager;
use crate::error::{BrokerError, Result};
use sluice_log::PreparedReplicated;

/// A partition this broker follows: its replica here, and the leader it copies from.
#[derive(Clone)]
pub struct FollowTarget {
    pub topic: Arc<str>,
    pub topic_id: uuid::Uuid,
    pub partition: Arc<Partition>,
    pub leader: sluice_cluster::BrokerInfo,
    pub leader_epoch: i32,
}

/// The target's log, if this broker still follows it in the fetched leader epoch.
fn follower_log(target: &FollowTarget) -> Result<parking_lot::MutexGuard<'_, sluice_log::Log>> {
    target
        .partition
        .log_as_follower(target.leader_epoch)
        .ok_or(BrokerError::NotLeaderOrFollower {
            leader: -1,
            leader_epoch: -1,
        })
}

impl ReplicaManager {
    /// The replicas hosted here that another live broker leads, by leader: what the replica
    /// fetchers copy.
    pub fn follow_targets(&self) -> std::collections::BTreeMap<i32, Vec<FollowTarget>> {
        let image = self.image();
        let me = self.config.node_id;
        let mut out: std::collections::BTreeMap<i32, Vec<FollowTarget>> = Default::default();
        for topic in self.topics() {
            let Some(meta) = image.topic(&topic.name).filter(|m| m.id == topic.id) else {
                continue;
            };
            for p in &topic.partitions {
                let Some(placement) = meta.partition(p.index) else {
                    continue;
                };
                if placement.leader == me {
                    continue;
                }
                if let Some(leader) = image.broker(placement.leader) {
                    out.entry(placement.leader).or_default().push(FollowTarget {
                        topic: topic.name.clone(),
                        topic_id: topic.id,
                        partition: p.clone(),
                        leader: leader.clone(),
                        leader_epoch: placement.leader_epoch,
                    });
                }
            }
        }
        out
    }

    /// Appends batches fetched from the partition's leader (offsets kept) and makes them as
    /// durable as the partition's flush policy says, as the leader does: the answer resolves
    /// once they are (under `flush.messages=1`, on disk), and the follower fetcher reports
    /// its new log end (so acks=all counts this copy) only then. Like the leader's append,
    /// the write itself is done outside the partition's lock (readers never look past the
    /// committed end).
    pub fn append_replicated(
        &self,
        target: &FollowTarget,
        records: &[u8],
    ) -> Result<oneshot::Receiver<Result<sluice_log::AppendInfo>>> {
        let partition = &target.partition;
        let (prepared, offset_count) = {
            let mut log = follower_log(target)?;
            let max = log.config().max_message_bytes.max(records.len());
            let summary = sluice_log::batch::validate_replicated_batches(records, max)?;
            let prepared = log.prepare_replicated(records, &summary, crate::now_ms())?;
            (prepared, summary.offset_count)
        };
        let info = match prepared {
            PreparedReplicated::Empty(info) => info,
            PreparedReplicated::Write(pending) => {
                let written = pending.write(records);
                partition
                    .log()
                    .commit_replicated(pending, records, written)?
            }
        };
        let (done, synced) = oneshot::channel();
        self.flusher
            .after_append(partition.clone(), info, offset_count, Some(done));
        Ok(synced)
    }

    /// Starts a followed replica over at `offset`, its leader's log start, past its own end.
    pub fn restart_replica_at(&self, target: &FollowTarget, offset: i64) -> Result<()> {
        let files = follower_log(target)?.restart_at(offset, crate::now_ms())?;
        target.partition.restarted();
        super::remove_files(&files);
        Ok(())
    }

    /// Cuts a followed replica's divergent tail at `offset`.
    pub fn truncate_replica(&self, target: &FollowTarget, offset: i64) -> Result<()> {
        let files = follower_log(target)?.truncate_to(offset, crate::now_ms())?;
        target.partition.truncated();
        super::remove_files(&files);
        Ok(())
    }
}

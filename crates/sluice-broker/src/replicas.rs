//! The replica manager: the partitions this broker hosts, kept in step with the metadata
//! image, and the one lookup that answers "the local leader of this partition" or the error a
//! client must see.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_cluster::{MetadataImage, TopicMeta};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::config::{FlushPolicy, TopicSettings};
use crate::error::{BrokerError, Result};
use crate::partition::{IsrProposal, Partition};
use crate::topic::Topic;

/// A partition this broker follows: its replica here, and the leader it copies from.
#[derive(Clone)]
pub struct FollowTarget {
    pub topic: Arc<str>,
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

/// Replicas created ahead of the commit that places them (by the controller, so that a create
/// that cannot make its files changes nothing); the apply that follows takes them over.
pub(crate) type Prepared = HashMap<(Arc<str>, i32), Arc<Partition>>;

impl Broker {
    /// The image the hosted replicas match: what handlers answer from.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    pub fn cluster_id(&self) -> String {
        self.image.read().cluster_id.clone()
    }

    /// Makes the hosted replicas match `image`: opens (creating) the partitions placed on this
    /// broker, reconfigures changed topics, deletes the logs of topics gone; then the group
    /// coordinator follows the offsets partitions' leadership. Images older than the applied
    /// one are ignored. File work: call it off the async threads.
    pub(crate) fn apply_image(&self, image: Arc<MetadataImage>) -> Result<()> {
        let mut prepared = self.apply.lock();
        self.apply_image_locked(image, &mut prepared);
        drop(prepared);
        // Outside the apply lock: group requests hold the group lock and may append.
        let groups = self.groups().follow_leadership();
        let txns = self.transactions().follow_leadership();
        groups.and(txns)
    }

    pub(crate) fn apply_image_locked(&self, image: Arc<MetadataImage>, prepared: &mut Prepared) {
        if image.revision < self.image.read().revision {
            return;
        }
        let me = self.config.node_id;
        let current = self.topics.read().clone();
        // Gone topics first: a topic deleted and created again reuses its directories.
        for topic in current.values() {
            let kept = image.topic(&topic.name).is_some_and(|t| t.id == topic.id);
            if !kept {
                for p in &topic.partitions {
                    if let Err(e) = p.log().delete() {
                        warn!(topic = %topic.name, partition = p.index, error = %e, "could not delete a partition's log");
                    }
                }
                info!(topic = %topic.name, "deleted topic's replicas");
            }
        }
        let mut next = HashMap::with_capacity(image.topics.len());
        for meta in image.topics.values() {
            let existing = current.get(meta.name.as_str()).filter(|t| t.id == meta.id);
            let topic = self.hosted_topic(&image, meta, existing.map(|t| &**t), prepared, me);
            next.insert(topic.name.clone(), Arc::new(topic));
        }
        prepared.clear();
        *self.topics.write() = next;
        *self.image.write() = image;
    }

    /// The replicas of `meta` this broker hosts: kept, taken from `prepared`, or opened.
    fn hosted_topic(
        &self,
        image: &MetadataImage,
        meta: &TopicMeta,
        existing: Option<&Topic>,
        prepared: &mut Prepared,
        me: i32,
    ) -> Topic {
        let name: Arc<str> = existing
            .map(|t| t.name.clone())
            .unwrap_or_else(|| Arc::from(meta.name.as_str()));
        let settings = TopicSettings {
            overrides: meta.configs.clone(),
        };
        let reconfigure = existing.is_some_and(|t| t.settings.overrides != meta.configs);
        let min_insync = settings.min_insync_replicas(&self.config);
        let now = crate::now_ms();
        let mut partitions = Vec::new();
        for (index, placement) in meta.partitions.iter().enumerate() {
            let index = index as i32;
            if !placement.replicas.contains(&me) {
                continue;
            }
            let hosted = existing
                .and_then(|t| t.partition(index).cloned())
                .or_else(|| prepared.remove(&(name.clone(), index)))
                .map(Ok)
                .unwrap_or_else(|| self.open_partition(&name, index, &settings));
            match hosted {
                Ok(p) => {
                    // A leader that restarted since it was elected leads again only once
                    // re-elected: until then it is nobody's replica.
                    let leader = if placement.leader == me && !image.leads(placement, me) {
                        -1
                    } else {
                        placement.leader
                    };
                    p.set_placement(
                        &crate::partition::Placement {
                            me,
                            leader,
                            leader_epoch: placement.leader_epoch,
                            partition_epoch: placement.partition_epoch,
                            replicas: &placement.replicas,
                            isr: &placement.isr,
                        },
                        now,
                    );
                    p.set_min_insync_replicas(min_insync);
                    if reconfigure {
                        p.reconfigure(
                            settings.log_config(&self.config),
                            settings.flush_policy(&self.config),
                        );
                    }
                    partitions.push(p);
                }
                // Not hosted: clients are told NOT_LEADER_OR_FOLLOWER and the log says why.
                Err(e) => {
                    warn!(topic = %name, partition = index, error = %e, "could not open a partition placed on this broker")
                }
            }
        }
        Topic {
            name,
            id: meta.id,
            settings,
            partition_count: meta.partition_count(),
            partitions,
        }
    }
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
                        partition: p.clone(),
                        leader: leader.clone(),
                        leader_epoch: placement.leader_epoch,
                    });
                }
            }
        }
        out
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

    /// Appends batches fetched from the partition's leader (offsets kept) and syncs them as
    /// the partition's flush policy says, as the leader does: under `flush.messages=1` the
    /// answer is a wait that resolves once they are on disk, and the replica fetcher reports
    /// its new log end (so acks=all counts this copy) only then.
    pub fn append_replicated(
        &self,
        target: &FollowTarget,
        records: &[u8],
    ) -> Result<Option<oneshot::Receiver<Result<sluice_log::AppendInfo>>>> {
        let partition = &target.partition;
        let info = {
            let mut log = follower_log(target)?;
            let max = log.config().max_message_bytes.max(records.len());
            let summary = sluice_log::batch::validate_replicated_batches(records, max)?;
            let info = log.append_replicated(records, &summary, crate::now_ms())?;
            (info, summary.offset_count)
        };
        let (info, offset_count) = info;
        partition.note_log_end(info.end.offset);
        match partition.flush_policy() {
            FlushPolicy::EveryWrite => {
                let (tx, rx) = oneshot::channel();
                self.flusher
                    .request(partition.clone(), info.end, Some((info, tx)));
                Ok(Some(rx))
            }
            FlushPolicy::Interval { messages, .. } => {
                partition.publish(info.end);
                if partition.note_unflushed(offset_count, messages) {
                    partition.flush_requested(crate::now_ms());
                    self.flusher.request(partition.clone(), info.end, None);
                }
                Ok(None)
            }
        }
    }

    /// Starts a followed replica over at `offset`, its leader's log start, past its own end.
    pub fn restart_replica_at(&self, target: &FollowTarget, offset: i64) -> Result<()> {
        let files = follower_log(target)?.restart_at(offset, crate::now_ms())?;
        target.partition.restarted();
        crate::broker::remove_files(&files);
        Ok(())
    }

    /// Cuts a followed replica's divergent tail at `offset`.
    pub fn truncate_replica(&self, target: &FollowTarget, offset: i64) -> Result<()> {
        let files = follower_log(target)?.truncate_to(offset, crate::now_ms())?;
        target.partition.truncated();
        crate::broker::remove_files(&files);
        Ok(())
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

    /// A replica hosted here that a consumer may read (KIP-392): the leader's, or, while the
    /// partition has a live leader, a follower's (read to its high watermark, which is the
    /// leader's as of its last fetch). Epochs are checked as in `local_leader`.
    pub fn local_replica(
        &self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
    ) -> Result<Arc<Partition>> {
        match self.local_leader(topic, partition, leader_epoch) {
            Err(e @ BrokerError::NotLeaderOrFollower { .. }) => self
                .topic(topic)
                .and_then(|t| t.partition(partition).cloned())
                .ok_or(e),
            other => other,
        }
    }

    /// KIP-392: the in-sync replica a consumer in `rack` should read from, if the rack-aware
    /// selector is on and that is not this leader (None: read here).
    pub fn preferred_read_replica(&self, topic: &str, partition: i32, rack: &str) -> Option<i32> {
        if !self.config.rack_aware_replica_selector() {
            return None;
        }
        let image = self.image();
        let p = image.topic(topic)?.partition(partition)?;
        let me = self.config.node_id;
        if p.leader != me {
            return None; // a follower serves what it is asked
        }
        let in_rack = |id: i32| {
            image
                .broker(id)
                .is_some_and(|b| b.rack.as_deref() == Some(rack))
        };
        if in_rack(me) {
            return None;
        }
        p.isr.iter().copied().find(|&r| r != me && in_rack(r))
    }

    /// The partition if this broker leads it; otherwise the error for the client. With
    /// `leader_epoch` (the request's current leader epoch, -1 for none) a stale or future
    /// epoch is FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH.
    pub fn local_leader(
        &self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
    ) -> Result<Arc<Partition>> {
        let image = self.image();
        let placement = image
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if leader_epoch >= 0 && leader_epoch < placement.leader_epoch {
            return Err(BrokerError::FencedLeaderEpoch(leader_epoch));
        }
        if leader_epoch > placement.leader_epoch {
            return Err(BrokerError::UnknownLeaderEpoch(leader_epoch));
        }
        if placement.leader == self.config.node_id && !image.leads(placement, self.config.node_id) {
            // Restarted since elected: the controller elects it again in a new epoch.
            return Err(BrokerError::LeaderNotAvailable);
        }
        if placement.leader != self.config.node_id {
            return Err(if image.brokers.contains_key(&placement.leader) {
                BrokerError::NotLeaderOrFollower {
                    leader: placement.leader,
                    leader_epoch: placement.leader_epoch,
                }
            } else {
                BrokerError::LeaderNotAvailable
            });
        }
        self.topic(topic)
            .and_then(|t| t.partition(partition).cloned())
            .ok_or(BrokerError::NotLeaderOrFollower {
                leader: -1,
                leader_epoch: placement.leader_epoch,
            })
    }
}

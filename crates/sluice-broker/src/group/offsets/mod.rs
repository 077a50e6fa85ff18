//! Committed offsets and group metadata: durable in `__consumer_offsets`, loaded back at start,
//! expired for empty groups. Also the read side: listing and describing groups.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sluice_log::batch;
use tracing::{info, warn};

use super::records::{self, CommittedOffset};
use super::state::{Group, GroupState};
use super::GroupCoordinator;
use crate::coordinated_topic::partition_for;
use crate::error::{BrokerError, Result};
use crate::replica::partition::Partition;
use crate::replica::produce::PendingAppend;
use crate::replica::topic::{Topic, OFFSETS_TOPIC};

/// A topic's partitions with what each has committed (None: nothing).
pub type TopicOffsets = (String, Vec<(i32, Option<CommittedOffset>)>);

/// One partition's offset to commit.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
}

fn group_type(g: &Group) -> &'static str {
    if g.consumer.is_some() {
        "consumer"
    } else {
        "classic"
    }
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub generation: i32,
    pub members: Vec<MemberDescription>,
}

/// A committed offset with the partition's log end and the lag between them.
#[derive(Debug, Clone)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub log_end: i64,
    pub lag: i64,
}

fn record(key: Vec<u8>, value: Option<Vec<u8>>) -> (Vec<u8>, Option<Vec<u8>>) {
    (key, value)
}

/// How long a group write waits for the offsets partition's in-sync replicas (Kafka's
/// `offsets.commit.timeout.ms` default).
const GROUP_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits for a group write to be acknowledged (acks=all).
async fn wait_group_write(pending: PendingAppend) -> Result<()> {
    crate::coordinated_topic::written(pending, GROUP_WRITE_TIMEOUT).await
}

impl GroupCoordinator {
    /// The `__consumer_offsets` topic, created on first use with the broker's settings.
    pub fn offsets_topic(&self) -> Result<Arc<Topic>> {
        self.offsets.topic()
    }

    /// The `__consumer_offsets` partition of `group` in the current image.
    fn partition_of(&self, group: &str) -> Result<i32> {
        let count = self
            .offsets
            .partition_count()
            .ok_or(BrokerError::CoordinatorNotAvailable)?;
        Ok(partition_for(group, count))
    }

    /// Whether `__consumer_offsets` exists (no group was ever coordinated before it does).
    pub fn offsets_topic_exists(&self) -> bool {
        self.offsets.partition_count().is_some()
    }

    /// The broker that coordinates `group`: the leader of its `__consumer_offsets`
    /// partition. COORDINATOR_NOT_AVAILABLE while the topic does not exist or the
    /// partition has no live leader.
    pub fn group_coordinator(&self, group: &str) -> Result<sluice_cluster::BrokerInfo> {
        self.offsets.coordinator_at(self.partition_of(group)?)
    }

    /// Ok if this broker coordinates `group`: it leads the group's `__consumer_offsets`
    /// partition (created here first if it does not exist) and has loaded it. Otherwise
    /// NOT_COORDINATOR (another broker leads it), COORDINATOR_LOAD_IN_PROGRESS (loading) or
    /// COORDINATOR_NOT_AVAILABLE (no live leader, or the topic is still being created).
    /// Every group request checks this before it takes the group lock.
    pub fn check_coordinator(&self, group: &str) -> Result<()> {
        // Its records' keys store the id with a 16-bit length.
        if group.len() > i16::MAX as usize {
            return Err(BrokerError::InvalidGroupId);
        }
        self.offsets.topic()?;
        self.offsets.check_at(self.partition_of(group)?)
    }

    /// The offsets partition of `group`, if this broker leads it (NOT_COORDINATOR if another
    /// does).
    fn offsets_partition(&self, group: &str) -> Result<Arc<Partition>> {
        // Never created here: callers hold the group lock (check_coordinator created it).
        let topic = self
            .replicas
            .topic(OFFSETS_TOPIC)
            .ok_or(BrokerError::CoordinatorNotAvailable)?;
        self.offsets
            .partition_at(partition_for(group, topic.partition_count))
    }

    /// Appends records for `group` to its `__consumer_offsets` partition (one batch).
    fn append_group_records(
        &self,
        group: &str,
        recs: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<PendingAppend> {
        self.append_group_batch(group, recs, None)
    }

    /// `append_group_records`, as a transactional batch of `producer` (id, epoch) when given:
    /// no sequence, so it is fenced by the producer's epoch alone.
    fn append_group_batch(
        &self,
        group: &str,
        recs: &[(Vec<u8>, Option<Vec<u8>>)],
        producer: Option<(i64, i16)>,
    ) -> Result<PendingAppend> {
        let partition = self.offsets_partition(group)?;
        let kv: Vec<batch::KeyValue<'_>> = recs
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
            .collect();
        let mut batch = batch::build_batch(crate::now_ms(), &kv);
        if let Some((id, epoch)) = producer {
            batch::set_transactional(&mut batch, id, epoch, -1);
        }
        self.replicas.append(
            &partition,
            batch.into(),
            -1,
            crate::AppendOrigin::Coordinator,
        )
    }

    /// Writes the group's metadata (after a rebalance, or when it empties). Not awaited: a
    /// lost write only means the members rejoin after a crash.
    pub(crate) fn persist_group(&self, group: &Group) {
        let value = records::group_value(&group.to_stored());
        if let Err(e) = self.append_group_records(
            &group.id,
            &[record(records::group_key(&group.id), Some(value))],
        ) {
            warn!(group = %group.id, error = %e, "could not persist group metadata");
        }
    }

    /// Checks each commit (a known partition, metadata within `offset.metadata.max.bytes`):
    /// per commit its result, and for the accepted ones their records and their values.
    #[allow(clippy::type_complexity)]
    fn offset_records(
        &self,
        group_id: &str,
        commits: &[OffsetCommit],
    ) -> (
        Vec<Result<()>>,
        Vec<(Vec<u8>, Option<Vec<u8>>)>,
        Vec<((String, i32), CommittedOffset)>,
    ) {
        let max_metadata = self.config.offset_metadata_max_bytes();
        let now = crate::now_ms();
        let mut recs = Vec::new();
        let mut accepted = Vec::new();
        let results = commits
            .iter()
            .map(|c| {
                let known = self
                    .replicas
                    .topic(&c.topic)
                    .is_some_and(|t| (0..t.partition_count).contains(&c.partition));
                if !known {
                    return Err(BrokerError::UnknownTopicOrPartition);
                }
                if c.metadata.as_ref().is_some_and(|m| m.len() > max_metadata) {
                    return Err(BrokerError::OffsetMetadataTooLarge);
                }
                let value = CommittedOffset {
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: c.metadata.clone().unwrap_or_default(),
                    commit_timestamp: now,
                };
                recs.push(record(
                    records::offset_key(group_id, &c.topic, c.partition),
                    Some(records::offset_value(&value)),
                ));
                accepted.push(((c.topic.clone(), c.partition), value));
                Ok(())
            })
            .collect();
        (results, recs, accepted)
    }

    /// OffsetCommit. Returns per-partition results; the call fails as a whole for group errors.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        commits: Vec<OffsetCommit>,
    ) -> Result<Vec<Result<()>>> {
        if group_id.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        self.check_coordinator(group_id)?;
        let (results, pending) = {
            let mut groups = self.groups.lock();
            let simple = generation < 0 && member_id.is_empty();
            let group = match groups.get_mut(group_id) {
                Some(g) => g,
                None if simple => groups
                    .entry(group_id.to_string())
                    .or_insert_with(|| Group::new(group_id)),
                None => return Err(BrokerError::UnknownMemberId),
            };
            if simple {
                if !group.is_empty() {
                    return Err(BrokerError::UnknownMemberId);
                }
            } else if let Some(cg) = &group.consumer {
                GroupCoordinator::check_consumer_commit(cg, member_id, generation)?;
            } else {
                group.check_member(member_id, instance_id)?;
                if generation != group.generation {
                    return Err(BrokerError::IllegalGeneration);
                }
                // As Kafka: members of the current generation may still commit while a
                // rebalance is being prepared (that is how they save progress before giving
                // partitions up); only between join and sync is a commit refused.
                if group.state == GroupState::CompletingRebalance {
                    return Err(BrokerError::RebalanceInProgress);
                }
                if let Some(m) = group.members.get_mut(member_id) {
                    m.touch(Instant::now());
                }
            }
            let (results, recs, accepted) = self.offset_records(group_id, &commits);
            let pending = if recs.is_empty() {
                None
            } else {
                Some(self.append_group_records(group_id, &recs)?)
            };
            group.offsets.extend(accepted);
            (results, pending)
        };
        if let Some(p) = pending {
            wait_group_write(p).await?;
        }
        Ok(results)
    }

    /// OffsetFetch: committed offsets of the given partitions (all committed ones for `None`).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<TopicOffsets> {
        let groups = self.groups.lock();
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|p| (p, offsets.and_then(|o| o.get(&(topic.clone(), p))).cloned()))
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    BTreeMap::new();
                for ((topic, p), c) in offsets.into_iter().flatten() {
                    by_topic
                        .entry(topic.clone())
                        .or_default()
                        .push((*p, Some(c.clone())));
                }
                by_topic
                    .into_iter()
                    .map(|(t, mut ps)| {
                        ps.sort_by_key(|(p, _)| *p);
                        (t, ps)
                    })
                    .collect()
            }
        }
    }

    /// Every committed offset of a group with the log end and lag of its partition.
    pub fn group_lag(&self, group_id: &str) -> Vec<PartitionLag> {
        self.fetch_offsets(group_id, None)
            .into_iter()
            .flat_map(|(topic, parts)| {
                let t = self.replicas.topic(&topic);
                parts.into_iter().filter_map(move |(p, c)| {
                    let committed = c?.offset;
                    let log_end = t.as_ref()?.partition(p)?.offsets().high_watermark;
                    Some(PartitionLag {
                        topic: topic.clone(),
                        partition: p,
                        committed,
                        log_end,
                        lag: (log_end - committed).max(0),
                    })
                })
            })
            .collect()
    }

    pub fn list_groups(&self, states: &[String], types: &[String]) -> Vec<GroupListing> {
        let groups = self.groups.lock();
        let wanted = |filter: &[String], value: &str| {
            filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
        };
        let mut out: Vec<GroupListing> = groups
            .values()
            .filter(|g| wanted(states, g.state_name()) && wanted(types, group_type(g)))
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: if g.consumer.is_some() {
                    "consumer".into()
                } else {
                    g.protocol_type.clone().unwrap_or_default()
                },
                state: g.state_name(),
                group_type: group_type(g),
            })
            .collect();
        // Share groups (queues) are listed too, as Kafka lists them: type and protocol "share".
        let shares = self.share_groups.lock();
        for (id, g) in shares.iter() {
            let state = if g.members.is_empty() {
                "Empty"
            } else {
                "Stable"
            };
            if wanted(states, state) && wanted(types, "share") {
                out.push(GroupListing {
                    group_id: id.clone(),
                    protocol_type: "share".into(),
                    state,
                    group_type: "share",
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    pub fn describe_group(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.groups.lock();
        let g = groups.get(group_id)?;
        if let Some(cg) = &g.consumer {
            // Seen through the classic API: members and state, no protocol metadata.
            return Some(GroupDescription {
                state: cg.state_name(),
                protocol_type: "consumer".into(),
                protocol: cg.assignor.clone(),
                generation: cg.epoch,
                members: cg
                    .members
                    .values()
                    .map(|m| MemberDescription {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: Bytes::new(),
                        assignment: Bytes::new(),
                    })
                    .collect(),
            });
        }
        let protocol = g.protocol.clone().unwrap_or_default();
        Some(GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.state == GroupState::Stable {
                protocol.clone()
            } else {
                String::new()
            },
            generation: g.generation,
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// DeleteGroups: only groups without members; their offsets and metadata get tombstones.
    pub async fn delete_group(&self, group_id: &str) -> Result<()> {
        self.check_coordinator(group_id)?;
        let pending = {
            let mut groups = self.groups.lock();
            let g = groups.get(group_id).ok_or(BrokerError::GroupIdNotFound)?;
            if !g.is_empty() || g.state != GroupState::Empty {
                return Err(BrokerError::NonEmptyGroup);
            }
            let mut recs: Vec<_> = g
                .offsets
                .keys()
                .map(|(t, p)| record(records::offset_key(group_id, t, *p), None))
                .collect();
            recs.push(record(records::group_key(group_id), None));
            let pending = self.append_group_records(group_id, &recs)?;
            groups.remove(group_id);
            pending
        };
        wait_group_write(pending).await?;
        info!(group = group_id, "deleted group");
        Ok(())
    }

    /// OffsetDelete. `subscribed` are the topics the group's members subscribe to; their
    /// offsets cannot be deleted while the group is active.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
        subscribed: &HashSet<String>,
    ) -> Result<Vec<Result<()>>> {
        self.check_coordinator(group_id)?;
        let (results, pending) = {
            let mut groups = self.groups.lock();
            let g = groups
                .get_mut(group_id)
                .ok_or(BrokerError::GroupIdNotFound)?;
            let active = !g.is_empty();
            let mut recs = Vec::new();
            let results = partitions
                .iter()
                .map(|(t, p)| {
                    if active && subscribed.contains(t) {
                        return Err(BrokerError::GroupSubscribedToTopic);
                    }
                    if g.offsets.remove(&(t.clone(), *p)).is_some() {
                        recs.push(record(records::offset_key(group_id, t, *p), None));
                    }
                    Ok(())
                })
                .collect();
            let pending = if recs.is_empty() {
                None
            } else {
                Some(self.append_group_records(group_id, &recs)?)
            };
            (results, pending)
        };
        if let Some(p) = pending {
            wait_group_write(p).await?;
        }
        Ok(results)
    }

    /// Drops offsets of empty groups older than `offsets.retention.minutes`, and groups left
    /// with nothing.
    pub(crate) fn expire_offsets(&self) {
        let retention_ms = self
            .config
            .offsets_retention_minutes()
            .saturating_mul(60_000);
        let now = crate::now_ms();
        let mut groups = self.groups.lock();
        let mut emptied = Vec::new();
        for g in groups
            .values_mut()
            .filter(|g| g.state == GroupState::Empty && g.is_empty())
        {
            let since_empty = g.state_since_ms;
            let expired: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|(_, c)| {
                    c.commit_timestamp
                        .max(since_empty)
                        .saturating_add(retention_ms)
                        <= now
                })
                .map(|(k, _)| k.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            let mut recs: Vec<_> = expired
                .iter()
                .map(|(t, p)| record(records::offset_key(&g.id, t, *p), None))
                .collect();
            for k in &expired {
                g.offsets.remove(k);
            }
            if g.offsets.is_empty() {
                recs.push(record(records::group_key(&g.id), None));
                emptied.push(g.id.clone());
            }
            info!(group = %g.id, partitions = expired.len(), "expired committed offsets");
            if let Err(e) = self.append_group_records(&g.id, &recs) {
                warn!(group = %g.id, error = %e, "could not write offset expiry");
            }
        }
        for id in emptied {
            groups.remove(&id);
        }
    }
}

/// TxnOffsetCommit's producer and member, as the request names them.
#[derive(Debug, Clone)]
pub struct TxnCommitter {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// v3+: the consumer's generation and member id (-1 / empty: not checked).
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
}

impl GroupCoordinator {
    /// TxnOffsetCommit: offsets committed in the producer's transaction. Written to the
    /// group's offsets partition as a transactional batch of the producer; they count once
    /// the transaction commits (its marker reaches that partition) and are dropped if it
    /// aborts.
    pub async fn txn_commit_offsets(
        &self,
        group_id: &str,
        committer: TxnCommitter,
        commits: Vec<OffsetCommit>,
    ) -> Result<Vec<Result<()>>> {
        if group_id.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        self.check_coordinator(group_id)?;
        let (results, pending) = {
            let mut groups = self.groups.lock();
            let group = groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id));
            // A member of a live group must be of its current generation (KIP-447); a
            // group without members takes the commit as it is.
            if committer.generation >= 0 && !group.is_empty() {
                if let Some(cg) = &group.consumer {
                    GroupCoordinator::check_consumer_commit(
                        cg,
                        &committer.member_id,
                        committer.generation,
                    )?;
                } else {
                    group.check_member(&committer.member_id, committer.instance_id.as_deref())?;
                    if committer.generation != group.generation {
                        return Err(BrokerError::IllegalGeneration);
                    }
                }
            }
            let (results, recs, accepted) = self.offset_records(group_id, &commits);
            let pending = if recs.is_empty() {
                None
            } else {
                let producer = (committer.producer_id, committer.producer_epoch);
                Some(self.append_group_batch(group_id, &recs, Some(producer))?)
            };
            group
                .pending_txn_offsets
                .entry(committer.producer_id)
                .or_default()
                .extend(accepted);
            (results, pending)
        };
        if let Some(p) = pending {
            if let Err(e) = wait_group_write(p).await {
                let mut groups = self.groups.lock();
                if let Some(g) = groups.get_mut(group_id) {
                    g.pending_txn_offsets.remove(&committer.producer_id);
                }
                return Err(match e {
                    BrokerError::InvalidProducerEpoch(m) => BrokerError::ProducerFenced(m),
                    e => e,
                });
            }
        }
        Ok(results)
    }

    /// A marker for `producer_id` reached offsets partition `index`: the offsets its
    /// transaction committed for that partition's groups count (commit) or are dropped.
    pub(crate) fn complete_txn_offsets(&self, index: i32, producer_id: i64, commit: bool) {
        let count = self
            .replicas
            .topic(OFFSETS_TOPIC)
            .map_or(1, |t| t.partition_count);
        let mut groups = self.groups.lock();
        for (id, g) in groups.iter_mut() {
            if partition_for(id, count) == index {
                g.complete_txn_offsets(producer_id, commit);
            }
        }
    }

    /// Whether a transaction not yet ended committed an offset for this partition of the
    /// group (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT for it).
    pub fn has_unstable_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.groups
            .lock()
            .get(group_id)
            .is_some_and(|g| g.has_unstable_offset(topic, partition))
    }
}

#[cfg(test)]
mod tests;

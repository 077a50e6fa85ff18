//! Acknowledgements (ShareAcknowledge, or riding on ShareFetch) and releases: applied to a
//! share-partition in memory first, then made durable at its share coordinator by a write
//! that includes them (concurrent changes share writes, one in flight per share-partition).

use super::*;

/// A change to a share-partition, applied in memory, to be made durable.
pub(super) struct PendingCommit {
    pub(super) group: String,
    pub(super) partition: Arc<Partition>,
    pub(super) key: state::StateKey,
    pub(super) slot: SharedPartition,
    pub(super) change: u64,
    pub(super) archived: Vec<ArchivedRecord>,
}

impl SharePartitionManager {
    /// ShareAcknowledge: acknowledgements outside a fetch. Returns each partition's outcome.
    pub async fn share_acknowledge(
        &self,
        group_id: &str,
        member_id: &str,
        session_epoch: i32,
        partitions: &[ShareFetchPartition],
    ) -> Result<Vec<Result<()>>> {
        if session_epoch == OPEN {
            return Err(BrokerError::InvalidShareSessionEpoch(
                "acknowledgements need an open share session".into(),
            ));
        }
        let limits = self.share_limits(group_id);
        let req = ShareFetchRequest {
            group_id: group_id.to_string(),
            member_id: member_id.to_string(),
            session_epoch,
            max_wait: Duration::ZERO,
            max_bytes: 0,
            max_records: 0,
            acquire_mode: AcquireMode::RenewOnly,
            partitions: Vec::new(),
            forgotten: Vec::new(),
        };
        let (_, released) = self.advance_session(&req)?;
        let member: Arc<str> = Arc::from(member_id);
        let mut outcomes = Vec::with_capacity(partitions.len());
        for p in partitions {
            outcomes.push(
                self.acknowledge_durably(group_id, &member, p, &limits)
                    .await,
            );
        }
        self.release_for(group_id, member_id, released, &limits)
            .await;
        Ok(outcomes)
    }

    /// Applies one partition's acknowledgements and waits until their new state is durable.
    pub(super) async fn acknowledge_durably(
        &self,
        group: &str,
        member: &Arc<str>,
        p: &ShareFetchPartition,
        limits: &Limits,
    ) -> Result<()> {
        let (refused, commit) = self.apply_acks(group, member, p, limits)?;
        if let Some(commit) = commit {
            commit.slot.notify();
            self.commit(commit).await?;
        }
        refused.map_or(Ok(()), Err)
    }

    /// Applies one partition's acknowledgements to its share-partition (in memory). Returns
    /// the refusal of any of them (the others are applied), and the change to make durable.
    pub(super) fn apply_acks(
        &self,
        group: &str,
        member: &Arc<str>,
        p: &ShareFetchPartition,
        limits: &Limits,
    ) -> Result<(Option<BrokerError>, Option<PendingCommit>)> {
        let partition = self.replicas.local_leader(&p.topic, p.partition, -1)?;
        let slot = self
            .existing_share_partition(group, &p.topic, p.partition)
            .ok_or_else(|| {
                BrokerError::InvalidRecordState(
                    "no records of this partition were delivered to the group".into(),
                )
            })?;
        let mut parsed = Vec::with_capacity(p.acks.len());
        for b in &p.acks {
            let types = b
                .types
                .iter()
                .map(|&t| AckType::from_code(t))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    BrokerError::InvalidRequest(format!(
                        "unknown acknowledge type in {:?}",
                        b.types
                    ))
                })?;
            parsed.push((b.first_offset, b.last_offset, types));
        }
        let key = self.state_key(group, &p.topic, p.partition)?;
        let mut refused = None;
        let now = crate::now_ms();
        let mut state = slot.state.lock();
        let mut changed = false;
        for (first, last, types) in parsed {
            match state.acknowledge(member, first, last, &types, limits, now) {
                // A renewal changes nothing that is persisted (an acquired record is stored
                // as available), so alone it needs no write.
                Ok(()) => changed |= types.iter().any(|&t| t != AckType::Renew),
                Err(e) => refused = Some(BrokerError::InvalidRecordState(e.0)),
            }
        }
        let commit = changed.then(|| PendingCommit {
            group: group.to_string(),
            change: slot.changed_quietly(),
            archived: state.take_archived(),
            partition,
            key,
            slot: slot.clone(),
        });
        Ok((refused, commit))
    }

    /// Makes a change to a share-partition durable: first the dead letters of the records it
    /// archived (those stay in flight until theirs are written), then the state, through a
    /// write that includes the change. Concurrent changes share writes: whoever writes next
    /// writes the state as it is then, and every change it includes is answered by it.
    pub(super) async fn commit(&self, c: PendingCommit) -> Result<()> {
        self.commit_change(
            &c.group,
            &c.partition,
            &c.key,
            &c.slot,
            c.change,
            c.archived,
        )
        .await
    }

    pub(super) async fn commit_change(
        &self,
        group: &str,
        partition: &Partition,
        key: &state::StateKey,
        slot: &ShareSlot,
        mut change: u64,
        archived: Vec<ArchivedRecord>,
    ) -> Result<()> {
        use std::sync::atomic::Ordering;
        if !archived.is_empty() {
            self.send_dead_letters(group, partition, &archived).await;
            let mut state = slot.state.lock();
            state.letters_written(&archived);
            change = slot.changed();
        }
        let _gate = slot.writes.lock().await;
        if slot.durable.load(Ordering::SeqCst) >= change {
            return Ok(());
        }
        let (snapshot, through) = {
            let state = slot.state.lock();
            (state.to_persisted(), slot.changes.load(Ordering::SeqCst))
        };
        if let Err(e) = self.coordinator.store_share_state(key, snapshot).await {
            if matches!(e, BrokerError::FencedStateEpoch) {
                // An administrator replaced the state: build it again from there.
                self.forget_share_partition(group, partition);
            }
            return Err(e);
        }
        slot.durable.fetch_max(through, Ordering::SeqCst);
        Ok(())
    }

    /// Makes what `member` holds in `partitions` available again, durably (a release
    /// raised delivery counts, and may have archived records at the limit).
    pub(super) async fn release_for(
        &self,
        group: &str,
        member: &str,
        partitions: Vec<(Arc<str>, i32)>,
        limits: &Limits,
    ) {
        let releases = self.release_in_memory(group, member, partitions, limits);
        self.commit_releases(group, releases).await;
    }

    /// Makes what `member` holds in `partitions` available again (in memory); returns the
    /// changes to make durable.
    pub(super) fn release_in_memory(
        &self,
        group: &str,
        member: &str,
        partitions: Vec<(Arc<str>, i32)>,
        limits: &Limits,
    ) -> Vec<Result<PendingCommit>> {
        let mut out = Vec::new();
        for (topic, index) in partitions {
            let Some(slot) = self.existing_share_partition(group, &topic, index) else {
                continue;
            };
            out.push((|| {
                let key = self.state_key(group, &topic, index)?;
                let partition = self.replicas.local_leader(&topic, index, -1)?;
                let mut state = slot.state.lock();
                state.release_member(member, limits);
                Ok(PendingCommit {
                    group: group.to_string(),
                    change: slot.changed(),
                    archived: state.take_archived(),
                    partition,
                    key,
                    slot: slot.clone(),
                })
            })());
        }
        out
    }

    /// Makes released records durable; a failure is logged (nobody waits on a release).
    pub(super) async fn commit_releases(&self, group: &str, releases: Vec<Result<PendingCommit>>) {
        for release in releases {
            let target = release
                .as_ref()
                .map(|c| (c.partition.topic.clone(), c.partition.index))
                .ok();
            let stored = match release {
                Ok(commit) => self.commit(commit).await,
                Err(e) => Err(e),
            };
            if let Err(e) = stored {
                tracing::warn!(group, partition = ?target, error = %e, "could not persist released records");
            }
        }
    }
}

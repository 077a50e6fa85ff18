//! The share-partitions this leader holds: built from their share coordinator's state on
//! first use (patiently while that coordinator is not ready), read again after a leadership
//! change or a fenced write, and their periodic pass (lock expiries, snapshots that changed
//! without an acknowledgement).

use super::*;

/// A share-partition, and the gate its state writes pass one at a time (so they reach the
/// share coordinator in the order they were taken).
pub struct ShareSlot {
    pub(super) state: Mutex<SharePartition>,
    /// Bumped with every change, for share fetches waiting for records to free up.
    pub(super) signal: tokio::sync::watch::Sender<u64>,
    /// Changes made to `state` that must become durable, counted under its lock.
    pub(super) changes: std::sync::atomic::AtomicU64,
    /// How many of them a write has made durable.
    pub(super) durable: std::sync::atomic::AtomicU64,
    pub(super) writes: tokio::sync::Mutex<()>,
}

impl ShareSlot {
    pub(super) fn new(sp: SharePartition) -> ShareSlot {
        ShareSlot {
            state: Mutex::new(sp),
            signal: tokio::sync::watch::Sender::new(0),
            changes: Default::default(),
            durable: Default::default(),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Numbers a change just made to the state (call with its lock held) and wakes the
    /// share fetches waiting on this share-partition.
    pub(super) fn changed(&self) -> u64 {
        let n = self.changed_quietly();
        self.notify();
        n
    }

    /// Numbers a change without waking anyone yet: a member whose acknowledgements freed
    /// room gets the first pick of what it freed, then `notify` wakes the others.
    pub(super) fn changed_quietly(&self) -> u64 {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    pub(super) fn notify(&self) {
        self.signal
            .send_replace(self.changes.load(std::sync::atomic::Ordering::SeqCst));
    }
}

/// How long a share-partition waits for its share coordinator (the state topic being
/// created, its leader moving or loading) before its fetches get the error: Kafka's persister
/// retries as long (five lookups, backing off from 1 s). Meanwhile the partition is still
/// initializing, and a fetch gets nothing from it rather than an error, which librdkafka
/// does not expect there and hands to the application.
pub(super) const STATE_READ_PATIENCE: Duration = Duration::from_secs(15);

impl SharePartitionManager {
    pub(super) fn existing_share_partition(
        &self,
        group: &str,
        topic: &Arc<str>,
        index: i32,
    ) -> Option<SharedPartition> {
        self.partitions
            .lock()
            .get(&(group.to_string(), topic.clone(), index))
            .map(|(_, sp)| sp.clone())
    }

    /// The group's share-partition of a partition this broker leads: as persisted, or new
    /// where `share.auto.offset.reset` says.
    /// The share-partition, its state read from its share coordinator on first use; `None`
    /// while that coordinator is not ready yet (for `STATE_READ_PATIENCE`).
    pub(super) async fn share_partition(
        &self,
        group: &str,
        topic: &Arc<str>,
        partition: &Partition,
    ) -> Result<Option<SharedPartition>> {
        let key = (group.to_string(), topic.clone(), partition.index);
        let epoch = partition.leader_epoch();
        if let Some((e, sp)) = self.partitions.lock().get(&key) {
            if *e == epoch {
                return Ok(Some(sp.clone()));
            }
        }
        let loaded = self
            .coordinator
            .load_share_state(&self.state_key(group, topic, partition.index)?)
            .await;
        let persisted = match loaded {
            Ok(persisted) => {
                self.initializing.lock().remove(&key);
                persisted
            }
            Err(
                e @ (BrokerError::CoordinatorNotAvailable
                | BrokerError::NotCoordinator
                | BrokerError::CoordinatorLoadInProgress),
            ) => {
                let mut waiting = self.initializing.lock();
                let since = *waiting.entry(key).or_insert_with(std::time::Instant::now);
                if since.elapsed() < STATE_READ_PATIENCE {
                    tracing::debug!(group, topic = %topic, partition = partition.index, error = %e,
                        "share-partition state not readable yet; its fetches wait");
                    return Ok(None);
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let sp = match persisted {
            Some(persisted) if persisted.start_offset >= 0 => {
                SharePartition::from_persisted(&persisted)
            }
            // Never read, or its offsets deleted by an administrator: start afresh.
            other => {
                let log = partition.log();
                let earliest = self
                    .groups
                    .group_setting_str(group, "share.auto.offset.reset")
                    == "earliest";
                let start = if earliest {
                    log.log_start_offset()
                } else {
                    log.high_watermark()
                };
                SharePartition::new_in_epoch(start, other.map_or(0, |p| p.state_epoch))
            }
        };
        let mut all = self.partitions.lock();
        match all.get(&key) {
            // Built meanwhile by another request: that one is the share-partition.
            Some((e, existing)) if *e == epoch => Ok(Some(existing.clone())),
            _ => {
                let slot = Arc::new(ShareSlot::new(sp));
                all.insert(key, (epoch, slot.clone()));
                Ok(Some(slot))
            }
        }
    }

    /// The periodic pass over this broker's share-partitions: locks that ran out are released
    /// (records at the delivery limit archived, their dead letters written) and changes no
    /// acknowledgement wrote (acquisitions, expiries) are persisted, so delivery counts and
    /// what is held reach the stored state within a period even when nobody fetches.
    pub async fn persist_share_partitions(&self) {
        use std::sync::atomic::Ordering;
        let all: Vec<(SharePartitionKey, i32, SharedPartition)> = self
            .partitions
            .lock()
            .iter()
            .map(|(k, (epoch, slot))| (k.clone(), *epoch, slot.clone()))
            .collect();
        let now = crate::now_ms();
        for ((group, topic, index), epoch, slot) in all {
            // Only a share-partition this broker still leads, in the epoch it was built in.
            let Ok(partition) = self.replicas.local_leader(&topic, index, -1) else {
                continue;
            };
            if partition.leader_epoch() != epoch {
                continue;
            }
            let limits = self.share_limits(&group);
            let archived = {
                let mut s = slot.state.lock();
                if s.expire_locks(now, &limits) {
                    slot.changed();
                }
                s.take_archived()
            };
            let change = slot.changes.load(Ordering::SeqCst);
            if change <= slot.durable.load(Ordering::SeqCst) && archived.is_empty() {
                continue;
            }
            let stored = match self.state_key(&group, &topic, index) {
                Ok(key) => {
                    self.commit_change(&group, &partition, &key, &slot, change, archived)
                        .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = stored {
                tracing::debug!(group, topic = %topic, partition = index, error = %e, "could not persist a share-partition");
            }
        }
    }

    /// Drops this broker's copy of a share-partition; the next use reads its state again.
    pub(super) fn forget_share_partition(&self, group: &str, partition: &Partition) {
        self.partitions.lock().remove(&(
            group.to_string(),
            partition.topic.clone(),
            partition.index,
        ));
    }

    /// A member opening a share session may follow an administrator's change of the group's
    /// offsets (which needs the group empty): share-partitions built from an older state
    /// epoch are dropped, to be read again.
    pub(super) async fn refresh_share_partitions(
        &self,
        group: &str,
        partitions: &[ShareFetchPartition],
    ) {
        for p in partitions {
            let Some(slot) = self.existing_share_partition(group, &p.topic, p.partition) else {
                continue;
            };
            let Ok(key) = self.state_key(group, &p.topic, p.partition) else {
                continue;
            };
            let held = slot.state.lock().state_epoch();
            if let Ok(Some(persisted)) = self.coordinator.load_share_state(&key).await {
                if persisted.state_epoch > held {
                    if let Ok(partition) = self.replicas.local_leader(&p.topic, p.partition, -1) {
                        self.forget_share_partition(group, &partition);
                    }
                }
            }
        }
    }
}

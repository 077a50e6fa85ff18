//! What the group, transaction and share coordinators have in common, as Kafka's coordinator
//! runtime gives it them: an internal topic (`__consumer_offsets`, `__transaction_state`,
//! `__share_group_state`) whose partitions shard their state by key. The broker leading a
//! partition coordinates its keys: it loads the partition's state when it comes to lead it
//! (its keys answer COORDINATOR_LOAD_IN_PROGRESS meanwhile), drops it when it stops, and
//! writes through the partition as its leader. Which partition holds a key is each
//! coordinator's own rule; the rest is here, once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use sluice_cluster::BrokerInfo;
use sluice_log::batch::{self, BatchHeader};
use sluice_log::txn::{self, Marker};
use tracing::{info, warn};

use crate::admin::TopicAdmin;
use crate::error::{BrokerError, Result};
use crate::replica::partition::Partition;
use crate::replica::produce::PendingAppend;
use crate::replica::topic::Topic;
use crate::replica::ReplicaManager;

/// Kafka's placement of a coordinator key (group id, transactional id, share key) on its
/// internal topic: Java's `String.hashCode` of the key, made non-negative, modulo the
/// partition count.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    (h & 0x7fff_ffff) % partitions.max(1)
}

/// Waits until a coordinator's write (acks=all) is acknowledged, answering a replication
/// failure as Kafka's coordinators do: NOT_COORDINATOR when the leadership moved (the client
/// looks for the coordinator again), COORDINATOR_NOT_AVAILABLE when the in-sync replicas do
/// not take it in time (the client retries).
pub(crate) async fn written(pending: PendingAppend, timeout: Duration) -> Result<()> {
    match pending.wait(timeout).await {
        Ok(_) => Ok(()),
        Err(BrokerError::NotLeaderOrFollower { .. }) => Err(BrokerError::NotCoordinator),
        Err(
            BrokerError::NotEnoughReplicas { .. }
            | BrokerError::NotEnoughReplicasAfterAppend { .. }
            | BrokerError::RequestTimedOut(_),
        ) => Err(BrokerError::CoordinatorNotAvailable),
        Err(e) => Err(e),
    }
}

pub(crate) struct CoordinatedTopic {
    pub(crate) name: &'static str,
    node_id: i32,
    replicas: Arc<ReplicaManager>,
    admin: Arc<TopicAdmin>,
    /// The partitions this broker leads whose state is loaded. Held while leadership is
    /// followed, so one follower runs at a time.
    led: Mutex<BTreeSet<i32>>,
    /// The partitions being loaded.
    loading: RwLock<BTreeSet<i32>>,
}

impl CoordinatedTopic {
    pub(crate) fn new(
        name: &'static str,
        replicas: Arc<ReplicaManager>,
        admin: Arc<TopicAdmin>,
    ) -> CoordinatedTopic {
        CoordinatedTopic {
            name,
            node_id: replicas.config.node_id,
            replicas,
            admin,
            led: Mutex::new(BTreeSet::new()),
            loading: RwLock::new(BTreeSet::new()),
        }
    }

    /// The topic, created on first use with the broker's settings for it
    /// (COORDINATOR_NOT_AVAILABLE while another broker must create it).
    pub(crate) fn topic(&self) -> Result<Arc<Topic>> {
        self.admin.internal_topic(self.name)
    }

    /// The topic's partition count in the current image (None: not created yet).
    pub(crate) fn partition_count(&self) -> Option<i32> {
        Some(self.replicas.image().topic(self.name)?.partition_count())
    }

    /// The broker coordinating the keys of partition `index` (FindCoordinator): its live
    /// leader, or COORDINATOR_NOT_AVAILABLE.
    pub(crate) fn coordinator_at(&self, index: i32) -> Result<BrokerInfo> {
        self.replicas
            .image()
            .live_leader(self.name, index)
            .cloned()
            .ok_or(BrokerError::CoordinatorNotAvailable)
    }

    /// Ok when this broker coordinates partition `index`: it leads it and has loaded it.
    /// Otherwise COORDINATOR_LOAD_IN_PROGRESS (led here, not loaded yet), NOT_COORDINATOR
    /// (another live broker leads it) or COORDINATOR_NOT_AVAILABLE.
    pub(crate) fn check_at(&self, index: i32) -> Result<()> {
        let image = self.replicas.image();
        match image.topic(self.name).and_then(|t| t.partition(index)) {
            Some(p) if p.leader == self.node_id => {
                if self.loading.read().contains(&index) || !self.led.lock().contains(&index) {
                    return Err(BrokerError::CoordinatorLoadInProgress);
                }
                Ok(())
            }
            Some(p) if image.brokers.contains_key(&p.leader) => Err(BrokerError::NotCoordinator),
            _ => Err(BrokerError::CoordinatorNotAvailable),
        }
    }

    /// Whether partition `index` is led here and loaded.
    pub(crate) fn leads(&self, index: i32) -> bool {
        self.led.lock().contains(&index)
    }

    /// Partition `index`, if this broker leads it, to write the coordinator's records to;
    /// otherwise the coordinator's error (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE).
    pub(crate) fn partition_at(&self, index: i32) -> Result<Arc<Partition>> {
        self.replicas
            .local_leader(self.name, index, -1)
            .map_err(|e| match e {
                BrokerError::NotLeaderOrFollower { .. } => BrokerError::NotCoordinator,
                BrokerError::LeaderNotAvailable | BrokerError::UnknownTopicOrPartition => {
                    BrokerError::CoordinatorNotAvailable
                }
                e => e,
            })
    }

    /// Brings the coordinator's state in line with the partitions this broker leads in the
    /// applied image: `drop` is given the partitions no longer led (and the partition count
    /// to place keys by); each partition newly led is read with `load` and its state handed
    /// to `install`, which answers how many keys it holds. An error names a partition that
    /// could not be loaded; the others are.
    pub(crate) fn follow_leadership<T>(
        &self,
        what: &str,
        drop: impl FnOnce(&BTreeSet<i32>, i32),
        load: impl Fn(&Partition) -> Result<T>,
        mut install: impl FnMut(T) -> usize,
    ) -> Result<()> {
        // Held throughout: one follower at a time. Lock order: led, the coordinator's state,
        // loading.
        let mut led = self.led.lock();
        let image = self.replicas.image();
        let hosted = self.replicas.topic(self.name);
        let (now_led, count) = match (image.topic(self.name), &hosted) {
            (Some(meta), Some(hosted)) => {
                let here = (0..meta.partition_count())
                    .filter(|&i| {
                        meta.partition(i).is_some_and(|p| p.leader == self.node_id)
                            && hosted.partition(i).is_some()
                    })
                    .collect::<BTreeSet<i32>>();
                (here, meta.partition_count())
            }
            _ => (BTreeSet::new(), 0),
        };
        let lost: BTreeSet<i32> = led.difference(&now_led).copied().collect();
        let gained: Vec<i32> = now_led.difference(&led).copied().collect();
        if !lost.is_empty() {
            drop(&lost, count);
        }
        let Some(hosted) = hosted else {
            *led = now_led;
            return Ok(());
        };
        self.loading.write().extend(gained.iter().copied());
        let started = Instant::now();
        let mut failed = None;
        let mut keys = 0;
        for index in gained {
            let loaded = hosted
                .partition(index)
                .ok_or(BrokerError::CoordinatorNotAvailable)
                .and_then(|p| load(p));
            match loaded {
                Ok(state) => keys += install(state),
                Err(e) => {
                    warn!(topic = self.name, partition = index, error = %e, "could not load a coordinator partition");
                    failed = Some(BrokerError::Storage(format!("{}-{index}: {e}", self.name)));
                }
            }
            self.loading.write().remove(&index);
        }
        if keys > 0 {
            info!(
                keys,
                ms = started.elapsed().as_millis() as u64,
                "loaded {what}"
            );
        }
        *led = now_led;
        failed.map_or(Ok(()), Err)
    }
}

/// Calls `f(key, value)` for every record of a partition, in offset order (markers
/// skipped).
pub(crate) fn for_each_record(
    partition: &Partition,
    mut f: impl FnMut(&[u8], Option<&[u8]>),
) -> Result<()> {
    for_each_entry(partition, |entry| {
        if let Entry::Record { key, value, .. } = entry {
            f(key, value)
        }
    })
}

/// What `for_each_entry` reads: a keyed record with its batch's header, or a transaction
/// marker.
pub(crate) enum Entry<'a> {
    Record {
        header: &'a BatchHeader,
        key: &'a [u8],
        value: Option<&'a [u8]>,
    },
    Marker {
        header: &'a BatchHeader,
        marker: Marker,
    },
}

/// Calls `f` for every keyed record and every marker of a partition, in offset order.
pub(crate) fn for_each_entry(partition: &Partition, mut f: impl FnMut(Entry<'_>)) -> Result<()> {
    let mut offset = partition.offsets().log_start_offset;
    loop {
        // To the log end: a new leader's log is the truth, committed or not yet.
        let (slice, _) = partition.read(offset, 8 << 20, sluice_log::ReadBound::LogEnd)?;
        let Some(slice) = slice else { return Ok(()) };
        let bytes = slice.read_to_vec()?;
        let mut pos = 0;
        let mut progressed = false;
        while pos + batch::HEADER_SIZE <= bytes.len() {
            let header = BatchHeader::parse(&bytes[pos..]);
            let end = pos + header.size();
            if end > bytes.len() {
                break; // partial batch at the end of the read: read again from it
            }
            if header.is_control() {
                if let Some(marker) = txn::parse_marker(&bytes[pos..end]) {
                    f(Entry::Marker {
                        header: &header,
                        marker,
                    });
                }
            } else {
                for r in sluice_log::records::uncompressed_records(&bytes[pos..end])? {
                    if let Some(key) = r.key {
                        f(Entry::Record {
                            header: &header,
                            key,
                            value: r.value,
                        });
                    }
                }
            }
            offset = header.last_offset() + 1;
            progressed = true;
            pos = end;
        }
        if !progressed {
            return Err(BrokerError::CorruptMessage(format!(
                "{}-{}: unreadable batch at offset {offset}",
                partition.topic, partition.index
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_placed_like_kafka() {
        // "my-group".hashCode() is -1906497762 in Java; & 0x7fffffff gives 240985886, % 50 = 36.
        assert_eq!(partition_for("my-group", 50), 36);
        assert!((0..50).contains(&partition_for("\u{1F600}négatif", 50)));
    }
}

//! Ending a transaction in its partitions: the coordinator sends each partition's leader
//! a marker (WriteTxnMarkers; on this broker, a direct call), the leader appends it as a
//! control batch (acks=all), and once every partition has its marker the transaction is
//! complete. A marker on a `__consumer_offsets` partition also makes the offsets committed
//! in the transaction visible (or drops them).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use sluice_cluster::BrokerInfo;
use sluice_log::txn::{build_marker, Marker, MarkerKind};
use tracing::{debug, info};

use super::state::TxnState;
use super::TransactionCoordinator;
use crate::error::{BrokerError, Result};

/// How long a marker append waits for the partition's in-sync replicas.
const MARKER_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between rounds when some partition's marker could not be written.
const MARKER_RETRY: Duration = Duration::from_millis(100);

/// A marker to write: whose transaction, how it ended, and which coordinator says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// Per partition, whether its marker was written.
pub type PartitionResults = Vec<((String, i32), Result<()>)>;

/// What the transaction APIs need from other brokers (the Kafka front end provides it).
pub trait TxnRemote: Send + Sync {
    /// Sends markers to partitions `to` leads (WriteTxnMarkers).
    fn write_markers(
        &self,
        to: BrokerInfo,
        marker: TxnMarker,
        partitions: Vec<(String, i32)>,
    ) -> BoxFuture<'_, Result<PartitionResults>>;

    /// Asks the coordinator `to` to add a partition to a producer's open transaction, or
    /// with `verify_only` whether it is in it (AddPartitionsToTxn v5, the brokers' form).
    fn add_partition(
        &self,
        to: BrokerInfo,
        request: PartitionInTxn,
        verify_only: bool,
    ) -> BoxFuture<'_, Result<()>>;
}

/// A partition of a producer's transaction, as a partition leader asks about it.
#[derive(Debug, Clone)]
pub struct PartitionInTxn {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub topic: String,
    pub partition: i32,
}

impl TransactionCoordinator {
    /// WriteTxnMarkers on the leader: appends the marker to each partition (all queued at
    /// once, then awaited together).
    pub async fn write_txn_markers(
        &self,
        marker: TxnMarker,
        partitions: Vec<(String, i32)>,
    ) -> PartitionResults {
        let batch = bytes::Bytes::from(build_marker(
            marker.producer_id,
            marker.producer_epoch,
            Marker {
                kind: if marker.commit {
                    MarkerKind::Commit
                } else {
                    MarkerKind::Abort
                },
                coordinator_epoch: marker.coordinator_epoch,
            },
            crate::now_ms(),
        ));
        let queued: Vec<_> = partitions
            .into_iter()
            .map(|(topic, index)| {
                let pending = self
                    .replicas
                    .local_leader(&topic, index, -1)
                    .and_then(|p| self.replicas.append_trusted(&p, batch.clone()));
                ((topic, index), pending)
            })
            .collect();
        let waits = queued.into_iter().map(|(tp, pending)| async move {
            let result = match pending {
                Ok(p) => p.wait(MARKER_WRITE_TIMEOUT).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if result.is_ok() && tp.0 == crate::replica::topic::OFFSETS_TOPIC {
                self.groups
                    .complete_txn_offsets(tp.1, marker.producer_id, marker.commit);
            }
            (tp, result)
        });
        join_all(waits).await
    }
}

/// Guards a transactional id while one task writes its markers.
struct Completing<'a> {
    coordinator: &'a TransactionCoordinator,
    id: String,
}

impl Drop for Completing<'_> {
    fn drop(&mut self) {
        self.coordinator.completing.lock().remove(&self.id);
    }
}

impl TransactionCoordinator {
    fn claim(&self, transactional_id: &str) -> Option<Completing<'_>> {
        self.completing
            .lock()
            .insert(transactional_id.to_string())
            .then(|| Completing {
                coordinator: self,
                id: transactional_id.to_string(),
            })
    }

    /// Writes the markers of a prepared transaction (PrepareCommit or PrepareAbort) to
    /// every partition in it, retrying those that fail while this broker coordinates the
    /// id, then marks it complete. Returns at once if another task is at it.
    pub(crate) async fn complete(&self, transactional_id: &str) -> Result<()> {
        let Some(_guard) = self.claim(transactional_id) else {
            return Ok(());
        };
        let prepared = {
            let ids = self.ids.lock();
            match ids.get(transactional_id) {
                Some(m) if m.state.is_preparing() && !m.pending => m.clone(),
                _ => return Ok(()),
            }
        };
        let marker = TxnMarker {
            producer_id: prepared.producer_id,
            producer_epoch: prepared.producer_epoch,
            commit: prepared.state == TxnState::PrepareCommit,
            coordinator_epoch: self.coordinator_epoch(transactional_id)?,
        };
        let mut remaining: BTreeSet<(String, i32)> = prepared.partitions.clone();
        while !remaining.is_empty() {
            let results = self.send_markers(marker, &remaining).await;
            for ((topic, index), result) in results {
                // A deleted partition needs no marker.
                let done = match &result {
                    Ok(()) => true,
                    Err(BrokerError::UnknownTopicOrPartition) => {
                        self.replicas.image().topic(&topic).is_none()
                    }
                    Err(e) => {
                        debug!(transactional_id, topic, index, error = %e, "marker not written yet");
                        false
                    }
                };
                if done {
                    remaining.remove(&(topic, index));
                }
            }
            if remaining.is_empty() {
                break;
            }
            self.check_coordinator(transactional_id)?;
            tokio::time::sleep(MARKER_RETRY).await;
        }
        // The markers are durable: the transaction is decided everywhere. Its completion is
        // applied at once and written without waiting: lost in a crash, the state read back
        // is the prepared one, whose markers are written again.
        self.write_unawaited(transactional_id, |m| {
            (m.state == prepared.state && m.producer_epoch == prepared.producer_epoch)
                .then(|| m.complete(crate::now_ms()))
        })?;
        info!(
            transactional_id,
            producer_id = marker.producer_id,
            commit = marker.commit,
            partitions = prepared.partitions.len(),
            "transaction complete"
        );
        Ok(())
    }

    /// One round of markers: to this broker's partitions directly, to others' leaders by
    /// WriteTxnMarkers. Partitions without a live leader fail this round.
    async fn send_markers(
        &self,
        marker: TxnMarker,
        partitions: &BTreeSet<(String, i32)>,
    ) -> PartitionResults {
        let image = self.replicas.image();
        let me = self.config.node_id;
        let mut by_leader: BTreeMap<i32, (BrokerInfo, Vec<(String, i32)>)> = BTreeMap::new();
        let mut results = PartitionResults::new();
        for (topic, index) in partitions {
            if image.topic(topic).is_none() {
                results.push((
                    (topic.clone(), *index),
                    Err(BrokerError::UnknownTopicOrPartition),
                ));
                continue;
            }
            match image.live_leader(topic, *index) {
                Some(b) => by_leader
                    .entry(b.node_id)
                    .or_insert_with(|| (b.clone(), Vec::new()))
                    .1
                    .push((topic.clone(), *index)),
                None => results.push((
                    (topic.clone(), *index),
                    Err(BrokerError::LeaderNotAvailable),
                )),
            }
        }
        let remote = self.remote.get().cloned();
        let sends = by_leader.into_values().map(|(to, parts)| {
            let remote = remote.clone();
            async move {
                if to.node_id == me {
                    return self.write_txn_markers(marker, parts).await;
                }
                let Some(remote) = remote else {
                    return parts
                        .into_iter()
                        .map(|p| (p, Err(BrokerError::CoordinatorNotAvailable)))
                        .collect();
                };
                match remote.write_markers(to, marker, parts.clone()).await {
                    Ok(r) => r,
                    Err(e) => parts.into_iter().map(|p| (p, Err(e.clone()))).collect(),
                }
            }
        });
        for r in join_all(sends).await {
            results.extend(r);
        }
        results
    }
}

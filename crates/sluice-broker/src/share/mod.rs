//! Queues: share groups (KIP-932). Membership lives on the group coordinator
//! (group/share_members.rs); share sessions (`sessions.rs`) and share-partitions
//! (`registry.rs`, `partition.rs`) live on each partition's leader, in the
//! `SharePartitionManager`: ShareFetch acquires records for a member under a lock
//! with a deadline, ShareAcknowledge (or acknowledgements riding on ShareFetch) finishes or
//! releases them.

mod acknowledge;
mod admin;
pub(crate) mod coordinator;
mod dead_letters;
mod delays;
mod fetch;
mod partition;
mod registry;
mod sessions;
pub(crate) mod state;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_log::batch::BatchHeader;
use sluice_log::ReadBound;

use crate::error::{BrokerError, Result};
use crate::group::GroupCoordinator;
use crate::replica::partition::Partition;
use crate::replica::ReplicaManager;

pub use crate::group::share_members::{
    ShareAssignment, ShareGroup, ShareHeartbeat, ShareHeartbeatResult, ShareMember,
};
use acknowledge::PendingCommit;
pub use coordinator::{ShareCoordinator, ShareStateRemote};
pub use dead_letters::DEAD_LETTER_TOPIC_CONFIG;
pub use delays::{DELAY_MS_HEADER, DELIVER_AT_HEADER};
pub use partition::{
    AckType, Acquired, ArchiveReason, ArchivedRecord, Counts, Delays, Limits, SharePartition,
};
pub use registry::ShareSlot;
use sessions::Session;
pub use state::{coordinator_key, state_partition_for, PersistedState, StateBatch, StateKey};

/// A share session's epoch that opens it, and the one that closes it.
const OPEN: i32 = 0;
const CLOSE: i32 = -1;

/// The share-partition manager (Kafka's SharePartitionManager): on the leaders of the
/// partitions a share group reads, its members' share sessions, the share-partitions
/// (acquired and archived records, delivery counts) and ShareFetch / ShareAcknowledge.
pub struct SharePartitionManager {
    replicas: Arc<ReplicaManager>,
    /// Share groups' membership and settings.
    groups: Arc<GroupCoordinator>,
    /// Where share-partitions' state is made durable.
    coordinator: Arc<ShareCoordinator>,
    sessions: Mutex<HashMap<(String, String), Session>>,
    /// Each with the leader epoch it was built in: a leader that lost and regained a
    /// partition reads its state again (others changed it meanwhile).
    partitions: Mutex<HashMap<SharePartitionKey, (i32, SharedPartition)>>,
    /// Share-partitions whose state could not be read yet because their share coordinator
    /// is not ready, and since when (see `STATE_READ_PATIENCE`).
    initializing: Mutex<HashMap<SharePartitionKey, std::time::Instant>>,
}

impl SharePartitionManager {
    pub(crate) fn new(
        replicas: Arc<ReplicaManager>,
        groups: Arc<GroupCoordinator>,
        coordinator: Arc<ShareCoordinator>,
    ) -> SharePartitionManager {
        SharePartitionManager {
            replicas,
            groups,
            coordinator,
            sessions: Mutex::new(HashMap::new()),
            partitions: Mutex::new(HashMap::new()),
            initializing: Mutex::new(HashMap::new()),
        }
    }
}

/// (group, topic, partition).
type SharePartitionKey = (String, Arc<str>, i32);
type SharedPartition = Arc<ShareSlot>;

/// How a share fetch acquires records (ShareFetch v2's ShareAcquireMode, KIP-1206).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireMode {
    /// Whole batches, so `max_records` may be passed by the rest of the last one.
    BatchOptimized,
    /// Never more than `max_records`.
    RecordLimit,
    /// Only the acknowledgements (renewals) the request carries; nothing is acquired.
    RenewOnly,
}

impl AcquireMode {
    pub fn from_code(code: i8) -> Option<AcquireMode> {
        match code as u8 {
            0 => Some(AcquireMode::BatchOptimized),
            1 => Some(AcquireMode::RecordLimit),
            255 => Some(AcquireMode::RenewOnly),
            _ => None,
        }
    }
}

/// One acknowledgement range of a request.
#[derive(Debug, Clone)]
pub struct AckBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub types: Vec<i8>,
}

#[derive(Debug, Clone)]
pub struct ShareFetchPartition {
    pub topic: Arc<str>,
    pub partition: i32,
    pub acks: Vec<AckBatch>,
}

#[derive(Debug, Clone)]
pub struct ShareFetchRequest {
    pub group_id: String,
    pub member_id: String,
    pub session_epoch: i32,
    pub max_wait: Duration,
    pub max_bytes: usize,
    pub max_records: usize,
    pub acquire_mode: AcquireMode,
    /// Partitions added to the session or acknowledged in this request.
    pub partitions: Vec<ShareFetchPartition>,
    pub forgotten: Vec<(Arc<str>, i32)>,
}

#[derive(Debug, Default)]
pub struct ShareFetchedPartition {
    pub topic: Arc<str>,
    pub partition: i32,
    pub error: Option<BrokerError>,
    /// The outcome of the acknowledgements sent for this partition, if any were.
    pub ack_error: Option<BrokerError>,
    pub records: Option<ShareRecords>,
    pub acquired: Vec<Acquired>,
}

/// The whole batches holding a share fetch's records, as ranges of the log's files (sent
/// with sendfile, as Fetch sends).
#[derive(Debug, Default)]
pub struct ShareRecords {
    pub slices: Vec<sluice_log::ReadSlice>,
    /// Their bytes.
    pub len: usize,
}

impl ShareRecords {
    /// The bytes, read (for tests and tools; share fetches send the ranges).
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len);
        for s in &self.slices {
            s.read_append(&mut out)?;
        }
        Ok(out)
    }
}

pub struct ShareFetchResult {
    pub lock_duration_ms: i64,
    pub partitions: Vec<ShareFetchedPartition>,
}

impl SharePartitionManager {
    /// The settings a share group's partitions follow (group configs over the defaults).
    pub fn share_limits(&self, group: &str) -> Limits {
        let g = &self.groups;
        Limits {
            lock_duration_ms: g.group_setting_for(group, "share.record.lock.duration.ms"),
            delivery_count_limit: g
                .group_setting_for(group, "share.delivery.count.limit")
                .clamp(1, i16::MAX as i64) as i16,
            max_in_flight: g
                .group_setting_for(group, "share.partition.max.record.locks")
                .max(1) as usize,
        }
    }

    pub fn state_key(&self, group: &str, topic: &str, partition: i32) -> Result<state::StateKey> {
        let id = self
            .replicas
            .topic(topic)
            .ok_or(BrokerError::UnknownTopicOrPartition)?
            .id;
        Ok((group.to_string(), id, partition))
    }
}

//! Queues: share groups (KIP-932). Membership lives on the group coordinator
//! (`membership.rs`); share sessions and share-partitions live on each partition's leader
//! (this module and `partition.rs`): ShareFetch acquires records for a member under a lock
//! with a deadline, ShareAcknowledge (or acknowledgements riding on ShareFetch) finishes or
//! releases them.

mod admin;
pub(crate) mod coordinator;
mod dead_letters;
mod delays;
mod partition;
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
pub use coordinator::{ShareCoordinator, ShareStateRemote};
pub use dead_letters::DEAD_LETTER_TOPIC_CONFIG;
pub use delays::{DELAY_MS_HEADER, DELIVER_AT_HEADER};
pub use partition::{
    AckType, Acquired, ArchiveReason, ArchivedRecord, Counts, Delays, Limits, SharePartition,
};
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

/// A share-partition, and the gate its state writes pass one at a time (so they reach the
/// share coordinator in the order they were taken).
pub struct ShareSlot {
    state: Mutex<SharePartition>,
    /// Bumped with every change, for share fetches waiting for records to free up.
    signal: tokio::sync::watch::Sender<u64>,
    /// Changes made to `state` that must become durable, counted under its lock.
    changes: std::sync::atomic::AtomicU64,
    /// How many of them a write has made durable.
    durable: std::sync::atomic::AtomicU64,
    writes: tokio::sync::Mutex<()>,
}

impl ShareSlot {
    fn new(sp: SharePartition) -> ShareSlot {
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
    fn changed(&self) -> u64 {
        let n = self.changed_quietly();
        self.notify();
        n
    }

    /// Numbers a change without waking anyone yet: a member whose acknowledgements freed
    /// room gets the first pick of what it freed, then `notify` wakes the others.
    fn changed_quietly(&self) -> u64 {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    fn notify(&self) {
        self.signal
            .send_replace(self.changes.load(std::sync::atomic::Ordering::SeqCst));
    }
}

/// How long a share-partition waits for its share coordinator (the state topic being
/// created, its leader moving or loading) before its fetches get the error: Kafka's persister
/// retries as long (five lookups, backing off from 1 s). Meanwhile the partition is still
/// initializing, and a fetch gets nothing from it rather than an error, which librdkafka
/// does not expect there and hands to the application.
const STATE_READ_PATIENCE: Duration = Duration::from_secs(15);

/// How often a waiting share fetch looks again without being woken (lock expiries and
/// delivery times are not events).
const WAIT_TICK: Duration = Duration::from_millis(100);

/// What a waiting share fetch wakes on: its partitions' high watermarks (new records) and
/// their share-partitions' changes (records released, acknowledged, archived).
#[derive(Default)]
struct Wakers {
    high_watermarks: Vec<tokio::sync::watch::Receiver<i64>>,
    changes: Vec<tokio::sync::watch::Receiver<u64>>,
}

impl Wakers {
    fn is_empty(&self) -> bool {
        self.high_watermarks.is_empty() && self.changes.is_empty()
    }

    fn mark_seen(&mut self) {
        for w in &mut self.high_watermarks {
            w.borrow_and_update();
        }
        for w in &mut self.changes {
            w.borrow_and_update();
        }
    }

    async fn wait_until(&mut self, until: tokio::time::Instant) {
        type Wait<'a> = futures::future::BoxFuture<'a, bool>;
        let waits: Vec<Wait<'_>> = self
            .high_watermarks
            .iter_mut()
            .map(|w| Box::pin(async move { w.changed().await.is_ok() }) as Wait<'_>)
            .chain(
                self.changes
                    .iter_mut()
                    .map(|w| Box::pin(async move { w.changed().await.is_ok() }) as Wait<'_>),
            )
            .collect();
        if waits.is_empty() {
            tokio::time::sleep_until(until).await;
            return;
        }
        let _ = tokio::time::timeout_at(until, futures::future::select_all(waits)).await;
    }
}

/// (group, topic, partition).
type SharePartitionKey = (String, Arc<str>, i32);
type SharedPartition = Arc<ShareSlot>;

/// A member's share session with this broker: the partitions it fetches here.
struct Session {
    /// The epoch the member's next request must carry.
    next_epoch: i32,
    partitions: BTreeSet<(Arc<str>, i32)>,
    last_used: std::time::Instant,
}

/// Share sessions a broker keeps (Kafka's `group.share.max.share.sessions` default); past it
/// a new one is refused with SHARE_SESSION_LIMIT_REACHED, once idle ones are dropped.
const MAX_SHARE_SESSIONS: usize = 2000;
/// A session unused this long is dropped when room is needed (its member is gone; what it
/// held comes back when the locks run out). Members fetch every few hundred ms.
const IDLE_SESSION: Duration = Duration::from_secs(120);

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

/// A change to a share-partition, applied in memory, to be made durable.
struct PendingCommit {
    group: String,
    partition: Arc<Partition>,
    key: state::StateKey,
    slot: SharedPartition,
    change: u64,
    archived: Vec<ArchivedRecord>,
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

    /// ShareFetch: checks the share session, applies the acknowledgements that ride on the
    /// request, then acquires records for the member from the session's partitions, waiting
    /// up to `max_wait` for some.
    pub async fn share_fetch(&self, req: ShareFetchRequest) -> Result<ShareFetchResult> {
        let limits = self.share_limits(&req.group_id);
        let has_acks = req.partitions.iter().any(|p| !p.acks.is_empty());
        if req.session_epoch == OPEN && has_acks {
            return Err(BrokerError::InvalidRequest(
                "a share session cannot open with acknowledgements".into(),
            ));
        }
        let (session_partitions, released) = self.advance_session(&req)?;
        if req.session_epoch == OPEN {
            self.refresh_share_partitions(&req.group_id, &req.partitions)
                .await;
        }
        let member: Arc<str> = Arc::from(req.member_id.as_str());
        let mut out: Vec<ShareFetchedPartition> = Vec::new();
        let mut commits: Vec<(usize, PendingCommit)> = Vec::new();
        for p in &req.partitions {
            let mut entry = ShareFetchedPartition {
                topic: p.topic.clone(),
                partition: p.partition,
                ..Default::default()
            };
            if !p.acks.is_empty() {
                match self.apply_acks(&req.group_id, &member, p, &limits) {
                    Ok((refused, commit)) => {
                        entry.ack_error = refused;
                        commits.extend(commit.map(|c| (out.len(), c)));
                    }
                    Err(e) => entry.ack_error = Some(e),
                }
            }
            out.push(entry);
        }
        // Acknowledged first: what a closing member acknowledges is not released.
        let releases = self.release_in_memory(&req.group_id, &req.member_id, released, &limits);
        // The acknowledgements become durable while records are acquired; the answer waits
        // for both.
        let quiet: Vec<SharedPartition> = commits.iter().map(|(_, c)| c.slot.clone()).collect();
        let durable = async {
            let mut failed = Vec::new();
            for (at, commit) in commits {
                if let Err(e) = self.commit(commit).await {
                    failed.push((at, e));
                }
            }
            self.commit_releases(&req.group_id, releases).await;
            failed
        };
        let failed = if req.session_epoch == CLOSE || req.acquire_mode == AcquireMode::RenewOnly {
            for slot in quiet {
                slot.notify();
            }
            durable.await
        } else {
            let acquire = async {
                let acquired = self
                    .acquire_records(&req, &member, &limits, &session_partitions, has_acks)
                    .await;
                for slot in quiet {
                    slot.notify();
                }
                acquired
            };
            let (failed, acquired) = tokio::join!(durable, acquire);
            for fetched in acquired {
                match out
                    .iter_mut()
                    .find(|e| e.topic == fetched.topic && e.partition == fetched.partition)
                {
                    Some(e) => {
                        e.error = fetched.error;
                        e.records = fetched.records;
                        e.acquired = fetched.acquired;
                    }
                    None => out.push(fetched),
                }
            }
            failed
        };
        for (at, e) in failed {
            out[at].ack_error = Some(e);
        }
        Ok(ShareFetchResult {
            lock_duration_ms: limits.lock_duration_ms,
            partitions: out,
        })
    }

    /// Acquires records for `member` from its session's partitions, waiting up to the
    /// request's max_wait for some (not at all when the request carried acknowledgements:
    /// it answers them now). Returns the partitions with records or an error.
    async fn acquire_records(
        &self,
        req: &ShareFetchRequest,
        member: &Arc<str>,
        limits: &Limits,
        session_partitions: &[(Arc<str>, i32)],
        has_acks: bool,
    ) -> Vec<ShareFetchedPartition> {
        let deadline = tokio::time::Instant::now() + req.max_wait;
        let mut wakers = Wakers::default();
        loop {
            wakers.mark_seen();
            let mut budget = req.max_records.max(1);
            let mut bytes = req.max_bytes.max(1);
            let mut out = Vec::new();
            for (topic, index) in session_partitions {
                if budget == 0 || bytes == 0 {
                    break;
                }
                let mut entry = ShareFetchedPartition {
                    topic: topic.clone(),
                    partition: *index,
                    ..Default::default()
                };
                match self
                    .acquire_for(
                        &req.group_id,
                        member,
                        topic,
                        *index,
                        budget,
                        bytes,
                        limits,
                        req.acquire_mode,
                    )
                    .await
                {
                    Ok(Some((records, acquired))) => {
                        let count: i64 = acquired
                            .iter()
                            .map(|a| a.last_offset - a.first_offset + 1)
                            .sum();
                        budget = budget.saturating_sub(count as usize);
                        bytes = bytes.saturating_sub(records.len);
                        if let Ok(p) = self.replicas.local_leader(topic, *index, -1) {
                            p.traffic.sent(count as u64, records.len);
                        }
                        entry.records = Some(records);
                        entry.acquired = acquired;
                    }
                    Ok(None) => continue,
                    Err(e) => entry.error = Some(e),
                }
                out.push(entry);
            }
            // A fetch that carried acknowledgements answers them now rather than after a
            // wait for records (max_wait is a bound, not a promise): the member learns at
            // once that its acknowledgements are durable.
            if !out.is_empty() || has_acks || tokio::time::Instant::now() >= deadline {
                return out;
            }
            // New records and other members' acknowledgements and releases wake the wait;
            // lock expiries and delivery times come due on the tick.
            if wakers.is_empty() {
                wakers = self.wakers_for(&req.group_id, session_partitions);
            }
            let tick = tokio::time::Instant::now() + WAIT_TICK;
            wakers.wait_until(tick.min(deadline)).await;
        }
    }

    /// Wakers for a share fetch waiting on `partitions` (those led here).
    fn wakers_for(&self, group: &str, partitions: &[(Arc<str>, i32)]) -> Wakers {
        let mut w = Wakers::default();
        for (topic, index) in partitions {
            if let Ok(p) = self.replicas.local_leader(topic, *index, -1) {
                w.high_watermarks
                    .push(p.subscribe_to(ReadBound::HighWatermark));
            }
            if let Some(slot) = self.existing_share_partition(group, topic, *index) {
                w.changes.push(slot.signal.subscribe());
            }
        }
        w
    }

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
    async fn acknowledge_durably(
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
    fn apply_acks(
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
    async fn commit(&self, c: PendingCommit) -> Result<()> {
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

    async fn commit_change(
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
    async fn release_for(
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
    fn release_in_memory(
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
    async fn commit_releases(&self, group: &str, releases: Vec<Result<PendingCommit>>) {
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

    /// Checks and moves the member's share session on: opens it (epoch 0), closes it (-1)
    /// or checks the epoch and adds and forgets partitions. Returns the session's partitions,
    /// and those it left, where the caller releases what the member holds once it has
    /// applied the request's acknowledgements.
    #[allow(clippy::type_complexity)]
    fn advance_session(
        &self,
        req: &ShareFetchRequest,
    ) -> Result<(Vec<(Arc<str>, i32)>, Vec<(Arc<str>, i32)>)> {
        let key = (req.group_id.clone(), req.member_id.clone());
        let mut sessions = self.sessions.lock();
        let released: Vec<(Arc<str>, i32)>;
        let partitions;
        match req.session_epoch {
            OPEN => {
                // A new session replaces an old one; what the old one held goes back.
                released = sessions
                    .remove(&key)
                    .map(|s| s.partitions.into_iter().collect())
                    .unwrap_or_default();
                if sessions.len() >= MAX_SHARE_SESSIONS {
                    sessions.retain(|_, s| s.last_used.elapsed() < IDLE_SESSION);
                    if sessions.len() >= MAX_SHARE_SESSIONS {
                        return Err(BrokerError::ShareSessionLimitReached);
                    }
                }
                let mut s = Session {
                    next_epoch: 1,
                    partitions: BTreeSet::new(),
                    last_used: std::time::Instant::now(),
                };
                for p in &req.partitions {
                    s.partitions.insert((p.topic.clone(), p.partition));
                }
                partitions = s.partitions.iter().cloned().collect();
                sessions.insert(key, s);
            }
            CLOSE => {
                let s = sessions
                    .remove(&key)
                    .ok_or(BrokerError::ShareSessionNotFound)?;
                released = s.partitions.into_iter().collect();
                partitions = Vec::new();
            }
            epoch => {
                let s = sessions
                    .get_mut(&key)
                    .ok_or(BrokerError::ShareSessionNotFound)?;
                if epoch != s.next_epoch {
                    return Err(BrokerError::InvalidShareSessionEpoch(format!(
                        "share session epoch {epoch}, expected {}",
                        s.next_epoch
                    )));
                }
                s.last_used = std::time::Instant::now();
                s.next_epoch = if s.next_epoch == i32::MAX {
                    1
                } else {
                    s.next_epoch + 1
                };
                for p in &req.partitions {
                    s.partitions.insert((p.topic.clone(), p.partition));
                }
                let mut gone = Vec::new();
                for f in &req.forgotten {
                    if s.partitions.remove(f) {
                        gone.push(f.clone());
                    }
                }
                released = gone;
                partitions = s.partitions.iter().cloned().collect();
            }
        }
        Ok((partitions, released))
    }

    fn existing_share_partition(
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
    async fn share_partition(
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
    fn forget_share_partition(&self, group: &str, partition: &Partition) {
        self.partitions.lock().remove(&(
            group.to_string(),
            partition.topic.clone(),
            partition.index,
        ));
    }

    /// A member opening a share session may follow an administrator's change of the group's
    /// offsets (which needs the group empty): share-partitions built from an older state
    /// epoch are dropped, to be read again.
    async fn refresh_share_partitions(&self, group: &str, partitions: &[ShareFetchPartition]) {
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

    pub fn state_key(&self, group: &str, topic: &str, partition: i32) -> Result<state::StateKey> {
        let id = self
            .replicas
            .topic(topic)
            .ok_or(BrokerError::UnknownTopicOrPartition)?
            .id;
        Ok((group.to_string(), id, partition))
    }

    /// Acquires records of one partition for `member`: redeliveries first, else new
    /// records at the window's end. Returns the whole batches holding them and the runs.
    #[allow(clippy::too_many_arguments)]
    async fn acquire_for(
        &self,
        group: &str,
        member: &Arc<str>,
        topic: &Arc<str>,
        index: i32,
        max_records: usize,
        max_bytes: usize,
        limits: &Limits,
        mode: AcquireMode,
    ) -> Result<Option<(ShareRecords, Vec<Acquired>)>> {
        let partition = self.replicas.local_leader(topic, index, -1)?;
        let Some(slot) = self.share_partition(group, topic, &partition).await? else {
            return Ok(None);
        };
        let sp = &slot.state;
        let now = crate::now_ms();
        let (available, end, room, archived) = {
            let mut s = sp.lock();
            // Expired locks raised delivery counts: a change to persist.
            if s.expire_locks(now, limits) {
                slot.changed_quietly();
            }
            let archived = s.take_archived();
            if !archived.is_empty() {
                slot.changed();
            }
            (
                s.first_available(now),
                s.end_offset(),
                s.room(limits),
                archived,
            )
        };
        if !archived.is_empty() {
            // Locks ran out at the delivery limit: those records are dead letters now.
            let key = self.state_key(group, topic, index)?;
            let change = slot.changes.load(std::sync::atomic::Ordering::SeqCst);
            self.commit_change(group, &partition, &key, &slot, change, archived)
                .await?;
        }
        let from = match available {
            Some(offset) => offset,
            None if room > 0 => end,
            None => return Ok(None),
        };
        // New records go in whole batches (a batch is sent whole anyway), so the in-flight
        // bound may be passed by the rest of the last batch.
        let wanted = match available {
            Some(_) => max_records,
            None => max_records.min(room),
        };
        let Some((records, last, delays)) =
            read_whole_batches(&partition, from, max_bytes, wanted, now)?
        else {
            return Ok(None);
        };
        // Record-limit mode acquires no more than asked; the batches still go whole (the
        // member skips records it did not acquire).
        let last = match mode {
            AcquireMode::RecordLimit => last.min(from + wanted as i64 - 1),
            _ => last,
        };
        let acquired = {
            let mut s = sp.lock();
            let acquired = match available {
                Some(offset) => {
                    s.acquire_available(member, offset, last, max_records, now, limits, &delays)
                }
                None => s.acquire_new(member, end, last, now, limits, &delays),
            };
            // Persisted by the next write (an acknowledgement's, or the periodic one), so
            // raised delivery counts and what is held show in the stored state.
            if !acquired.is_empty() {
                slot.changed_quietly();
            }
            acquired
        };
        Ok((!acquired.is_empty()).then_some((records, acquired)))
    }
}

/// Bytes of the log looked at at once while gathering a share fetch's batches.
const READ_CHUNK: usize = 256 * 1024;

/// Whole batches from the one holding `from`, up to `max_bytes` (at least one batch) and
/// stopping once `max_records` offsets from `from` are covered: their file ranges (sent by
/// sendfile, unread), the last offset they hold, and the delivery times of the records that
/// must wait past `now_ms`. Only batch headers are read, and the batches that may carry
/// Sluice's own headers (`HeaderMarks`). None when there is nothing at `from` yet.
fn read_whole_batches(
    partition: &Partition,
    from: i64,
    max_bytes: usize,
    max_records: usize,
    now_ms: i64,
) -> Result<Option<(ShareRecords, i64, Delays)>> {
    use sluice_log::batch::HEADER_SIZE;
    use std::os::unix::fs::FileExt;
    let storage = |e: std::io::Error| BrokerError::Storage(e.to_string());
    let mut records = ShareRecords::default();
    let mut delays = Delays::new();
    let mut last = -1;
    let mut next = from;
    let mut header = [0u8; HEADER_SIZE];
    while last - from + 1 < max_records as i64 && records.len < max_bytes {
        let chunk = READ_CHUNK.min(max_bytes - records.len);
        let slice = partition
            .log()
            .read_bounded(next, chunk, ReadBound::HighWatermark)?;
        let Some(slice) = slice else {
            break;
        };
        let end = slice.position + slice.len as u64;
        let mut pos = slice.position;
        while pos + HEADER_SIZE as u64 <= end {
            slice
                .file
                .read_exact_at(&mut header, pos)
                .map_err(storage)?;
            let h = BatchHeader::parse(&header);
            let size = h.size() as u64;
            if size < HEADER_SIZE as u64 || pos + size > end {
                break;
            }
            if partition.header_marks.may_hold(h.base_offset) {
                let mut batch = vec![0u8; size as usize];
                slice.file.read_exact_at(&mut batch, pos).map_err(storage)?;
                delays.extend(delays::delays_in(&batch, now_ms));
            }
            pos += size;
            last = h.last_offset();
            if last - from + 1 >= max_records as i64 {
                break;
            }
        }
        let whole = (pos - slice.position) as usize;
        if whole == 0 {
            break;
        }
        records.len += whole;
        records.slices.push(sluice_log::ReadSlice {
            file: slice.file.clone(),
            position: slice.position,
            len: whole,
            whole_through: Some(last),
        });
        next = last + 1;
    }
    if last < from {
        return Ok(None);
    }
    Ok(Some((records, last, delays)))
}

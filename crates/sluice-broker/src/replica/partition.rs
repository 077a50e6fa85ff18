//! One partition: its log behind a mutex, and a watch channel that wakes long-polling fetches.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_log::{Log, LogPosition, ReadBound, ReadSlice};
use tokio::sync::watch;

use crate::config::FlushPolicy;
use crate::error::Result;

pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    /// Held for in-memory work: appends are planned and committed under it but written
    /// without it (appender.rs), and data fsyncs and record reads happen outside it. Small
    /// metadata I/O stays under it where it must be ordered with appends: batch-header reads
    /// of a lookup, a roll's directory fsync, DeleteRecords' `log-start-offset` write.
    log: Mutex<Log>,
    flush_policy: Mutex<FlushPolicy>,
    /// Offsets appended since the last flush was requested (relaxed flush policy only).
    unflushed_messages: AtomicU64,
    /// Last time a flush of this partition was requested, in ms since the Unix epoch.
    last_flush_ms: AtomicU64,
    high_watermark: watch::Sender<i64>,
    /// The log end, for followers' fetches waiting at it (they read past the high watermark).
    log_end: watch::Sender<i64>,
    /// The leader epoch this replica was last told (stamped on the batches it appends).
    leader_epoch: AtomicI32,
    /// The leader epoch this replica follows in (-1 while it leads or has not been placed):
    /// set before a new leader's epoch is recorded in the log, and checked under the log's
    /// lock by every follower write, so a fetch that was in flight when this replica became
    /// leader cannot write into its log.
    followed_epoch: AtomicI32,
    /// `min.insync.replicas` of the topic.
    min_insync_replicas: AtomicUsize,
    /// Taken before `log` when both are needed.
    replication: Mutex<Replication>,
    /// Which records may carry Sluice's own headers (for share fetches).
    pub(crate) header_marks: crate::replica::header_marks::HeaderMarks,
    /// Records and bytes in and out, for `/metrics`.
    pub traffic: crate::metrics::PartitionTraffic,
}

/// This replica's place in replication: set from the metadata image and, while it leads, fed
/// by its followers' fetches. The high watermark is the smallest log end over the in-sync
/// replicas (this one's own counted where it is ready: durable per its flush policy).
#[derive(Debug, Default)]
struct Replication {
    me: i32,
    leading: bool,
    /// The in-sync replicas as the image has them.
    isr: Vec<i32>,
    partition_epoch: i32,
    /// An ISR sent to the controller and not yet in the image. While it is in flight the high
    /// watermark waits for the members of both (Kafka's "maximal ISR"): a follower being added
    /// counts at once, one being removed still counts until the change is committed.
    proposed: Option<Vec<i32>>,
    followers: BTreeMap<i32, FollowerState>,
    /// Where this replica's own log is ready: flushed, or written under a relaxed policy.
    local_end: Option<LogPosition>,
    /// While following: the leader's high watermark as its last fetch response said (-1
    /// before the first), which bounds this replica's own.
    leader_high_watermark: i64,
}

/// What a leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// Where the follower's log ends, as its last fetch said (-1 before its first fetch).
    pub log_end_offset: i64,
    /// When that fetch was (ms since the Unix epoch).
    pub fetched_ms: i64,
    /// The last time the follower had everything the leader had (Kafka's
    /// lastCaughtUpTimeMs): the ISR drops it once this is `replica.lag.time.max.ms` old.
    pub caught_up_ms: i64,
    /// The leader's log end at the follower's previous fetch.
    leader_end_at_fetch: i64,
}

/// An ISR change a leader asks the controller for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// The partition's place in the cluster, as the metadata image says.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    pub me: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: &'a [i32],
    pub isr: &'a [i32],
}

/// What a fetch needs to know about a partition besides its data.
#[derive(Debug, Clone, Copy)]
pub struct PartitionOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// The high watermark, or the first offset of an earlier undecided transaction.
    pub last_stable_offset: i64,
    pub log_end_offset: i64,
}

impl PartitionOffsets {
    fn of(log: &Log) -> PartitionOffsets {
        PartitionOffsets {
            log_start_offset: log.log_start_offset(),
            high_watermark: log.high_watermark(),
            last_stable_offset: log.last_stable().offset,
            log_end_offset: log.log_end_offset(),
        }
    }
}

impl Partition {
    /// A replica of an opened log. Its high watermark starts at the log start: what is
    /// committed is not known until its place is (`set_placement`). A leader alone in its
    /// ISR (a single node) moves it to its log end at once; one with followers only as they
    /// report, so a restarted leader never takes its unreplicated tail for committed (nor
    /// acknowledges a producer's retry of it); a follower takes its leader's.
    pub fn new(topic: Arc<str>, index: i32, mut log: Log, flush_policy: FlushPolicy) -> Partition {
        if let Ok(Some(start)) = log.position_at_or_below(log.log_start_offset()) {
            log.set_high_watermark(start);
        }
        let hw = log.high_watermark();
        let ready = log.end();
        Partition {
            topic,
            index,
            log: Mutex::new(log),
            flush_policy: Mutex::new(flush_policy),
            unflushed_messages: AtomicU64::new(0),
            last_flush_ms: AtomicU64::new(crate::now_ms() as u64),
            high_watermark: watch::channel(hw).0,
            log_end: watch::channel(ready.offset).0,
            leader_epoch: AtomicI32::new(0),
            followed_epoch: AtomicI32::new(-1),
            min_insync_replicas: AtomicUsize::new(1),
            replication: Mutex::new(Replication {
                local_end: Some(ready),
                leader_high_watermark: -1,
                ..Replication::default()
            }),
            header_marks: crate::replica::header_marks::HeaderMarks::new(ready.offset),
            traffic: Default::default(),
        }
    }

    pub fn log(&self) -> parking_lot::MutexGuard<'_, Log> {
        self.log.lock()
    }

    /// The log, for a follower's write on behalf of its leader in `leader_epoch`; None once
    /// this replica no longer follows in that epoch (what was fetched then is stale).
    pub fn log_as_follower(&self, leader_epoch: i32) -> Option<parking_lot::MutexGuard<'_, Log>> {
        let log = self.log.lock();
        (leader_epoch >= 0 && self.followed_epoch.load(Ordering::SeqCst) == leader_epoch)
            .then_some(log)
    }

    /// Takes the partition's place from the image. A new leadership (or epoch) starts the
    /// followers afresh, the in-sync ones counted as caught up now (as Kafka does); a new
    /// partition epoch settles any ISR change in flight. Wakes acknowledgements waiting on
    /// the high watermark so they see a lost leadership.
    pub fn set_placement(&self, placement: &Placement<'_>, now_ms: i64) {
        let mut state = self.replication.lock();
        let leading = placement.leader == placement.me;
        let new_term = leading != state.leading || placement.leader_epoch != self.leader_epoch();
        state.me = placement.me;
        state.leading = leading;
        self.leader_epoch
            .store(placement.leader_epoch, Ordering::Relaxed);
        let followed = if leading { -1 } else { placement.leader_epoch };
        self.followed_epoch.store(followed, Ordering::SeqCst);
        if placement.partition_epoch != state.partition_epoch || new_term {
            state.proposed = None;
        }
        state.partition_epoch = placement.partition_epoch;
        state.isr = placement.isr.to_vec();
        if new_term {
            state.followers.clear();
            if leading {
                let mut log = self.log.lock();
                // What it replicated as a follower was not validated here.
                self.header_marks.cover_log(log.end().offset);
                if let Err(e) = log.begin_leader_epoch(placement.leader_epoch) {
                    tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "could not record the new leader epoch");
                }
            }
        }
        state
            .followers
            .retain(|r, _| placement.replicas.contains(r));
        if leading {
            for &r in placement.replicas.iter().filter(|&&r| r != placement.me) {
                let in_sync = placement.isr.contains(&r);
                state.followers.entry(r).or_insert(FollowerState {
                    log_end_offset: -1,
                    fetched_ms: now_ms,
                    caught_up_ms: if in_sync { now_ms } else { 0 },
                    leader_end_at_fetch: -1,
                });
            }
        }
        self.advance_high_watermark(&state);
        self.high_watermark.send_modify(|_| {});
    }

    /// Notes a follower's fetch from `offset` (its log end): it is caught up if that reaches
    /// the leader's log end now, or the leader's log end at its previous fetch (then it was
    /// caught up at that fetch). May advance the high watermark. True if the follower is out
    /// of the ISR and has caught up with the high watermark: time to add it.
    pub fn note_follower_fetch(&self, follower: i32, offset: i64, now_ms: i64) -> bool {
        let mut state = self.replication.lock();
        if !state.leading {
            return false;
        }
        let leader_end = self.log.lock().log_end_offset();
        let Some(f) = state.followers.get_mut(&follower) else {
            return false;
        };
        if offset >= leader_end {
            f.caught_up_ms = now_ms;
        } else if f.leader_end_at_fetch >= 0 && offset >= f.leader_end_at_fetch {
            f.caught_up_ms = f.caught_up_ms.max(f.fetched_ms);
        }
        f.log_end_offset = offset;
        f.fetched_ms = now_ms;
        f.leader_end_at_fetch = leader_end;
        self.advance_high_watermark(&state);
        let in_isr = state.isr.contains(&follower)
            || state
                .proposed
                .as_ref()
                .is_some_and(|p| p.contains(&follower));
        !in_isr && state.proposed.is_none() && offset >= self.log.lock().high_watermark()
    }

    /// A follower's fetch response carried the leader's high watermark: this replica's
    /// becomes that, as far as its own log is ready. Set, not only advanced: a replica that
    /// restarted (its high watermark then is its log end) or led before may be above it.
    pub fn note_leader_high_watermark(&self, leader_hw: i64) {
        let mut state = self.replication.lock();
        if state.leading || leader_hw < 0 {
            return;
        }
        state.leader_high_watermark = leader_hw;
        let Some(local) = state.local_end else {
            return;
        };
        let hw = {
            let mut log = self.log.lock();
            let target = leader_hw.min(local.offset);
            if target != log.high_watermark() {
                let position = if target == local.offset {
                    Ok(Some(local))
                } else {
                    log.position_at_or_below(target)
                };
                if let Ok(Some(p)) = position {
                    log.set_high_watermark(p);
                }
            }
            log.high_watermark()
        };
        self.high_watermark.send_if_modified(|cur| {
            let changed = *cur != hw;
            *cur = hw;
            changed
        });
    }

    /// Where this leader's log diverges from a follower that fetches at `fetch_offset` with
    /// `last_fetched_epoch` the epoch of its last batch (Fetch v12+, Kafka's DivergingEpoch):
    /// the largest epoch here at or below that one and where it ends, when that is an older
    /// epoch or ends before the fetch offset. None when the logs agree (or cannot be
    /// compared).
    pub fn diverging_epoch(
        &self,
        last_fetched_epoch: i32,
        fetch_offset: i64,
    ) -> Option<(i32, i64)> {
        if last_fetched_epoch < 0 {
            return None;
        }
        let (epoch, end) = self.log.lock().end_offset_for_epoch(last_fetched_epoch);
        (epoch >= 0 && (epoch < last_fetched_epoch || end < fetch_offset)).then_some((epoch, end))
    }

    /// The followers as this leader knows them (empty unless it leads).
    pub fn followers(&self) -> BTreeMap<i32, FollowerState> {
        self.replication.lock().followers.clone()
    }

    /// The ISR change this leader should ask for now, if any, marked as in flight: followers
    /// not caught up for `lag_ms` leave it, followers caught up with the high watermark join.
    pub fn propose_isr(&self, now_ms: i64, lag_ms: i64) -> Option<IsrProposal> {
        let mut state = self.replication.lock();
        if !state.leading || state.proposed.is_some() {
            return None;
        }
        let hw = self.log.lock().high_watermark();
        let me = state.me;
        let mut isr: Vec<i32> = state
            .isr
            .iter()
            .copied()
            .filter(|&r| {
                r == me
                    || state
                        .followers
                        .get(&r)
                        .is_some_and(|f| now_ms - f.caught_up_ms <= lag_ms)
            })
            .collect();
        for (&r, f) in &state.followers {
            if !isr.contains(&r) && f.log_end_offset >= hw && now_ms - f.caught_up_ms <= lag_ms {
                isr.push(r);
            }
        }
        if !isr.contains(&me) {
            isr.push(me);
        }
        isr.sort_unstable();
        let mut current = state.isr.clone();
        current.sort_unstable();
        if isr == current {
            return None;
        }
        state.proposed = Some(isr.clone());
        Some(IsrProposal {
            leader_epoch: self.leader_epoch(),
            partition_epoch: state.partition_epoch,
            isr,
        })
    }

    /// The controller refused or never answered a proposal: it may be made again.
    pub fn proposal_failed(&self, proposal: &IsrProposal) {
        let mut state = self.replication.lock();
        if state.proposed.as_ref() == Some(&proposal.isr) {
            state.proposed = None;
        }
    }

    /// The in-sync replica count (as the image has it) and `min.insync.replicas`.
    pub fn insync_and_min(&self) -> (usize, usize) {
        let isr = self.replication.lock().isr.len().max(1);
        (isr, self.min_insync_replicas.load(Ordering::Relaxed))
    }

    /// True while this replica leads in `leader_epoch`.
    pub fn leads_in(&self, leader_epoch: i32) -> bool {
        self.replication.lock().leading && self.leader_epoch() == leader_epoch
    }

    /// The log was cut below where it was ready: forget the ready point past the new end.
    pub fn truncated(&self) {
        let mut state = self.replication.lock();
        let end = self.log.lock().end();
        if state.local_end.is_some_and(|l| l.offset > end.offset) {
            state.local_end = Some(end);
        }
        self.note_log_end(end.offset);
    }

    /// The log was started over at a later offset: it is ready (empty) up to its new end.
    pub fn restarted(&self) {
        let mut state = self.replication.lock();
        let (end, hw) = {
            let log = self.log.lock();
            (log.end(), log.high_watermark())
        };
        state.local_end = Some(end);
        self.note_log_end(end.offset);
        self.high_watermark.send_replace(hw);
    }

    /// Moves the high watermark to the smallest ready log end over the in-sync replicas
    /// (this replica's alone when it follows), never back.
    fn advance_high_watermark(&self, state: &Replication) {
        let Some(local) = state.local_end else {
            return;
        };
        let hw = {
            let mut log = self.log.lock();
            let mut target = local.offset;
            if state.leading {
                let members = state.isr.iter().chain(state.proposed.iter().flatten());
                for r in members.filter(|&&r| r != state.me) {
                    let end = state.followers.get(r).map_or(-1, |f| f.log_end_offset);
                    target = target.min(end);
                }
            } else {
                // A follower shows what its leader has committed, no more.
                target = target.min(state.leader_high_watermark);
            }
            if target > log.high_watermark() {
                let position = if target == local.offset {
                    Ok(Some(local))
                } else {
                    log.position_at_or_below(target)
                };
                match position {
                    Ok(Some(p)) => log.advance_high_watermark(p),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "could not place the high watermark")
                    }
                }
            }
            log.high_watermark()
        };
        self.high_watermark.send_if_modified(|cur| {
            let changed = *cur != hw;
            *cur = hw;
            changed
        });
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Relaxed)
    }

    pub fn flush_policy(&self) -> FlushPolicy {
        *self.flush_policy.lock()
    }

    pub fn reconfigure(&self, config: sluice_log::LogConfig, policy: FlushPolicy) {
        self.log.lock().set_config(config);
        *self.flush_policy.lock() = policy;
    }

    pub fn set_min_insync_replicas(&self, min: usize) {
        self.min_insync_replicas.store(min, Ordering::Relaxed);
    }

    pub fn offsets(&self) -> PartitionOffsets {
        PartitionOffsets::of(&self.log.lock())
    }

    /// The aborted transactions a read_committed fetch of `[from, upto)` must name.
    pub fn aborted_transactions(&self, from: i64, upto: i64) -> Vec<sluice_log::txn::AbortedTxn> {
        self.log.lock().aborted_transactions(from, upto)
    }

    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        bound: ReadBound,
    ) -> Result<(Option<ReadSlice>, PartitionOffsets)> {
        let log = self.log.lock();
        let slice = log.read_bounded(offset, max_bytes, bound)?;
        Ok((slice, PartitionOffsets::of(&log)))
    }

    /// This replica's log is ready (durable per its flush policy) up to `upto`: the high
    /// watermark follows where the in-sync replicas allow, and waiting fetches wake.
    pub fn publish(&self, upto: LogPosition) {
        let mut state = self.replication.lock();
        if state.local_end.is_none_or(|l| upto.offset > l.offset) {
            state.local_end = Some(upto);
        }
        self.advance_high_watermark(&state);
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Wakes on what a read with `bound` waits for: the high watermark, or the log end.
    pub fn subscribe_to(&self, bound: ReadBound) -> watch::Receiver<i64> {
        match bound {
            // The last stable offset moves with the high watermark: a marker is decided
            // once the high watermark passes it.
            ReadBound::HighWatermark | ReadBound::LastStable => self.high_watermark.subscribe(),
            ReadBound::LogEnd => self.log_end.subscribe(),
        }
    }

    /// The log now ends at `end` (an append or a truncation): wakes followers' fetches.
    pub fn note_log_end(&self, end: i64) {
        self.log_end.send_if_modified(|cur| {
            let changed = *cur != end;
            *cur = end;
            changed
        });
    }

    /// Counts appended offsets under a relaxed policy; true when a flush is due by count.
    pub fn note_unflushed(&self, offsets: u64, threshold: u64) -> bool {
        let n = self
            .unflushed_messages
            .fetch_add(offsets, Ordering::Relaxed)
            + offsets;
        n >= threshold
    }

    pub fn flush_requested(&self, now_ms: i64) {
        self.unflushed_messages.store(0, Ordering::Relaxed);
        self.last_flush_ms.store(now_ms as u64, Ordering::Relaxed);
    }

    pub fn ms_since_flush(&self, now_ms: i64) -> u64 {
        (now_ms as u64).saturating_sub(self.last_flush_ms.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG_MS: i64 = 10_000;

    /// A replica of topic "t" in a fresh log.
    fn replica(dir: &std::path::Path) -> Partition {
        let log = Log::open(dir, sluice_log::LogConfig::default(), 0).unwrap();
        Partition::new(Arc::from("t"), 0, log, FlushPolicy::EveryWrite)
    }

    fn place(p: &Partition, me: i32, leader: i32, epochs: (i32, i32), isr: &[i32], now: i64) {
        p.set_placement(
            &Placement {
                me,
                leader,
                leader_epoch: epochs.0,
                partition_epoch: epochs.1,
                replicas: &[1, 2, 3],
                isr,
            },
            now,
        );
    }

    /// Appends `n` records, a batch each (a high watermark sits between batches), as the
    /// leader would, and publishes them as flushed.
    fn append(p: &Partition, n: usize) {
        for _ in 0..n {
            let batch = sluice_log::batch::build_batch(0, &[(None, Some(&b"v"[..]))]);
            let summary = sluice_log::batch::validate_batches(&batch, 1 << 20).unwrap();
            let epoch = p.leader_epoch();
            let info = p.log().append(&batch, &summary, epoch, 0).unwrap();
            p.publish(info.end);
        }
    }

    fn hw(p: &Partition) -> i64 {
        p.offsets().high_watermark
    }

    #[test]
    fn a_leaders_high_watermark_is_the_smallest_log_end_over_the_isr_and_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = replica(dir.path());
        place(&p, 1, 1, (0, 0), &[1, 2, 3], 0);
        append(&p, 10);
        assert_eq!(hw(&p), 0, "no follower has it yet");
        p.note_follower_fetch(2, 10, 1);
        assert_eq!(hw(&p), 0, "follower 3 has nothing");
        p.note_follower_fetch(3, 4, 1);
        assert_eq!(hw(&p), 4);
        p.note_follower_fetch(3, 10, 2);
        assert_eq!(hw(&p), 10);
        p.note_follower_fetch(3, 4, 3);
        assert_eq!(hw(&p), 10, "a high watermark never moves back");
        assert_eq!(
            *p.subscribe().borrow(),
            10,
            "waiting fetches and acks=all see it"
        );
    }

    #[test]
    fn a_follower_that_lags_past_the_lag_time_is_proposed_out_and_counts_until_committed() {
        let dir = tempfile::tempdir().unwrap();
        let p = replica(dir.path());
        place(&p, 1, 1, (0, 0), &[1, 2, 3], 0);
        append(&p, 10);
        p.note_follower_fetch(2, 10, 100);
        p.note_follower_fetch(3, 6, 100);
        assert_eq!(
            p.propose_isr(LAG_MS, LAG_MS),
            None,
            "3 is still within its lag time"
        );
        let proposal = p
            .propose_isr(LAG_MS + 1, LAG_MS)
            .expect("3 lagged too long");
        assert_eq!(proposal.isr, [1, 2]);
        assert_eq!((proposal.leader_epoch, proposal.partition_epoch), (0, 0));
        assert_eq!(
            p.propose_isr(LAG_MS + 2, LAG_MS),
            None,
            "one change in flight at a time"
        );
        assert_eq!(
            hw(&p),
            6,
            "3 counts until the controller commits its removal"
        );
        // The controller refuses (say a stale partition epoch): the change may be asked again.
        p.proposal_failed(&proposal);
        assert_eq!(p.propose_isr(LAG_MS + 3, LAG_MS), Some(proposal));
        // Committed: the next image has the new ISR in a new partition epoch.
        place(&p, 1, 1, (0, 1), &[1, 2], LAG_MS + 4);
        assert_eq!(hw(&p), 10);
        assert_eq!(p.insync_and_min().0, 2);
    }

    #[test]
    fn a_follower_caught_up_with_the_high_watermark_joins_and_counts_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = replica(dir.path());
        place(&p, 1, 1, (0, 0), &[1, 2], 0);
        append(&p, 10);
        p.note_follower_fetch(2, 10, 1);
        assert_eq!(hw(&p), 10, "3 is not in the ISR");
        append(&p, 5);
        assert!(
            !p.note_follower_fetch(3, 8, 2),
            "below the high watermark: not yet"
        );
        assert!(
            p.note_follower_fetch(3, 10, 3),
            "caught up with the high watermark: add it"
        );
        let proposal = p.propose_isr(4, LAG_MS).expect("3 joins");
        assert_eq!(proposal.isr, [1, 2, 3]);
        p.note_follower_fetch(2, 15, 5);
        assert_eq!(
            hw(&p),
            10,
            "3, being added, already counts (the maximal ISR)"
        );
        p.note_follower_fetch(3, 15, 6);
        assert_eq!(hw(&p), 15);
    }

    #[test]
    fn a_follower_shows_its_leaders_high_watermark_as_far_as_its_own_log_is_ready() {
        let dir = tempfile::tempdir().unwrap();
        let p = replica(dir.path());
        place(&p, 1, 1, (0, 0), &[1], 0);
        append(&p, 10);
        assert_eq!(
            hw(&p),
            10,
            "alone in the ISR, the leader commits what it flushed"
        );
        place(&p, 1, 2, (1, 1), &[1, 2], 1);
        assert!(!p.leads_in(1) && !p.leads_in(0));
        assert!(p.log_as_follower(1).is_some() && p.log_as_follower(0).is_none());
        p.note_leader_high_watermark(7);
        assert_eq!(hw(&p), 7, "set to the leader's, even below its own");
        p.note_leader_high_watermark(20);
        assert_eq!(hw(&p), 10, "never past its own ready log");
    }

    #[test]
    fn a_new_leadership_starts_the_followers_afresh_with_the_in_sync_ones_caught_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = replica(dir.path());
        place(&p, 1, 1, (0, 0), &[1, 2, 3], 0);
        p.note_follower_fetch(2, 0, 50);
        place(&p, 1, 1, (1, 1), &[1, 3], 1_000);
        let followers = p.followers();
        assert_eq!(
            followers[&2].log_end_offset, -1,
            "positions from the old term are gone"
        );
        assert_eq!(
            followers[&3].caught_up_ms, 1_000,
            "in sync: caught up as of now"
        );
        assert_eq!(
            followers[&2].caught_up_ms, 0,
            "out of sync: must catch up first"
        );
        assert!(p.leads_in(1));
        assert_eq!(
            p.log().epochs().latest_epoch(),
            Some(1),
            "the new epoch starts at the log end"
        );
    }
}

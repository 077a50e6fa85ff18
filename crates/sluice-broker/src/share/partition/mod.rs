//! One share-partition (a share group's view of one topic partition): the window of
//! in-flight records between the share-partition start offset (SPSO) and end offset (SPEO),
//! each Available, Acquired by a member until its lock expires, Acknowledged or Archived.
//! Records below the window are finished; records from its end on were never delivered.
//! Pure state: the caller reads the log and persists, this decides who gets what.
//!
//! The window is kept as runs of offsets in the same state (as Kafka's in-flight batches):
//! records are acquired and acknowledged a batch at a time, so a run is usually a whole
//! batch, and the work of a fetch or an acknowledgement is per run, not per record. A run is
//! split where an acknowledgement or a delay treats its records differently, and merged
//! again with its neighbours once they agree.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::state::{
    PersistedState, StateBatch, STATE_ACKNOWLEDGED, STATE_ACQUIRED, STATE_ARCHIVED, STATE_AVAILABLE,
};

/// What a member said about a record (the Kafka ack types; 0 is a gap: no record there;
/// Renew, KIP-1222, keeps the record and restarts its lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    Gap,
    Accept,
    Release,
    Reject,
    Renew,
}

impl AckType {
    pub fn from_code(code: i8) -> Option<AckType> {
        match code {
            0 => Some(AckType::Gap),
            1 => Some(AckType::Accept),
            2 => Some(AckType::Release),
            3 => Some(AckType::Reject),
            4 => Some(AckType::Renew),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordState {
    #[default]
    Available,
    Acquired,
    Acknowledged,
    Archived,
}

impl RecordState {
    fn finished(self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

/// Consecutive offsets `first..=last` in one state.
#[derive(Debug, Clone)]
struct Run {
    first: i64,
    last: i64,
    state: RecordState,
    deliveries: i16,
    owner: Option<Arc<str>>,
    lock_deadline_ms: i64,
    /// A delayed record (its delivery-time header) is not offered before this time.
    not_before_ms: i64,
    /// Archived, and its dead letter not yet written: persisted as available (so a crash
    /// delivers it again rather than losing its dead letter), and the start offset waits.
    letter_pending: bool,
}

impl Run {
    fn new(first: i64, last: i64) -> Run {
        Run {
            first,
            last,
            state: RecordState::Available,
            deliveries: 0,
            owner: None,
            lock_deadline_ms: 0,
            not_before_ms: 0,
            letter_pending: false,
        }
    }

    fn len(&self) -> i64 {
        self.last - self.first + 1
    }

    fn done(&self) -> bool {
        self.state.finished() && !self.letter_pending
    }

    /// Whether `next` (starting right after this run) may join it.
    fn joins(&self, next: &Run) -> bool {
        self.last + 1 == next.first
            && self.state == next.state
            && self.deliveries == next.deliveries
            && self.owner.as_deref() == next.owner.as_deref()
            && self.lock_deadline_ms == next.lock_deadline_ms
            && self.not_before_ms == next.not_before_ms
            && self.letter_pending == next.letter_pending
    }

    /// No longer held by anyone, in `state`.
    fn set_free(&mut self, state: RecordState) {
        self.state = state;
        self.owner = None;
        self.lock_deadline_ms = 0;
    }
}

/// Why a record was archived (a dead letter's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveReason {
    Rejected,
    DeliveryLimit,
}

/// A record archived since the owner of the share-partition last looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchivedRecord {
    pub offset: i64,
    pub delivery_count: i16,
    pub reason: ArchiveReason,
}

/// Offsets of records not to deliver before a time (epoch ms), from their headers.
pub type Delays = BTreeMap<i64, i64>;

/// A run of acquired offsets with one delivery count (ShareFetch's AcquiredRecords).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: i16,
}

/// Why an acknowledgement was refused (INVALID_RECORD_STATE in Kafka's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAck(pub String);

/// The group settings a share-partition follows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub lock_duration_ms: i64,
    pub delivery_count_limit: i16,
    pub max_in_flight: usize,
}

/// Counts for `sluice queue describe` and ShareGroupDescribe-style views.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub available: usize,
    pub acquired: usize,
    pub acknowledged: usize,
    pub archived: usize,
}

#[derive(Debug)]
pub struct SharePartition {
    start: i64,
    /// The first offset never delivered: the runs cover `start..end` exactly.
    end: i64,
    runs: VecDeque<Run>,
    /// The earliest lock deadline of an Acquired record, if any (so most calls skip the scan).
    next_deadline_ms: Option<i64>,
    /// Records archived and not yet taken (for the dead-letter topic).
    archived: Vec<ArchivedRecord>,
    /// The persisted state's epoch this share-partition was built from.
    state_epoch: i32,
}

impl SharePartition {
    /// A share-partition whose first undelivered record is `start`.
    pub fn new(start: i64) -> SharePartition {
        SharePartition {
            start,
            end: start,
            runs: VecDeque::new(),
            next_deadline_ms: None,
            archived: Vec::new(),
            state_epoch: 0,
        }
    }

    /// A new share-partition in a state epoch an administrator's change began.
    pub fn new_in_epoch(start: i64, state_epoch: i32) -> SharePartition {
        SharePartition {
            state_epoch,
            ..SharePartition::new(start)
        }
    }

    pub fn state_epoch(&self) -> i32 {
        self.state_epoch
    }

    /// The share-partition start offset: every record before it is finished.
    pub fn start_offset(&self) -> i64 {
        self.start
    }

    /// The first offset never delivered.
    pub fn end_offset(&self) -> i64 {
        self.end
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for r in &self.runs {
            let n = r.len() as usize;
            match r.state {
                RecordState::Available => c.available += n,
                RecordState::Acquired => c.acquired += n,
                RecordState::Acknowledged => c.acknowledged += n,
                RecordState::Archived => c.archived += n,
            }
        }
        c
    }

    /// Makes records whose lock ran out at `now_ms` available again (or archives them at the
    /// delivery limit). Returns whether any lock ran out.
    pub fn expire_locks(&mut self, now_ms: i64, limits: &Limits) -> bool {
        if self.next_deadline_ms.is_none_or(|d| d > now_ms) {
            return false;
        }
        let mut expired = false;
        let mut next = None::<i64>;
        for run in self.runs.iter_mut() {
            if run.state != RecordState::Acquired {
                continue;
            }
            if run.lock_deadline_ms <= now_ms {
                release(run, limits, &mut self.archived);
                expired = true;
            } else {
                next = Some(next.map_or(run.lock_deadline_ms, |n| n.min(run.lock_deadline_ms)));
            }
        }
        self.next_deadline_ms = next;
        self.merge_all();
        self.advance_start();
        expired
    }

    /// The first record inside the window that may be delivered now.
    pub fn first_available(&self, now_ms: i64) -> Option<i64> {
        self.runs
            .iter()
            .find(|r| r.state == RecordState::Available && r.not_before_ms <= now_ms)
            .map(|r| r.first)
    }

    /// Acquires for `member` the available records from `from` on (at most `max_records`,
    /// none past `upto`, stopping at the first record in another state): redeliveries, which
    /// come before new records as in Kafka. A record never delivered whose time in `delays`
    /// is still to come is passed over until then.
    #[allow(clippy::too_many_arguments)]
    pub fn acquire_available(
        &mut self,
        member: &Arc<str>,
        from: i64,
        upto: i64,
        max_records: usize,
        now_ms: i64,
        limits: &Limits,
        delays: &Delays,
    ) -> Vec<Acquired> {
        if from < self.start || from >= self.end || upto < from {
            return Vec::new();
        }
        let upto = upto.min(self.end - 1);
        // First decide (reading), then change (splitting runs by offset).
        let mut take: Vec<(i64, i64)> = Vec::new();
        let mut hold_back: Vec<(i64, i64)> = Vec::new();
        let mut budget = max_records as i64;
        let mut i = self.run_at(from);
        let mut cursor = from;
        while budget > 0 && cursor <= upto && i < self.runs.len() {
            let run = &self.runs[i];
            if run.state != RecordState::Available {
                break;
            }
            let last = run.last.min(upto);
            if run.not_before_ms <= now_ms {
                // Records never delivered may carry a delivery time still to come.
                let waiting = delays
                    .range(cursor..=last)
                    .filter(|&(_, &at)| at > now_ms && run.deliveries == 0);
                let mut piece = cursor;
                for (&offset, &at) in waiting {
                    let n = (offset - piece).min(budget);
                    if n > 0 {
                        take.push((piece, piece + n - 1));
                        budget -= n;
                    }
                    if budget == 0 {
                        break;
                    }
                    hold_back.push((offset, at));
                    piece = offset + 1;
                }
                if budget > 0 && piece <= last {
                    let n = (last - piece + 1).min(budget);
                    take.push((piece, piece + n - 1));
                    budget -= n;
                }
            }
            cursor = run.last + 1;
            i += 1;
        }
        for (offset, at) in hold_back {
            for run in self.isolate(offset, offset) {
                run.not_before_ms = at;
            }
        }
        let acquired = self.lock(&take, member, now_ms, limits);
        self.merge_all();
        acquired
    }

    /// How many new records may be acquired now (the in-flight bound).
    pub fn room(&self, limits: &Limits) -> usize {
        limits
            .max_in_flight
            .saturating_sub((self.end - self.start) as usize)
    }

    /// Acquires for `member` the new records `from..=last` (whole batches the caller read
    /// from the log at the window's end). Refused (empty) if `from` is no longer the end.
    pub fn acquire_new(
        &mut self,
        member: &Arc<str>,
        from: i64,
        last: i64,
        now_ms: i64,
        limits: &Limits,
        delays: &Delays,
    ) -> Vec<Acquired> {
        if from != self.end || last < from {
            return Vec::new();
        }
        let mut take = Vec::new();
        let mut piece = from;
        for (&offset, &at) in delays.range(from..=last).filter(|&(_, &at)| at > now_ms) {
            if offset > piece {
                take.push((piece, offset - 1));
                self.runs.push_back(Run::new(piece, offset - 1));
            }
            self.runs.push_back(Run {
                not_before_ms: at,
                ..Run::new(offset, offset)
            });
            piece = offset + 1;
        }
        if piece <= last {
            take.push((piece, last));
            self.runs.push_back(Run::new(piece, last));
        }
        self.end = last + 1;
        let acquired = self.lock(&take, member, now_ms, limits);
        self.merge_all();
        acquired
    }

    /// Acquires the available ranges `take` (ascending) for `member`; returns the runs.
    fn lock(
        &mut self,
        take: &[(i64, i64)],
        member: &Arc<str>,
        now_ms: i64,
        limits: &Limits,
    ) -> Vec<Acquired> {
        let deadline = now_ms + limits.lock_duration_ms;
        let mut out: Vec<Acquired> = Vec::new();
        for &(first, last) in take {
            for run in self.isolate(first, last) {
                run.state = RecordState::Acquired;
                run.deliveries = run.deliveries.saturating_add(1);
                run.owner = Some(member.clone());
                run.lock_deadline_ms = deadline;
                match out.last_mut() {
                    Some(a)
                        if a.delivery_count == run.deliveries && a.last_offset + 1 == run.first =>
                    {
                        a.last_offset = run.last
                    }
                    _ => out.push(Acquired {
                        first_offset: run.first,
                        last_offset: run.last,
                        delivery_count: run.deliveries,
                    }),
                }
            }
        }
        if !take.is_empty() {
            self.next_deadline_ms =
                Some(self.next_deadline_ms.map_or(deadline, |d| d.min(deadline)));
        }
        out
    }

    /// Applies `member`'s acknowledgement of `first..=last` at `now_ms`: one type for the
    /// whole range, or one per offset. Every offset must be acquired by `member`; otherwise
    /// nothing in the range changes.
    pub fn acknowledge(
        &mut self,
        member: &str,
        first: i64,
        last: i64,
        types: &[AckType],
        limits: &Limits,
        now_ms: i64,
    ) -> Result<(), InvalidAck> {
        if last < first || (types.len() != 1 && types.len() as i64 != last - first + 1) {
            return Err(InvalidAck(format!(
                "{} acknowledgement types for offsets {first}..={last}",
                types.len()
            )));
        }
        if first < self.start || last >= self.end {
            return Err(InvalidAck(format!(
                "offsets {first}..={last} are not in flight (in flight: {}..{})",
                self.start, self.end
            )));
        }
        let held = self
            .runs
            .range(self.run_at(first)..)
            .take_while(|r| r.first <= last)
            .find(|r| r.state != RecordState::Acquired || r.owner.as_deref() != Some(member));
        if let Some(run) = held {
            return Err(InvalidAck(format!(
                "offset {} is not acquired by this member",
                run.first.max(first)
            )));
        }
        // Consecutive offsets with the same type are applied as one range.
        let mut at = 0;
        while at < types.len() {
            let kind = types[at];
            let same = types[at..].iter().take_while(|&&t| t == kind).count();
            let (lo, hi) = if types.len() == 1 {
                (first, last)
            } else {
                (first + at as i64, first + (at + same) as i64 - 1)
            };
            self.apply(lo, hi, kind, limits, now_ms);
            at += same;
        }
        self.merge_all();
        self.advance_start();
        Ok(())
    }

    fn apply(&mut self, first: i64, last: i64, kind: AckType, limits: &Limits, now_ms: i64) {
        let mut archived = std::mem::take(&mut self.archived);
        let renewed = now_ms + limits.lock_duration_ms;
        for run in self.isolate(first, last) {
            match kind {
                AckType::Renew => run.lock_deadline_ms = renewed,
                AckType::Accept | AckType::Gap => run.set_free(RecordState::Acknowledged),
                AckType::Reject => {
                    archive(run, ArchiveReason::Rejected, &mut archived);
                }
                AckType::Release => release(run, limits, &mut archived),
            }
        }
        self.archived = archived;
    }

    /// Releases every record `member` holds (its share session closed or it left).
    pub fn release_member(&mut self, member: &str, limits: &Limits) {
        for run in self.runs.iter_mut() {
            if run.state == RecordState::Acquired && run.owner.as_deref() == Some(member) {
                release(run, limits, &mut self.archived);
            }
        }
        self.merge_all();
        self.advance_start();
    }

    /// The records archived since the last call (for the dead-letter topic). Each stays in
    /// flight until `letters_written` says its dead letter is (or needs not be) written.
    pub fn take_archived(&mut self) -> Vec<ArchivedRecord> {
        std::mem::take(&mut self.archived)
    }

    /// The dead letters of `archived` are written: those records are done.
    pub fn letters_written(&mut self, archived: &[ArchivedRecord]) {
        let mut offsets: Vec<i64> = archived
            .iter()
            .map(|a| a.offset)
            .filter(|&o| o >= self.start && o < self.end)
            .collect();
        offsets.sort_unstable();
        offsets.dedup();
        let mut i = 0;
        while i < offsets.len() {
            let first = offsets[i];
            let n = offsets[i..]
                .iter()
                .enumerate()
                .take_while(|&(k, &o)| o == first + k as i64)
                .count();
            for run in self.isolate(first, first + n as i64 - 1) {
                run.letter_pending = false;
            }
            i += n;
        }
        self.merge_all();
        self.advance_start();
    }

    /// What must survive a crash: the start offset and every run of the window that is
    /// finished or was delivered. Acquired records are stored as such (for `sluice queue
    /// describe`) but read back as available with their count: after a crash nobody holds
    /// them.
    pub fn to_persisted(&self) -> PersistedState {
        let mut batches: Vec<StateBatch> = Vec::new();
        for run in &self.runs {
            let state = match run.state {
                RecordState::Available => STATE_AVAILABLE,
                RecordState::Acquired => STATE_ACQUIRED,
                RecordState::Acknowledged => STATE_ACKNOWLEDGED,
                RecordState::Archived if run.letter_pending => STATE_AVAILABLE,
                RecordState::Archived => STATE_ARCHIVED,
            };
            match batches.last_mut() {
                Some(b)
                    if b.state == state
                        && b.delivery_count == run.deliveries
                        && b.last_offset + 1 == run.first =>
                {
                    b.last_offset = run.last
                }
                _ => batches.push(StateBatch {
                    first_offset: run.first,
                    last_offset: run.last,
                    state,
                    delivery_count: run.deliveries,
                }),
            }
        }
        PersistedState {
            state_epoch: self.state_epoch,
            start_offset: self.start,
            batches,
        }
    }

    /// A share-partition as it was persisted (nothing acquired).
    pub fn from_persisted(state: &PersistedState) -> SharePartition {
        let mut sp = SharePartition::new_in_epoch(state.start_offset, state.state_epoch);
        for b in &state.batches {
            if b.last_offset < sp.start || b.last_offset < b.first_offset {
                continue;
            }
            if b.last_offset >= sp.end {
                sp.runs.push_back(Run::new(sp.end, b.last_offset));
                sp.end = b.last_offset + 1;
            }
            let state = match b.state {
                STATE_ACKNOWLEDGED => RecordState::Acknowledged,
                STATE_ARCHIVED => RecordState::Archived,
                _ => RecordState::Available,
            };
            for run in sp.isolate(b.first_offset.max(sp.start), b.last_offset) {
                run.state = state;
                run.deliveries = b.delivery_count;
            }
        }
        sp.merge_all();
        sp.advance_start();
        sp
    }

    /// The index of the run holding `offset` (`runs.len()` past the end).
    fn run_at(&self, offset: i64) -> usize {
        self.runs.partition_point(|r| r.last < offset)
    }

    /// Makes a run begin at `offset` (inside the window), splitting the one holding it.
    fn split_at(&mut self, offset: i64) {
        let i = self.run_at(offset);
        if let Some(run) = self.runs.get_mut(i) {
            if run.first < offset {
                let mut tail = run.clone();
                run.last = offset - 1;
                tail.first = offset;
                self.runs.insert(i + 1, tail);
            }
        }
    }

    /// The runs covering exactly `first..=last` (inside the window), split out of their
    /// neighbours.
    fn isolate(&mut self, first: i64, last: i64) -> impl Iterator<Item = &mut Run> {
        self.split_at(first);
        self.split_at(last + 1);
        let (lo, hi) = (self.run_at(first), self.run_at(last + 1));
        self.runs.range_mut(lo..hi)
    }

    /// Joins neighbouring runs that agree in everything.
    fn merge_all(&mut self) {
        let mut merged: VecDeque<Run> = VecDeque::with_capacity(self.runs.len());
        for run in self.runs.drain(..) {
            match merged.back_mut() {
                Some(prev) if prev.joins(&run) => prev.last = run.last,
                _ => merged.push_back(run),
            }
        }
        self.runs = merged;
    }

    fn advance_start(&mut self) {
        while self.runs.front().is_some_and(Run::done) {
            if let Some(run) = self.runs.pop_front() {
                self.start = run.last + 1;
            }
        }
    }
}

/// Acquired records go back to Available, or to Archived once they were delivered as many
/// times as the limit allows (noted in `archived`).
fn release(run: &mut Run, limits: &Limits, archived: &mut Vec<ArchivedRecord>) {
    if run.deliveries >= limits.delivery_count_limit {
        archive(run, ArchiveReason::DeliveryLimit, archived);
    } else {
        run.set_free(RecordState::Available);
    }
}

/// Archives a run; it stays in flight until its dead letters are written.
fn archive(run: &mut Run, reason: ArchiveReason, archived: &mut Vec<ArchivedRecord>) {
    run.set_free(RecordState::Archived);
    run.letter_pending = true;
    archived.extend((run.first..=run.last).map(|offset| ArchivedRecord {
        offset,
        delivery_count: run.deliveries,
        reason,
    }));
}

#[cfg(test)]
mod tests;

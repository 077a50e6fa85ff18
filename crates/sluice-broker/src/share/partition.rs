//! One share-partition (a share group's view of one topic partition): the window of
//! in-flight records between the share-partition start offset (SPSO) and end offset (SPEO),
//! each Available, Acquired by a member until its lock expires, Acknowledged or Archived.
//! Records below the window are finished; records from its end on were never delivered.
//! Pure state: the caller reads the log and persists, this decides who gets what.

use std::collections::VecDeque;
use std::sync::Arc;

use super::state::{
    PersistedState, StateBatch, STATE_ACKNOWLEDGED, STATE_ARCHIVED, STATE_AVAILABLE,
};

/// What a member said about a record (the Kafka ack types; 0 is a gap: no record there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    Gap,
    Accept,
    Release,
    Reject,
}

impl AckType {
    pub fn from_code(code: i8) -> Option<AckType> {
        match code {
            0 => Some(AckType::Gap),
            1 => Some(AckType::Accept),
            2 => Some(AckType::Release),
            3 => Some(AckType::Reject),
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

#[derive(Debug, Clone, Default)]
struct Slot {
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

impl Slot {
    fn done(&self) -> bool {
        self.state.finished() && !self.letter_pending
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
pub type Delays = std::collections::HashMap<i64, i64>;

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
    window: VecDeque<Slot>,
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
            window: VecDeque::new(),
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
        self.start + self.window.len() as i64
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.window {
            match s.state {
                RecordState::Available => c.available += 1,
                RecordState::Acquired => c.acquired += 1,
                RecordState::Acknowledged => c.acknowledged += 1,
                RecordState::Archived => c.archived += 1,
            }
        }
        c
    }

    /// Makes records whose lock ran out at `now_ms` available again (or archives them at the
    /// delivery limit).
    pub fn expire_locks(&mut self, now_ms: i64, limits: &Limits) {
        if self.next_deadline_ms.is_none_or(|d| d > now_ms) {
            return;
        }
        let mut next = None::<i64>;
        for (i, slot) in self.window.iter_mut().enumerate() {
            let offset = self.start + i as i64;
            if slot.state != RecordState::Acquired {
                continue;
            }
            if slot.lock_deadline_ms <= now_ms {
                release(slot, offset, limits, &mut self.archived);
            } else {
                next = Some(next.map_or(slot.lock_deadline_ms, |n| n.min(slot.lock_deadline_ms)));
            }
        }
        self.next_deadline_ms = next;
        self.advance_start();
    }

    /// The first record inside the window that may be delivered now.
    pub fn first_available(&self, now_ms: i64) -> Option<i64> {
        self.window
            .iter()
            .position(|s| s.state == RecordState::Available && s.not_before_ms <= now_ms)
            .map(|i| self.start + i as i64)
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
        if from < self.start || from >= self.end_offset() || upto < from {
            return Vec::new();
        }
        let first = (from - self.start) as usize;
        let last = ((upto - self.start) as usize).min(self.window.len() - 1);
        let mut taken = Vec::new();
        for i in first..=last {
            if taken.len() >= max_records {
                break;
            }
            let offset = self.start + i as i64;
            let slot = &mut self.window[i];
            if slot.state != RecordState::Available {
                break;
            }
            if slot.not_before_ms > now_ms {
                continue;
            }
            if let Some(&at) = delays.get(&offset).filter(|&&at| at > now_ms) {
                if slot.deliveries == 0 {
                    slot.not_before_ms = at;
                    continue;
                }
            }
            taken.push(i);
        }
        self.lock(&taken, member, now_ms, limits)
    }

    /// How many new records may be acquired now (the in-flight bound).
    pub fn room(&self, limits: &Limits) -> usize {
        limits.max_in_flight.saturating_sub(self.window.len())
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
        if from != self.end_offset() || last < from {
            return Vec::new();
        }
        let mut taken = Vec::with_capacity((last - from + 1) as usize);
        for offset in from..=last {
            let not_before_ms = delays.get(&offset).copied().filter(|&at| at > now_ms);
            if not_before_ms.is_none() {
                taken.push(self.window.len());
            }
            self.window.push_back(Slot {
                not_before_ms: not_before_ms.unwrap_or(0),
                ..Slot::default()
            });
        }
        self.lock(&taken, member, now_ms, limits)
    }

    /// Acquires the slots at `indices` (ascending) for `member`; returns the runs.
    fn lock(
        &mut self,
        indices: &[usize],
        member: &Arc<str>,
        now_ms: i64,
        limits: &Limits,
    ) -> Vec<Acquired> {
        let deadline = now_ms + limits.lock_duration_ms;
        let mut out: Vec<Acquired> = Vec::new();
        for &i in indices {
            let slot = &mut self.window[i];
            slot.state = RecordState::Acquired;
            slot.deliveries = slot.deliveries.saturating_add(1);
            slot.owner = Some(member.clone());
            slot.lock_deadline_ms = deadline;
            let offset = self.start + i as i64;
            match out.last_mut() {
                Some(run)
                    if run.delivery_count == slot.deliveries && run.last_offset + 1 == offset =>
                {
                    run.last_offset = offset
                }
                _ => out.push(Acquired {
                    first_offset: offset,
                    last_offset: offset,
                    delivery_count: slot.deliveries,
                }),
            }
        }
        if !indices.is_empty() {
            self.next_deadline_ms =
                Some(self.next_deadline_ms.map_or(deadline, |d| d.min(deadline)));
        }
        out
    }

    /// Applies `member`'s acknowledgement of `first..=last`: one type for the whole range,
    /// or one per offset. Every offset must be acquired by `member`; otherwise nothing in
    /// the range changes.
    pub fn acknowledge(
        &mut self,
        member: &str,
        first: i64,
        last: i64,
        types: &[AckType],
        limits: &Limits,
    ) -> Result<(), InvalidAck> {
        if last < first || (types.len() != 1 && types.len() as i64 != last - first + 1) {
            return Err(InvalidAck(format!(
                "{} acknowledgement types for offsets {first}..={last}",
                types.len()
            )));
        }
        if first < self.start || last >= self.end_offset() {
            return Err(InvalidAck(format!(
                "offsets {first}..={last} are not in flight (in flight: {}..{})",
                self.start,
                self.end_offset()
            )));
        }
        let at = |o: i64| (o - self.start) as usize;
        for o in first..=last {
            let slot = &self.window[at(o)];
            if slot.state != RecordState::Acquired || slot.owner.as_deref() != Some(member) {
                return Err(InvalidAck(format!(
                    "offset {o} is not acquired by this member"
                )));
            }
        }
        for (n, o) in (first..=last).enumerate() {
            let kind = if types.len() == 1 { types[0] } else { types[n] };
            let slot = &mut self.window[(o - self.start) as usize];
            match kind {
                AckType::Accept | AckType::Gap => finish(slot, RecordState::Acknowledged),
                AckType::Reject => {
                    self.archived.push(ArchivedRecord {
                        offset: o,
                        delivery_count: slot.deliveries,
                        reason: ArchiveReason::Rejected,
                    });
                    finish(slot, RecordState::Archived);
                    slot.letter_pending = true;
                }
                AckType::Release => release(slot, o, limits, &mut self.archived),
            }
        }
        self.advance_start();
        Ok(())
    }

    /// Releases every record `member` holds (its share session closed or it left).
    pub fn release_member(&mut self, member: &str, limits: &Limits) {
        for (i, slot) in self.window.iter_mut().enumerate() {
            if slot.state == RecordState::Acquired && slot.owner.as_deref() == Some(member) {
                release(slot, self.start + i as i64, limits, &mut self.archived);
            }
        }
        self.advance_start();
    }

    /// The records archived since the last call (for the dead-letter topic). Each stays in
    /// flight until `letters_written` says its dead letter is (or needs not be) written.
    pub fn take_archived(&mut self) -> Vec<ArchivedRecord> {
        std::mem::take(&mut self.archived)
    }

    /// The dead letters of `archived` are written: those records are done.
    pub fn letters_written(&mut self, archived: &[ArchivedRecord]) {
        for a in archived {
            if a.offset >= self.start {
                if let Some(slot) = self.window.get_mut((a.offset - self.start) as usize) {
                    slot.letter_pending = false;
                }
            }
        }
        self.advance_start();
    }

    /// What must survive a crash: the start offset and every run of the window that is
    /// finished or was delivered. An acquired record is stored as available with its count
    /// (after a crash nobody holds it).
    pub fn to_persisted(&self) -> PersistedState {
        let mut batches: Vec<StateBatch> = Vec::new();
        for (i, slot) in self.window.iter().enumerate() {
            let state = match slot.state {
                RecordState::Available | RecordState::Acquired => STATE_AVAILABLE,
                RecordState::Acknowledged => STATE_ACKNOWLEDGED,
                RecordState::Archived if slot.letter_pending => STATE_AVAILABLE,
                RecordState::Archived => STATE_ARCHIVED,
            };
            let offset = self.start + i as i64;
            match batches.last_mut() {
                Some(b)
                    if b.state == state
                        && b.delivery_count == slot.deliveries
                        && b.last_offset + 1 == offset =>
                {
                    b.last_offset = offset
                }
                _ => batches.push(StateBatch {
                    first_offset: offset,
                    last_offset: offset,
                    state,
                    delivery_count: slot.deliveries,
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
            let end = sp.start + sp.window.len() as i64;
            for _ in end..=b.last_offset {
                sp.window.push_back(Slot::default());
            }
            let state = match b.state {
                STATE_ACKNOWLEDGED => RecordState::Acknowledged,
                STATE_ARCHIVED => RecordState::Archived,
                _ => RecordState::Available,
            };
            for o in b.first_offset.max(sp.start)..=b.last_offset {
                let slot = &mut sp.window[(o - sp.start) as usize];
                slot.state = state;
                slot.deliveries = b.delivery_count;
            }
        }
        sp.advance_start();
        sp
    }

    fn advance_start(&mut self) {
        while self.window.front().is_some_and(Slot::done) {
            self.window.pop_front();
            self.start += 1;
        }
    }
}

/// An acquired record goes back to Available, or to Archived once it was delivered as many
/// times as the limit allows (noted in `archived`).
fn release(slot: &mut Slot, offset: i64, limits: &Limits, archived: &mut Vec<ArchivedRecord>) {
    slot.owner = None;
    if slot.deliveries >= limits.delivery_count_limit {
        slot.state = RecordState::Archived;
        slot.letter_pending = true;
        archived.push(ArchivedRecord {
            offset,
            delivery_count: slot.deliveries,
            reason: ArchiveReason::DeliveryLimit,
        });
    } else {
        slot.state = RecordState::Available;
    }
}

fn finish(slot: &mut Slot, state: RecordState) {
    slot.owner = None;
    slot.state = state;
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        lock_duration_ms: 1000,
        delivery_count_limit: 3,
        max_in_flight: 100,
    };

    fn member(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    /// Redelivers to `m` what is available first, as a share fetch would.
    fn redeliver(sp: &mut SharePartition, m: &Arc<str>, max: usize, now: i64) -> Vec<Acquired> {
        match sp.first_available(now) {
            Some(from) => {
                sp.acquire_available(m, from, i64::MAX, max, now, &LIMITS, &Delays::new())
            }
            None => Vec::new(),
        }
    }

    fn run(first: i64, last: i64, delivery_count: i16) -> Vec<Acquired> {
        vec![Acquired {
            first_offset: first,
            last_offset: last,
            delivery_count,
        }]
    }

    #[test]
    fn accepted_records_advance_the_start_and_are_never_redelivered() {
        let (a, b) = (member("a"), member("b"));
        let mut sp = SharePartition::new(10);
        assert_eq!(
            sp.acquire_new(&a, 10, 14, 0, &LIMITS, &Delays::new()),
            run(10, 14, 1)
        );
        assert_eq!(
            sp.acquire_new(&b, 15, 16, 0, &LIMITS, &Delays::new()),
            run(15, 16, 1)
        );
        assert!(redeliver(&mut sp, &b, 10, 0).is_empty());
        sp.acknowledge("a", 10, 14, &[AckType::Accept], &LIMITS)
            .unwrap();
        assert_eq!(sp.start_offset(), 15);
        sp.acknowledge("b", 15, 16, &[AckType::Accept], &LIMITS)
            .unwrap();
        assert_eq!((sp.start_offset(), sp.end_offset()), (17, 17));
        sp.expire_locks(10_000, &LIMITS);
        assert!(redeliver(&mut sp, &a, 10, 10_000).is_empty());
    }

    #[test]
    fn released_and_expired_records_come_back_with_a_higher_count() {
        let (a, b) = (member("a"), member("b"));
        let mut sp = SharePartition::new(0);
        sp.acquire_new(&a, 0, 3, 0, &LIMITS, &Delays::new());
        let types = [
            AckType::Accept,
            AckType::Release,
            AckType::Accept,
            AckType::Accept,
        ];
        sp.acknowledge("a", 0, 3, &types, &LIMITS).unwrap();
        assert_eq!(sp.start_offset(), 1);
        assert_eq!(redeliver(&mut sp, &b, 10, 5), run(1, 1, 2));
        // b never acknowledges: its lock runs out and a gets it.
        sp.expire_locks(999, &LIMITS);
        assert!(redeliver(&mut sp, &a, 10, 999).is_empty());
        sp.expire_locks(1005, &LIMITS);
        assert_eq!(redeliver(&mut sp, &a, 10, 1005), run(1, 1, 3));
        // The third delivery was the last: released again, it is archived (done once its
        // dead letter is written).
        sp.acknowledge("a", 1, 1, &[AckType::Release], &LIMITS)
            .unwrap();
        assert_eq!(sp.start_offset(), 1);
        let archived = sp.take_archived();
        sp.letters_written(&archived);
        assert_eq!((sp.start_offset(), sp.end_offset()), (4, 4));
    }

    #[test]
    fn acknowledgements_of_records_not_held_change_nothing() {
        let (a, b) = (member("a"), member("b"));
        let mut sp = SharePartition::new(0);
        sp.acquire_new(&a, 0, 1, 0, &LIMITS, &Delays::new());
        sp.acquire_new(&b, 2, 2, 0, &LIMITS, &Delays::new());
        assert!(sp
            .acknowledge("a", 1, 2, &[AckType::Accept], &LIMITS)
            .is_err());
        assert!(sp
            .acknowledge("a", 5, 6, &[AckType::Accept], &LIMITS)
            .is_err());
        assert!(sp
            .acknowledge(
                "a",
                0,
                1,
                &[AckType::Accept, AckType::Accept, AckType::Accept],
                &LIMITS
            )
            .is_err());
        assert_eq!(sp.counts().acquired, 3, "nothing changed");
        // Rejected records are finished for good.
        sp.acknowledge("b", 2, 2, &[AckType::Reject], &LIMITS)
            .unwrap();
        sp.release_member("a", &LIMITS);
        assert_eq!(
            sp.counts(),
            Counts {
                available: 2,
                archived: 1,
                ..Counts::default()
            }
        );
        assert_eq!(redeliver(&mut sp, &b, 1, 0), run(0, 0, 2));
    }

    #[test]
    fn the_persisted_state_keeps_what_was_finished_and_frees_what_was_held() {
        let (a, b) = (member("a"), member("b"));
        let mut sp = SharePartition::new(100);
        sp.acquire_new(&a, 100, 104, 0, &LIMITS, &Delays::new());
        sp.acquire_new(&b, 105, 107, 0, &LIMITS, &Delays::new());
        let types = [
            AckType::Release,
            AckType::Accept,
            AckType::Reject,
            AckType::Accept,
            AckType::Release,
        ];
        sp.acknowledge("a", 100, 104, &types, &LIMITS).unwrap();
        // The rejected record counts as done only once its dead letter is written.
        let pending = sp.to_persisted();
        assert!(pending
            .batches
            .iter()
            .any(|b| b.first_offset <= 102 && b.last_offset >= 102 && b.state == STATE_AVAILABLE));
        let archived = sp.take_archived();
        sp.letters_written(&archived);
        let stored = sp.to_persisted();
        let mut back = SharePartition::from_persisted(&stored);
        assert_eq!((back.start_offset(), back.end_offset()), (100, 108));
        assert_eq!(back.to_persisted(), stored);
        // What b held is available again with its count; finished records never come back.
        let c = member("c");
        let mut offered = Vec::new();
        while let Some(from) = back.first_available(0) {
            offered.extend(back.acquire_available(
                &c,
                from,
                i64::MAX,
                100,
                0,
                &LIMITS,
                &Delays::new(),
            ));
        }
        assert_eq!(
            offered,
            vec![
                Acquired {
                    first_offset: 100,
                    last_offset: 100,
                    delivery_count: 2
                },
                Acquired {
                    first_offset: 104,
                    last_offset: 107,
                    delivery_count: 2
                },
            ]
        );
    }

    #[test]
    fn delayed_records_wait_without_holding_up_the_ones_behind() {
        let a = member("a");
        let mut sp = SharePartition::new(0);
        let delays = Delays::from([(1, 5000), (2, 9000)]);
        // 1 and 2 wait; 0 and 3 go now.
        assert_eq!(
            sp.acquire_new(&a, 0, 3, 1000, &LIMITS, &delays),
            vec![
                Acquired {
                    first_offset: 0,
                    last_offset: 0,
                    delivery_count: 1
                },
                Acquired {
                    first_offset: 3,
                    last_offset: 3,
                    delivery_count: 1
                },
            ]
        );
        sp.acknowledge("a", 0, 0, &[AckType::Accept], &LIMITS)
            .unwrap();
        sp.acknowledge("a", 3, 3, &[AckType::Accept], &LIMITS)
            .unwrap();
        assert_eq!(sp.first_available(4999), None);
        assert_eq!(sp.first_available(5000), Some(1));
        assert_eq!(take_first(&mut sp, &a, 5000, &delays), run(1, 1, 1));
        assert_eq!(sp.first_available(8000), None);
        assert_eq!(take_first(&mut sp, &a, 9000, &delays), run(2, 2, 1));
        assert_eq!(sp.start_offset(), 1, "in flight until acknowledged");
    }

    /// What a share fetch at `now` acquires first for `m`.
    fn take_first(
        sp: &mut SharePartition,
        m: &Arc<str>,
        now: i64,
        delays: &Delays,
    ) -> Vec<Acquired> {
        match sp.first_available(now) {
            Some(from) => sp.acquire_available(m, from, i64::MAX, 100, now, &LIMITS, delays),
            None => Vec::new(),
        }
    }

    #[test]
    fn rejected_and_exhausted_records_are_reported_as_archived() {
        let a = member("a");
        let limits = Limits {
            delivery_count_limit: 2,
            ..LIMITS
        };
        let mut sp = SharePartition::new(0);
        sp.acquire_new(&a, 0, 1, 0, &limits, &Delays::new());
        sp.acknowledge("a", 0, 1, &[AckType::Reject, AckType::Release], &limits)
            .unwrap();
        let rejected = sp.take_archived();
        assert_eq!(
            rejected,
            vec![ArchivedRecord {
                offset: 0,
                delivery_count: 1,
                reason: ArchiveReason::Rejected
            }]
        );
        assert_eq!(
            sp.start_offset(),
            0,
            "in flight until its dead letter is written"
        );
        sp.letters_written(&rejected);
        assert_eq!(sp.start_offset(), 1);
        let from = sp.first_available(0).unwrap();
        sp.acquire_available(&a, from, i64::MAX, 10, 0, &limits, &Delays::new());
        sp.expire_locks(LIMITS.lock_duration_ms, &limits);
        assert_eq!(
            sp.take_archived(),
            vec![ArchivedRecord {
                offset: 1,
                delivery_count: 2,
                reason: ArchiveReason::DeliveryLimit
            }]
        );
        assert!(sp.take_archived().is_empty());
    }

    #[test]
    fn new_records_are_taken_only_at_the_end_and_within_the_bound() {
        let a = member("a");
        let limits = Limits {
            max_in_flight: 4,
            ..LIMITS
        };
        let mut sp = SharePartition::new(0);
        assert!(
            sp.acquire_new(&a, 1, 3, 0, &limits, &Delays::new())
                .is_empty(),
            "not the end"
        );
        sp.acquire_new(&a, 0, 2, 0, &limits, &Delays::new());
        assert_eq!(sp.room(&limits), 1);
        assert!(
            sp.acquire_new(&a, 0, 2, 0, &limits, &Delays::new())
                .is_empty(),
            "taken already"
        );
    }
}

//! One transactional id's state and the transaction coordinator's decisions about it, pure
//! (no I/O): each request is checked against the state and, when accepted, gives the state
//! to write; the caller writes it to `__transaction_state` and only then applies it.

use std::collections::BTreeSet;

use crate::error::{BrokerError, Result};

/// Kafka's transaction states (their codes are stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn code(self) -> i8 {
        self as i8
    }

    pub fn from_code(code: i8) -> Option<TxnState> {
        use TxnState::*;
        [
            Empty,
            Ongoing,
            PrepareCommit,
            PrepareAbort,
            CompleteCommit,
            CompleteAbort,
            Dead,
            PrepareEpochFence,
        ]
        .get(usize::try_from(code).ok()?)
        .copied()
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        use TxnState::*;
        match self {
            Empty => "Empty",
            Ongoing => "Ongoing",
            PrepareCommit => "PrepareCommit",
            PrepareAbort => "PrepareAbort",
            CompleteCommit => "CompleteCommit",
            CompleteAbort => "CompleteAbort",
            Dead => "Dead",
            PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Markers are being written for it.
    pub fn is_preparing(self) -> bool {
        matches!(
            self,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The producer id and epoch before the last InitProducerId (a retry of it is
    /// recognised); -1 when none.
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
    /// The producer id the producer moves to when this transaction completes: an EndTxn
    /// of transactions v2 exhausted the epoch (-1: none).
    pub next_producer_id: i64,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub txn_start_ms: i64,
    pub last_update_ms: i64,
    /// A change of it is being written: other requests get CONCURRENT_TRANSACTIONS.
    pub pending: bool,
}

/// What InitProducerId does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitDecision {
    /// Write this (state Empty, the new epoch) and answer with its producer id and epoch.
    Write(TxnMetadata),
    /// Abort the open transaction first (this state, PrepareAbort with the epoch bumped,
    /// fences the old producer); the client retries (CONCURRENT_TRANSACTIONS).
    AbortFirst(TxnMetadata),
}

/// What EndTxn does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndDecision {
    /// Write this (PrepareCommit or PrepareAbort), answer, then write the markers.
    Prepare(TxnMetadata),
    /// A retry of an EndTxn that already completed: answer success.
    AlreadyDone,
}

/// The highest epoch before a producer id is replaced by a new one.
pub(crate) const LAST_EPOCH: i16 = i16::MAX - 1;

impl TxnMetadata {
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch: 0,
            last_producer_id: -1,
            last_producer_epoch: -1,
            next_producer_id: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            txn_start_ms: -1,
            last_update_ms: -1,
            pending: false,
        }
    }

    /// The request's producer id and epoch are this transaction's, and nothing is being
    /// written for it.
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<()> {
        if producer_id != self.producer_id {
            return Err(BrokerError::InvalidProducerIdMapping(format!(
                "producer id {producer_id} is not the one of transactional id {:?} ({})",
                self.transactional_id, self.producer_id
            )));
        }
        if epoch != self.producer_epoch {
            return Err(BrokerError::ProducerFenced(format!(
                "producer epoch {epoch} of transactional id {:?} was fenced by epoch {}",
                self.transactional_id, self.producer_epoch
            )));
        }
        if self.pending {
            return Err(BrokerError::ConcurrentTransactions);
        }
        Ok(())
    }

    /// InitProducerId for an existing id. `expected` is the producer's own id and epoch
    /// when it asks to recover (KIP-360); `fresh_id` gives a new producer id when the epoch
    /// is exhausted.
    pub fn init(
        &self,
        expected: Option<(i64, i16)>,
        timeout_ms: i32,
        now_ms: i64,
        fresh_id: impl FnOnce() -> Result<i64>,
    ) -> Result<InitDecision> {
        if self.pending || self.state.is_preparing() {
            return Err(BrokerError::ConcurrentTransactions);
        }
        if let Some((pid, epoch)) = expected {
            let current = pid == self.producer_id && epoch == self.producer_epoch;
            let previous = pid == self.last_producer_id && epoch == self.last_producer_epoch;
            if !current && !previous {
                return Err(BrokerError::ProducerFenced(format!(
                    "producer {pid} epoch {epoch} is not the current producer of transactional id {:?}",
                    self.transactional_id
                )));
            }
            if previous && self.state != TxnState::Ongoing {
                // A retry of an InitProducerId that was answered: the same answer again.
                return Ok(InitDecision::Write(self.clone()));
            }
        }
        let mut next = self.clone();
        next.last_update_ms = now_ms;
        if self.state == TxnState::Ongoing {
            next.producer_epoch = self.producer_epoch.saturating_add(1);
            next.state = TxnState::PrepareAbort;
            return Ok(InitDecision::AbortFirst(next));
        }
        next.last_producer_id = self.producer_id;
        next.last_producer_epoch = self.producer_epoch;
        if self.producer_epoch >= LAST_EPOCH {
            next.producer_id = fresh_id()?;
            next.producer_epoch = 0;
        } else {
            next.producer_epoch = self.producer_epoch + 1;
        }
        next.timeout_ms = timeout_ms;
        next.state = TxnState::Empty;
        next.partitions.clear();
        next.txn_start_ms = -1;
        Ok(InitDecision::Write(next))
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn): the state to write, or `None` when every
    /// partition is in the open transaction already.
    pub fn add_partitions(
        &self,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>> {
        match self.state {
            TxnState::Ongoing if partitions.iter().all(|p| self.partitions.contains(p)) => Ok(None),
            TxnState::Empty
            | TxnState::Ongoing
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort => {
                let mut next = self.clone();
                if self.state != TxnState::Ongoing {
                    next.partitions.clear();
                    next.txn_start_ms = now_ms;
                }
                next.state = TxnState::Ongoing;
                next.partitions.extend(partitions.iter().cloned());
                next.last_update_ms = now_ms;
                Ok(Some(next))
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(BrokerError::ConcurrentTransactions)
            }
            TxnState::Dead => Err(BrokerError::InvalidTxnState(format!(
                "transactional id {:?} has expired",
                self.transactional_id
            ))),
        }
    }

    /// The producer id and epoch the producer goes on with once this state is complete.
    pub fn producer_after(&self) -> (i64, i16) {
        if self.next_producer_id >= 0 {
            (self.next_producer_id, 0)
        } else {
            (self.producer_id, self.producer_epoch)
        }
    }

    /// A retry of a transactions-v2 EndTxn that completed already: the producer's id and
    /// epoch from before its bump, and the same outcome.
    pub fn is_end_retry(&self, producer_id: i64, epoch: i16, commit: bool) -> bool {
        let outcome = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        self.state == outcome
            && !self.pending
            && producer_id == self.last_producer_id
            && epoch == self.last_producer_epoch
    }

    /// EndTxn. With `bump_epoch` (transactions v2, KIP-890: EndTxn v5+) the prepared state
    /// carries the next epoch, which fences this transaction's producer epoch and is the one
    /// its markers are written with; an exhausted epoch moves the producer to `fresh_id()`.
    pub fn end(
        &self,
        commit: bool,
        now_ms: i64,
        bump_epoch: bool,
        fresh_id: impl FnOnce() -> Result<i64>,
    ) -> Result<EndDecision> {
        use TxnState::*;
        let invalid = || {
            Err(BrokerError::InvalidTxnState(format!(
                "cannot {} transactional id {:?} in state {}",
                if commit { "commit" } else { "abort" },
                self.transactional_id,
                self.state.name()
            )))
        };
        match (self.state, commit) {
            (Ongoing, _) => {
                let mut next = self.clone();
                next.state = if commit { PrepareCommit } else { PrepareAbort };
                next.last_update_ms = now_ms;
                if bump_epoch {
                    next.last_producer_id = self.producer_id;
                    next.last_producer_epoch = self.producer_epoch;
                    if self.producer_epoch >= LAST_EPOCH {
                        next.next_producer_id = fresh_id()?;
                    }
                    next.producer_epoch = self.producer_epoch.saturating_add(1);
                }
                Ok(EndDecision::Prepare(next))
            }
            (CompleteCommit, true) | (CompleteAbort, false) => Ok(EndDecision::AlreadyDone),
            (PrepareCommit, true) | (PrepareAbort, false) => {
                Err(BrokerError::ConcurrentTransactions)
            }
            _ => invalid(),
        }
    }

    /// The markers are written: the transaction is complete.
    pub fn complete(&self, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        if self.next_producer_id >= 0 {
            next.producer_id = self.next_producer_id;
            next.producer_epoch = 0;
            next.next_producer_id = -1;
        }
        next.partitions.clear();
        next.last_update_ms = now_ms;
        next
    }

    /// No transaction is open or ending.
    pub fn is_idle(&self) -> bool {
        matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// A transaction open longer than its timeout (aborted by the coordinator, which bumps
    /// the epoch so the producer cannot go on with it).
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && !self.pending
            && now_ms > self.txn_start_ms.saturating_add(self.timeout_ms as i64)
    }

    /// The state that aborts a timed-out transaction.
    pub fn abort_timed_out(&self, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.producer_epoch = self.producer_epoch.saturating_add(1);
        next.state = TxnState::PrepareAbort;
        next.last_update_ms = now_ms;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnMetadata {
        let m = TxnMetadata::new("t", 7, 1000);
        m.add_partitions(&[("a".into(), 0)], 5).unwrap().unwrap()
    }

    #[test]
    fn a_transaction_goes_from_empty_to_ongoing_to_prepared_to_complete() {
        let m = ongoing();
        assert_eq!((m.state, m.txn_start_ms), (TxnState::Ongoing, 5));
        assert_eq!(m.add_partitions(&[("a".into(), 0)], 6).unwrap(), None);
        let m = m.add_partitions(&[("b".into(), 1)], 6).unwrap().unwrap();
        assert_eq!((m.partitions.len(), m.txn_start_ms), (2, 5));
        let EndDecision::Prepare(p) = m.end(true, 7, false, || Ok(0)).unwrap() else {
            panic!()
        };
        assert_eq!(p.state, TxnState::PrepareCommit);
        assert!(matches!(
            p.add_partitions(&[("c".into(), 0)], 8),
            Err(BrokerError::ConcurrentTransactions)
        ));
        assert!(matches!(
            p.end(false, 8, false, || Ok(0)),
            Err(BrokerError::InvalidTxnState(_))
        ));
        let done = p.complete(9);
        assert_eq!(
            (done.state, done.partitions.len()),
            (TxnState::CompleteCommit, 0)
        );
        assert_eq!(
            done.end(true, 10, false, || Ok(0)).unwrap(),
            EndDecision::AlreadyDone
        );
        assert!(done.end(false, 10, false, || Ok(0)).is_err());
        let next = done
            .add_partitions(&[("c".into(), 0)], 11)
            .unwrap()
            .unwrap();
        assert_eq!((next.partitions.len(), next.txn_start_ms), (1, 11));
    }

    #[test]
    fn init_fences_the_old_producer_and_aborts_its_open_transaction_first() {
        let m = ongoing();
        let InitDecision::AbortFirst(abort) = m.init(None, 1000, 10, || Ok(99)).unwrap() else {
            panic!()
        };
        assert_eq!(
            (abort.state, abort.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        assert!(matches!(
            abort.init(None, 1000, 10, || Ok(99)),
            Err(BrokerError::ConcurrentTransactions)
        ));
        let done = abort.complete(11);
        let InitDecision::Write(fresh) = done.init(None, 1000, 12, || Ok(99)).unwrap() else {
            panic!()
        };
        assert_eq!((fresh.producer_id, fresh.producer_epoch), (7, 2));
        assert!(matches!(
            fresh.check_producer(7, 0),
            Err(BrokerError::ProducerFenced(_))
        ));
        assert!(matches!(
            fresh.check_producer(8, 2),
            Err(BrokerError::InvalidProducerIdMapping(_))
        ));
        assert!(fresh.check_producer(7, 2).is_ok());
        // KIP-360: the producer's own id and epoch, or a retry of the last answer.
        assert!(fresh.init(Some((7, 0)), 1000, 13, || Ok(99)).is_err());
        let InitDecision::Write(again) = fresh.init(Some((7, 1)), 1000, 13, || Ok(99)).unwrap()
        else {
            panic!()
        };
        assert_eq!(again.producer_epoch, 2, "a retry is answered the same");
        // An exhausted epoch moves to a new producer id.
        let mut old = fresh.clone();
        old.producer_epoch = LAST_EPOCH;
        let InitDecision::Write(new) = old.init(None, 1000, 14, || Ok(99)).unwrap() else {
            panic!()
        };
        assert_eq!((new.producer_id, new.producer_epoch), (99, 0));
    }

    #[test]
    fn transactions_v2_bump_the_epoch_on_every_end_and_retries_are_recognised() {
        let m = ongoing();
        let EndDecision::Prepare(p) = m.end(true, 7, true, || Ok(99)).unwrap() else {
            panic!()
        };
        assert_eq!(
            (p.producer_id, p.producer_epoch),
            (7, 1),
            "markers carry the new epoch"
        );
        let done = p.complete(8);
        assert_eq!(done.producer_after(), (7, 1));
        assert!(done.is_end_retry(7, 0, true));
        assert!(
            !done.is_end_retry(7, 0, false),
            "another outcome is no retry"
        );
        assert!(!done.is_end_retry(7, 1, true));
        assert!(
            done.check_producer(7, 0).is_err(),
            "the old epoch is fenced"
        );
        // The next transaction at the new epoch; an exhausted epoch moves to a new id.
        let mut next = done.add_partitions(&[("a".into(), 0)], 9).unwrap().unwrap();
        next.producer_epoch = LAST_EPOCH;
        let EndDecision::Prepare(p) = next.end(false, 10, true, || Ok(99)).unwrap() else {
            panic!()
        };
        assert_eq!((p.producer_id, p.producer_epoch), (7, i16::MAX));
        assert_eq!(p.producer_after(), (99, 0));
        let done = p.complete(11);
        assert_eq!((done.producer_id, done.producer_epoch), (99, 0));
        assert!(done.is_end_retry(7, LAST_EPOCH, false));
    }

    #[test]
    fn timeouts_and_state_codes() {
        let m = ongoing();
        assert!(!m.timed_out(1005));
        assert!(m.timed_out(1006));
        let a = m.abort_timed_out(1006);
        assert_eq!((a.state, a.producer_epoch), (TxnState::PrepareAbort, 1));
        for code in 0..8 {
            assert_eq!(TxnState::from_code(code).unwrap().code(), code);
        }
        assert!(TxnState::from_code(8).is_none());
        assert!(
            TxnMetadata::new("t", 1, 1)
                .end(true, 0, false, || Ok(0))
                .is_err(),
            "nothing to commit"
        );
    }
}

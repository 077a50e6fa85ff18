//! Producer state of one partition: per producer id, its epoch and the sequence and offset
//! ranges of its last five batches (a retried batch is recognised and answered with its
//! first offset instead of being stored twice), and its open transaction, if any: where it
//! began, which bounds the last stable offset that read_committed consumers see.
//!
//! Rebuilt from the batches' headers after a restart, starting from a snapshot written at
//! clean close and on segment roll.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::Path;

use crate::batch::BatchHeader;
use crate::error::LogError;
use crate::txn::Marker;

/// What a transaction marker would do in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerCheck {
    /// It ends the producer's open transaction.
    EndsTransaction,
    /// The producer has no open transaction here: writing it would change nothing.
    NothingOpen,
}
/// Batches remembered per producer (Kafka's max.in.flight for idempotence is 5).
const CACHED_BATCHES: usize = 5;
const SNAPSHOT_MAGIC_V1: &[u8; 4] = b"SPS1";
/// Version 2 adds each producer's open transaction and coordinator epoch.
const SNAPSHOT_MAGIC: &[u8; 4] = b"SPS2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSeq {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchSeq>,
    /// The first offset of the producer's open transaction.
    pub txn_first_offset: Option<i64>,
    /// The epoch of the transaction coordinator that wrote its last marker (-1: none).
    pub coordinator_epoch: i32,
    /// When its last batch or marker was written (ms since the Unix epoch; -1 if unknown).
    pub last_timestamp: i64,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            txn_first_offset: None,
            coordinator_epoch: -1,
            last_timestamp: -1,
        }
    }
}

/// What a check of a batch against the state decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Not idempotent (producer id -1): nothing to check.
    NotIdempotent,
    /// In sequence: append it.
    Append,
    /// A retry of a stored batch: answer with its offsets.
    Duplicate(BatchSeq),
}

/// A transaction that is not yet decided for readers: open, or ended by a marker the high
/// watermark has not passed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnstableTxn {
    pub producer_id: i64,
    /// Where its first batch is (segment base, byte position), once known.
    pub position: Option<(i64, u64)>,
    /// The offset of its marker, once written.
    pub marker_offset: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
    /// Undecided transactions by first offset: the smallest bounds the last stable offset.
    unstable: BTreeMap<i64, UnstableTxn>,
}

/// Sequence numbers wrap from i32::MAX to 0.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

fn last_seq(h: &BatchHeader) -> i32 {
    let base = h.base_sequence();
    (base as i64 + h.last_offset_delta as i64).rem_euclid(i32::MAX as i64 + 1) as i32
}

impl ProducerState {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer with its state (DescribeProducers).
    pub fn producers(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// Checks a producer's batch (header as sent) against what is known.
    pub fn check(&self, h: &BatchHeader) -> Result<SeqCheck, LogError> {
        if h.producer_id < 0 {
            return Ok(SeqCheck::NotIdempotent);
        }
        let (epoch, base) = (h.producer_epoch(), h.base_sequence());
        let entry = self.producers.get(&h.producer_id);
        if base < 0 {
            // No sequence: a coordinator's transactional write (offsets committed in a
            // transaction), fenced by epoch only.
            return match entry {
                Some(e) if epoch < e.epoch => Err(LogError::InvalidProducerEpoch {
                    producer_id: h.producer_id,
                    epoch,
                    current: e.epoch,
                }),
                _ => Ok(SeqCheck::Append),
            };
        }
        let Some(entry) = entry else {
            return if base == 0 {
                Ok(SeqCheck::Append)
            } else {
                Err(LogError::UnknownProducerId(h.producer_id))
            };
        };
        if epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if epoch > entry.epoch {
            return if base == 0 {
                Ok(SeqCheck::Append)
            } else {
                Err(LogError::OutOfOrderSequence(format!(
                    "producer {} epoch {epoch} must start at sequence 0, not {base}",
                    h.producer_id
                )))
            };
        }
        let last = last_seq(h);
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == base && b.last_seq == last)
        {
            return Ok(SeqCheck::Duplicate(*b));
        }
        let expected = entry.batches.back().map_or(0, |b| next_seq(b.last_seq));
        if base != expected {
            return Err(LogError::OutOfOrderSequence(format!(
                "producer {} sent sequence {base}, expected {expected}",
                h.producer_id
            )));
        }
        Ok(SeqCheck::Append)
    }

    /// Checks a transaction marker for `producer_id` at `epoch` from a coordinator in
    /// `coordinator_epoch`. Only a transaction open in this partition ends: without one the
    /// marker has nothing to do (`MarkerCheck::NothingOpen`; a coordinator's retry of a
    /// marker already written, or a forged one). A marker from an older producer epoch or
    /// an older coordinator is refused, and so is one more than one epoch ahead of the
    /// transaction's (the coordinator bumps the epoch at most once when it ends a
    /// transaction: transactions v2, or an abort on timeout or fencing).
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<MarkerCheck, LogError> {
        let Some(entry) = self
            .producers
            .get(&producer_id)
            .filter(|e| e.txn_first_offset.is_some())
        else {
            return Ok(MarkerCheck::NothingOpen);
        };
        if epoch > entry.epoch.saturating_add(1) {
            return Err(LogError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(LogError::TransactionCoordinatorFenced {
                coordinator_epoch,
                current: entry.coordinator_epoch,
            });
        }
        Ok(MarkerCheck::EndsTransaction)
    }

    /// Records a stored data batch (its header with the assigned base offset) written at
    /// `position` (segment base, byte position) when known. A transactional batch opens its
    /// producer's transaction if none is open.
    pub fn record(&mut self, h: &BatchHeader, position: Option<(i64, u64)>) {
        if h.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch() != entry.epoch {
            entry.epoch = h.producer_epoch();
            entry.batches.clear();
        }
        entry.last_timestamp = h.max_timestamp;
        if h.base_sequence() >= 0 {
            entry.batches.push_back(BatchSeq {
                first_seq: h.base_sequence(),
                last_seq: last_seq(h),
                first_offset: h.base_offset,
                last_offset: h.last_offset(),
            });
        }
        while entry.batches.len() > CACHED_BATCHES {
            entry.batches.pop_front();
        }
        if h.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(h.base_offset);
            self.unstable.insert(
                h.base_offset,
                UnstableTxn {
                    producer_id: h.producer_id,
                    position,
                    marker_offset: None,
                },
            );
        }
    }

    /// Records a stored marker (its header with its offset): the producer's transaction
    /// ends. Returns the first offset of the transaction it ended, if one was open. A marker
    /// in a newer producer epoch makes that the producer's epoch.
    pub fn complete(&mut self, h: &BatchHeader, marker: Marker) -> Option<i64> {
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch() > entry.epoch {
            entry.epoch = h.producer_epoch();
            entry.batches.clear();
        }
        entry.coordinator_epoch = entry.coordinator_epoch.max(marker.coordinator_epoch);
        entry.last_timestamp = h.max_timestamp;
        let first = entry.txn_first_offset.take()?;
        if let Some(t) = self.unstable.get_mut(&first) {
            t.marker_offset = Some(h.base_offset);
        }
        Some(first)
    }

    /// The high watermark reached `hw`: transactions whose marker is below it are decided.
    pub fn note_high_watermark(&mut self, hw: i64) {
        self.unstable
            .retain(|_, t| t.marker_offset.is_none_or(|m| m >= hw));
    }

    /// The first offset of the earliest undecided transaction, with its position if known.
    pub fn first_unstable(&self) -> Option<(i64, &UnstableTxn)> {
        self.unstable.iter().next().map(|(o, t)| (*o, t))
    }

    /// The last stable offset a transaction ending now leaves: the first offset of the
    /// earliest other open transaction, or past the marker at `marker_offset`.
    pub fn stable_after(&self, marker_offset: i64) -> i64 {
        self.unstable
            .iter()
            .find(|(_, t)| t.marker_offset.is_none())
            .map_or(marker_offset + 1, |(o, _)| *o)
    }

    /// Transactions whose first batch has no known position (restored from a snapshot).
    pub fn unplaced(&self) -> Vec<i64> {
        self.unstable
            .iter()
            .filter(|(_, t)| t.position.is_none())
            .map(|(o, _)| *o)
            .collect()
    }

    pub fn place(&mut self, first_offset: i64, position: (i64, u64)) {
        if let Some(t) = self.unstable.get_mut(&first_offset) {
            t.position = Some(position);
        }
    }

    /// The open transactions: (producer id, first offset).
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.unstable
            .iter()
            .filter(|(_, t)| t.marker_offset.is_none())
            .map(|(o, t)| (t.producer_id, *o))
            .collect()
    }

    /// Forgets producers whose every remembered batch lies below `log_start` (after
    /// retention or DeleteRecords), as Kafka does; those with an open transaction stay.
    pub fn drop_below(&mut self, log_start: i64) {
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some()
                || e.batches.back().is_some_and(|b| b.last_offset >= log_start)
        });
    }

    pub fn write_snapshot(&self, path: &Path, next_offset: i64) -> std::io::Result<()> {
        crate::index::write_file_synced(path, &self.snapshot_bytes(next_offset))
    }

    /// The snapshot file's contents: every producer's state as of `next_offset`.
    pub fn snapshot_bytes(&self, next_offset: i64) -> Vec<u8> {
        let mut buf = Vec::with_capacity(16 + self.producers.len() * 80);
        buf.extend_from_slice(SNAPSHOT_MAGIC);
        buf.extend_from_slice(&next_offset.to_be_bytes());
        buf.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (pid, e) in &self.producers {
            buf.extend_from_slice(&pid.to_be_bytes());
            buf.extend_from_slice(&e.epoch.to_be_bytes());
            buf.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
            buf.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            buf.extend_from_slice(&e.last_timestamp.to_be_bytes());
            buf.push(e.batches.len() as u8);
            for b in &e.batches {
                buf.extend_from_slice(&b.first_seq.to_be_bytes());
                buf.extend_from_slice(&b.last_seq.to_be_bytes());
                buf.extend_from_slice(&b.first_offset.to_be_bytes());
                buf.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_be_bytes());
        buf
    }

    /// Reads a snapshot: the state and the log offset it is valid up to. `None` if the file
    /// is missing or damaged (then the state is rebuilt from the log). Open transactions come
    /// back without positions (see `unplaced`).
    pub fn read_snapshot(path: &Path) -> Option<(ProducerState, i64)> {
        let buf = fs::read(path).ok()?;
        if buf.len() < 20 {
            return None;
        }
        let v2 = match &buf[..4] {
            m if m == SNAPSHOT_MAGIC => true,
            m if m == SNAPSHOT_MAGIC_V1 => false,
            _ => return None,
        };
        let (body, crc) = buf.split_at(buf.len() - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = Reader(&body[4..]);
        let next_offset = r.i64()?;
        let count = r.u32()?;
        let mut state = ProducerState::default();
        for _ in 0..count {
            let pid = r.i64()?;
            let mut entry = ProducerEntry {
                epoch: r.i16()?,
                ..ProducerEntry::default()
            };
            if v2 {
                entry.txn_first_offset = Some(r.i64()?).filter(|o| *o >= 0);
                entry.coordinator_epoch = r.i32()?;
                entry.last_timestamp = r.i64()?;
            }
            let n = r.u8()?;
            for _ in 0..n {
                entry.batches.push_back(BatchSeq {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                });
            }
            if let Some(first) = entry.txn_first_offset {
                state.unstable.insert(
                    first,
                    UnstableTxn {
                        producer_id: pid,
                        position: None,
                        marker_offset: None,
                    },
                );
            }
            state.producers.insert(pid, entry);
        }
        Some((state, next_offset))
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::build_idempotent_batch;

    fn header(pid: i64, epoch: i16, seq: i32, records: usize, base_offset: i64) -> BatchHeader {
        let mut b = build_idempotent_batch(pid, epoch, seq, records);
        b[0..8].copy_from_slice(&base_offset.to_be_bytes());
        BatchHeader::parse(&b)
    }

    #[test]
    fn retries_are_duplicates_and_gaps_are_refused() {
        let mut s = ProducerState::default();
        let first = header(7, 0, 0, 3, 100);
        assert_eq!(s.check(&first).unwrap(), SeqCheck::Append);
        s.record(&first, None);
        assert!(
            matches!(s.check(&header(7, 0, 0, 3, 0)).unwrap(), SeqCheck::Duplicate(b) if b.first_offset == 100)
        );
        assert_eq!(s.check(&header(7, 0, 3, 2, 0)).unwrap(), SeqCheck::Append);
        assert!(
            matches!(
                s.check(&header(7, 0, 5, 1, 0)),
                Err(LogError::OutOfOrderSequence(_))
            ),
            "a gap"
        );
        assert!(matches!(
            s.check(&header(8, 0, 4, 1, 0)),
            Err(LogError::UnknownProducerId(8))
        ));
        s.record(&header(7, 1, 0, 1, 103), None);
        assert!(
            matches!(
                s.check(&header(7, 0, 3, 1, 0)),
                Err(LogError::InvalidProducerEpoch { .. })
            ),
            "fenced"
        );
        assert!(
            s.check(&header(7, 2, 1, 1, 0)).is_err(),
            "a new epoch starts at 0"
        );
        assert_eq!(
            s.check(&header(-1, -1, -1, 1, 0)).unwrap(),
            SeqCheck::NotIdempotent
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_snapshots_round_trip() {
        let mut s = ProducerState::default();
        for i in 0..8 {
            s.record(&header(1, 0, i, 1, i as i64), None);
        }
        assert_eq!(s.entry(1).unwrap().batches.len(), 5);
        assert_eq!(s.entry(1).unwrap().batches[0].first_seq, 3);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.snapshot");
        s.write_snapshot(&p, 8).unwrap();
        let (back, offset) = ProducerState::read_snapshot(&p).unwrap();
        assert_eq!((back.entry(1), offset), (s.entry(1), 8));
        std::fs::write(&p, b"SPS2garbage").unwrap();
        assert!(ProducerState::read_snapshot(&p).is_none());
        s.drop_below(100);
        assert!(s.is_empty());
    }
}

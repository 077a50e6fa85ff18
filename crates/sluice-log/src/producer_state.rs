//! Idempotent producer state of one partition: per producer id, its epoch and the sequence
//! and offset ranges of its last five batches. A retried batch is recognised and answered
//! with its first offset instead of being stored twice.
//!
//! Rebuilt from the batches' headers after a restart, starting from a snapshot written at
//! clean close and on segment roll.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::Path;

use crate::batch::BatchHeader;
use crate::error::LogError;

/// Batches remembered per producer (Kafka's max.in.flight for idempotence is 5).
const CACHED_BATCHES: usize = 5;
const SNAPSHOT_MAGIC: &[u8; 4] = b"SPS1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSeq {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchSeq>,
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

#[derive(Debug, Clone, Default)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
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

    /// Checks a producer's batch (header as sent) against what is known.
    pub fn check(&self, h: &BatchHeader) -> Result<SeqCheck, LogError> {
        if h.producer_id < 0 {
            return Ok(SeqCheck::NotIdempotent);
        }
        let (epoch, base) = (h.producer_epoch(), h.base_sequence());
        let Some(entry) = self.producers.get(&h.producer_id) else {
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

    /// Records a stored batch (its header with the assigned base offset).
    pub fn record(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch() != entry.epoch {
            entry.epoch = h.producer_epoch();
            entry.batches.clear();
        }
        entry.batches.push_back(BatchSeq {
            first_seq: h.base_sequence(),
            last_seq: last_seq(h),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        while entry.batches.len() > CACHED_BATCHES {
            entry.batches.pop_front();
        }
    }

    /// Forgets producers whose every remembered batch lies below `log_start` (after
    /// retention or DeleteRecords), as Kafka does.
    pub fn drop_below(&mut self, log_start: i64) {
        self.producers
            .retain(|_, e| e.batches.back().is_some_and(|b| b.last_offset >= log_start));
    }

    pub fn write_snapshot(&self, path: &Path, next_offset: i64) -> std::io::Result<()> {
        crate::index::write_file_synced(path, &self.snapshot_bytes(next_offset))
    }

    /// The snapshot file's contents: every producer's state as of `next_offset`.
    pub fn snapshot_bytes(&self, next_offset: i64) -> Vec<u8> {
        let mut buf = Vec::with_capacity(16 + self.producers.len() * 64);
        buf.extend_from_slice(SNAPSHOT_MAGIC);
        buf.extend_from_slice(&next_offset.to_be_bytes());
        buf.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (pid, e) in &self.producers {
            buf.extend_from_slice(&pid.to_be_bytes());
            buf.extend_from_slice(&e.epoch.to_be_bytes());
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
    /// is missing or damaged (then the state is rebuilt from the log).
    pub fn read_snapshot(path: &Path) -> Option<(ProducerState, i64)> {
        let buf = fs::read(path).ok()?;
        if buf.len() < 20 || &buf[..4] != SNAPSHOT_MAGIC {
            return None;
        }
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
            let epoch = r.i16()?;
            let n = r.u8()?;
            let mut batches = VecDeque::new();
            for _ in 0..n {
                batches.push_back(BatchSeq {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                });
            }
            state
                .producers
                .insert(pid, ProducerEntry { epoch, batches });
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
        s.record(&first);
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
        s.record(&header(7, 1, 0, 1, 103));
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
            s.record(&header(1, 0, i, 1, i as i64));
        }
        assert_eq!(s.entry(1).unwrap().batches.len(), 5);
        assert_eq!(s.entry(1).unwrap().batches[0].first_seq, 3);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.snapshot");
        s.write_snapshot(&p, 8).unwrap();
        let (back, offset) = ProducerState::read_snapshot(&p).unwrap();
        assert_eq!((back.entry(1), offset), (s.entry(1), 8));
        std::fs::write(&p, b"SPS1garbage").unwrap();
        assert!(ProducerState::read_snapshot(&p).is_none());
        s.drop_below(100);
        assert!(s.is_empty());
    }
}

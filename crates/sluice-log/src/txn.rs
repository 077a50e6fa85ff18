//! Transactions in the log: the control batches that end a transaction (commit and abort
//! markers, written only by the broker) and the aborted-transactions index a segment keeps,
//! which read_committed fetches send so clients can drop aborted records.

use std::path::Path;

use crate::batch::{self, BatchHeader, HEADER_SIZE};

/// Attributes of a marker batch: transactional (bit 4) and control (bit 5), uncompressed.
const MARKER_ATTRIBUTES: i16 = 0x30;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    Abort,
    Commit,
}

/// What a control batch's one record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub kind: MarkerKind,
    /// The epoch of the transaction coordinator that wrote it (older coordinators are fenced).
    pub coordinator_epoch: i32,
}

/// Builds the control batch ending `producer_id`'s transaction: one record whose key is
/// (version 0, type 0 abort / 1 commit) and whose value is (version 0, coordinator epoch),
/// as Kafka writes it. Base offset 0; the log assigns it.
pub fn build_marker(
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    timestamp: i64,
) -> Vec<u8> {
    let kind: i16 = match marker.kind {
        MarkerKind::Abort => 0,
        MarkerKind::Commit => 1,
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let mut b = vec![0u8; HEADER_SIZE];
    batch::put_record(&mut b, 0, Some(&key), Some(&value));
    batch::seal_batch(&mut b, 1, timestamp, MARKER_ATTRIBUTES);
    batch::set_producer(&mut b, producer_id, producer_epoch, -1);
    b
}

/// The marker a control batch carries (`None` if it is not a readable marker).
pub fn parse_marker(batch_bytes: &[u8]) -> Option<Marker> {
    let header = BatchHeader::parse(batch_bytes.get(..HEADER_SIZE)?);
    if !header.is_control() || header.compression() != 0 {
        return None;
    }
    let records = crate::records::uncompressed_records(batch_bytes).ok()?;
    let record = records.first()?;
    let key = record.key?;
    if key.len() < 4 {
        return None;
    }
    let kind = match i16::from_be_bytes([key[2], key[3]]) {
        0 => MarkerKind::Abort,
        1 => MarkerKind::Commit,
        _ => return None,
    };
    let coordinator_epoch = record
        .value
        .and_then(|v| v.get(2..6))
        .map_or(-1, |e| i32::from_be_bytes(e.try_into().expect("4 bytes")));
    Some(Marker {
        kind,
        coordinator_epoch,
    })
}

/// Control batches are a few dozen bytes; one larger than this is not a marker.
pub const MAX_MARKER_BATCH: usize = 256;

/// One aborted transaction of a partition: its producer, the offsets from its first record
/// to its abort marker, and the last stable offset once it ended (Kafka's txnindex entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

const ENTRY_SIZE: usize = 34;

/// A segment's aborted transactions, in the order their markers were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnIndex {
    entries: Vec<AbortedTxn>,
}

impl TxnIndex {
    pub fn push(&mut self, entry: AbortedTxn) {
        self.entries.push(entry);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Forgets the entries whose marker is at or after `offset` (they are about to be
    /// rebuilt from the batches, or were cut off).
    pub fn retain_markers_below(&mut self, offset: i64) {
        self.entries.retain(|e| e.last_offset < offset);
    }

    /// Appends to `out` the entries a fetch of `[from, upto)` must name (the transaction
    /// overlaps the range); true if no later segment can hold more (an entry here was stable
    /// past the range's end, so any transaction aborted later began after it).
    pub fn collect(&self, from: i64, upto: i64, out: &mut Vec<AbortedTxn>) -> bool {
        let mut complete = false;
        for e in &self.entries {
            if e.last_offset >= from && e.first_offset < upto {
                out.push(*e);
            }
            if e.last_stable_offset > upto {
                complete = true;
            }
        }
        complete
    }

    /// The file's contents: 34 bytes an entry, as Kafka's `.txnindex` (version 0).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.entries.len() * ENTRY_SIZE);
        for e in &self.entries {
            buf.extend_from_slice(&0i16.to_be_bytes());
            buf.extend_from_slice(&e.producer_id.to_be_bytes());
            buf.extend_from_slice(&e.first_offset.to_be_bytes());
            buf.extend_from_slice(&e.last_offset.to_be_bytes());
            buf.extend_from_slice(&e.last_stable_offset.to_be_bytes());
        }
        buf
    }

    /// Reads a `.txnindex` file; a missing file is an empty index, a torn last entry is
    /// dropped (it is rebuilt from the batches by recovery).
    pub fn read_from(path: &Path) -> TxnIndex {
        let Ok(buf) = std::fs::read(path) else {
            return TxnIndex::default();
        };
        let at = |c: &[u8], i: usize| i64::from_be_bytes(c[i..i + 8].try_into().expect("8 bytes"));
        let entries = buf
            .chunks_exact(ENTRY_SIZE)
            .filter(|c| c[0] == 0 && c[1] == 0)
            .map(|c| AbortedTxn {
                producer_id: at(c, 2),
                first_offset: at(c, 10),
                last_offset: at(c, 18),
                last_stable_offset: at(c, 26),
            })
            .collect();
        TxnIndex { entries }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_data_batches_are_not_markers() {
        let m = Marker {
            kind: MarkerKind::Commit,
            coordinator_epoch: 7,
        };
        let b = build_marker(42, 3, m, 1_000);
        let h = BatchHeader::parse(&b);
        assert!(h.is_control() && h.is_transactional());
        assert_eq!(
            (h.producer_id, h.producer_epoch(), h.record_count),
            (42, 3, 1)
        );
        assert!(batch::stored_batch_is_intact(&b));
        assert_eq!(parse_marker(&b), Some(m));
        let abort = build_marker(
            1,
            0,
            Marker {
                kind: MarkerKind::Abort,
                coordinator_epoch: 0,
            },
            0,
        );
        assert_eq!(parse_marker(&abort).unwrap().kind, MarkerKind::Abort);
        assert!(b.len() < MAX_MARKER_BATCH);
        assert_eq!(
            parse_marker(&batch::build_batch(0, &[(None, Some(b"x"))])),
            None
        );
    }

    #[test]
    fn index_collects_overlapping_transactions_and_round_trips() {
        let mut idx = TxnIndex::default();
        let e = |p, f, l, s| AbortedTxn {
            producer_id: p,
            first_offset: f,
            last_offset: l,
            last_stable_offset: s,
        };
        idx.push(e(1, 0, 10, 11));
        idx.push(e(2, 5, 20, 21));
        idx.push(e(3, 30, 40, 41));
        let mut out = Vec::new();
        assert!(
            idx.collect(12, 25, &mut out),
            "transaction 3 was stable past 25"
        );
        assert_eq!(out, vec![e(2, 5, 20, 21)]);
        out.clear();
        assert!(
            idx.collect(0, 6, &mut out),
            "an entry stable past 6 ends the search"
        );
        assert_eq!(out.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.txnindex");
        let mut bytes = idx.to_bytes();
        bytes.extend_from_slice(&[0, 0, 1]); // a torn entry
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(TxnIndex::read_from(&p), idx);
        idx.retain_markers_below(20);
        assert_eq!(idx.entries(), &[e(1, 0, 10, 11)]);
        assert!(TxnIndex::read_from(&dir.path().join("missing")).is_empty());
    }
}

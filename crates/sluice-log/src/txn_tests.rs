//! Transactions in the log: the last stable offset, the aborted-transactions index, and both
//! after a clean close, a crash, a truncation and compaction.

use crate::batch::{self, validate_batches, BatchHeader};
use crate::cleaner::{self, CleanerConfig};
use crate::txn::{build_marker, AbortedTxn, Marker, MarkerKind};
use crate::{Log, LogConfig, ReadBound};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

/// A transactional batch of `n` records with keys `key-0..` from producer `pid`.
fn txn_batch(pid: i64, seq: i32, n: usize, key: &str) -> Vec<u8> {
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("{key}-{i}").into_bytes()).collect();
    let records: Vec<batch::KeyValue<'_>> = keys
        .iter()
        .map(|k| (Some(k.as_slice()), Some(&b"v"[..])))
        .collect();
    let mut b = batch::build_batch(1_000, &records);
    batch::seal_batch(&mut b, n as i32, 1_000, 0x10);
    batch::set_producer(&mut b, pid, 0, seq);
    b
}

fn write(log: &mut Log, b: &[u8]) -> i64 {
    let summary = validate_batches(b, 1 << 20).unwrap();
    let info = log.append(b, &summary, 0, 1_000).unwrap();
    log.mark_flushed(info.end);
    log.advance_high_watermark(info.end);
    info.base_offset
}

fn end_txn(log: &mut Log, pid: i64, kind: MarkerKind) -> i64 {
    let m = build_marker(
        pid,
        0,
        Marker {
            kind,
            coordinator_epoch: 0,
        },
        1_000,
    );
    write(log, &m)
}

/// Base offsets of the batches a read with `bound` returns from `offset`.
fn batches(log: &Log, offset: i64, bound: ReadBound) -> Vec<i64> {
    let Some(slice) = log.read_bounded(offset, 1 << 20, bound).unwrap() else {
        return Vec::new();
    };
    let bytes = slice.read_to_vec().unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + batch::HEADER_SIZE <= bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..]);
        out.push(h.base_offset);
        pos += h.size();
    }
    out
}

fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

#[test]
fn the_last_stable_offset_waits_for_the_earliest_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let a0 = write(&mut log, &txn_batch(1, 0, 2, "a")); // 0..=1
    let b0 = write(&mut log, &txn_batch(2, 0, 2, "b")); // 2..=3
    write(&mut log, &txn_batch(1, 2, 1, "a2")); // 4
    assert_eq!((a0, b0), (0, 2));
    assert_eq!(log.last_stable().offset, 0);
    assert!(batches(&log, 0, ReadBound::LastStable).is_empty());
    assert_eq!(batches(&log, 0, ReadBound::HighWatermark), vec![0, 2, 4]);
    let abort_at = end_txn(&mut log, 1, MarkerKind::Abort); // 5
    assert_eq!(abort_at, 5);
    assert_eq!(
        log.last_stable().offset,
        2,
        "producer 2's transaction is still open"
    );
    let commit_at = end_txn(&mut log, 2, MarkerKind::Commit); // 6
    assert_eq!(log.last_stable().offset, 7);
    assert_eq!(
        batches(&log, 0, ReadBound::LastStable),
        vec![0, 2, 4, 5, commit_at]
    );
    assert_eq!(log.aborted_transactions(0, 7), vec![aborted(1, 0, 5, 2)]);
    assert!(log.aborted_transactions(6, 7).is_empty());
    assert!(log.producer_state().open_transactions().is_empty());
    // A marker below the high watermark decides; one above it does not yet.
    write(&mut log, &txn_batch(1, 3, 1, "a3")); // 7
    let m = build_marker(
        1,
        0,
        Marker {
            kind: MarkerKind::Commit,
            coordinator_epoch: 0,
        },
        1_000,
    );
    let summary = validate_batches(&m, 1 << 20).unwrap();
    let info = log.append(&m, &summary, 0, 1_000).unwrap(); // 8, not yet visible
    assert_eq!(log.last_stable().offset, 7);
    log.advance_high_watermark(info.end);
    assert_eq!(log.last_stable().offset, 9);
}

#[test]
fn open_transactions_and_the_index_survive_a_clean_close_and_a_crash() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(), 0).unwrap();
        let mut expected = Vec::new();
        // Enough transactions to roll several segments, every other one aborted.
        let mut offset_of_open = None;
        for i in 0..30i64 {
            let first = write(&mut log, &txn_batch(i, 0, 3, "k"));
            if i == 29 {
                offset_of_open = Some(first);
                break;
            }
            let kind = if i % 2 == 0 {
                MarkerKind::Abort
            } else {
                MarkerKind::Commit
            };
            let at = end_txn(&mut log, i, kind);
            if kind == MarkerKind::Abort {
                expected.push(aborted(i, first, at, at + 1));
            }
        }
        assert!(log.segment_count() > 3);
        let end = log.log_end_offset();
        assert_eq!(log.aborted_transactions(0, end), expected);
        if clean {
            log.close().unwrap();
        }
        drop(log);
        if !clean {
            // Without a snapshot every segment's index is rebuilt from the batches, and
            // saved: a clean reopen afterwards (no replay) still has them.
            std::fs::remove_file(dir.path().join("producer.snapshot")).unwrap();
            for f in std::fs::read_dir(dir.path()).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|e| e == "txnindex") {
                    std::fs::remove_file(f).unwrap();
                }
            }
            let mut log = Log::open(dir.path(), config(), 0).unwrap();
            assert_eq!(log.aborted_transactions(0, end), expected, "rebuilt");
            log.close().unwrap();
        }
        let mut log = Log::open(dir.path(), config(), 0).unwrap();
        let end_pos = log.end();
        log.advance_high_watermark(end_pos);
        assert_eq!(log.aborted_transactions(0, end), expected, "clean={clean}");
        assert_eq!(
            Some(log.last_stable().offset),
            offset_of_open,
            "clean={clean}"
        );
        assert_eq!(
            batches(&log, offset_of_open.unwrap(), ReadBound::LastStable),
            Vec::<i64>::new()
        );
        // The open transaction ends after the restart.
        end_txn(&mut log, 29, MarkerKind::Abort);
        assert_eq!(log.last_stable().offset, log.log_end_offset());
        assert_eq!(log.aborted_transactions(end - 3, end + 1).len(), 1);
        // A follower cutting its tail forgets the markers it cut.
        log.truncate_to(offset_of_open.unwrap(), 0).unwrap();
        assert_eq!(log.aborted_transactions(0, end), expected);
        assert_eq!(log.last_stable().offset, log.log_end_offset());
    }
}

#[test]
fn compaction_drops_aborted_records_keeps_markers_and_stops_at_open_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    // Committed values for keys k-0..k-4, then an aborted rewrite of the same keys, then
    // an open transaction, then enough plain batches to leave the rest non-active.
    write(&mut log, &txn_batch(1, 0, 5, "k"));
    let commit = end_txn(&mut log, 1, MarkerKind::Commit);
    write(&mut log, &txn_batch(2, 0, 5, "k"));
    let abort = end_txn(&mut log, 2, MarkerKind::Abort);
    for i in 0..40 {
        let key = format!("plain-{i}");
        let b = batch::build_batch(1_000, &[(Some(key.as_bytes()), Some(&[0u8; 64][..]))]);
        write(&mut log, &b);
    }
    let cleaner_config = CleanerConfig {
        delete_retention_ms: i64::MAX / 2,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX / 2,
        min_cleanable_dirty_ratio: 0.0,
        max_map_entries: 10_000,
        max_uncompressed_bytes: 1 << 20,
    };
    let plan = log.plan_cleaning(2_000, &cleaner_config).unwrap();
    assert_eq!(plan.aborted.len(), 1);
    let cleaned = cleaner::clean(&plan, &cleaner_config, 2_000).unwrap();
    log.install_cleaned(cleaned, 2_000).unwrap();
    let all = batches(&log, 0, ReadBound::HighWatermark);
    assert!(all.contains(&0), "the committed values stay");
    assert!(
        all.contains(&commit) && all.contains(&abort),
        "markers stay"
    );
    assert!(!all.contains(&(commit + 1)), "the aborted batch is gone");
    assert_eq!(log.aborted_transactions(0, abort + 1).len(), 1);

    // An open transaction: nothing from it on is cleaned.
    let open = write(&mut log, &txn_batch(3, 0, 1, "k"));
    for i in 0..40 {
        let key = format!("later-{i}");
        let b = batch::build_batch(1_000, &[(Some(key.as_bytes()), Some(&[0u8; 64][..]))]);
        write(&mut log, &b);
    }
    if let Some(plan) = log.plan_cleaning(3_000, &cleaner_config) {
        for seg in &plan.segments {
            let bytes = std::fs::read(&seg.path).unwrap();
            let mut pos = 0;
            while pos + batch::HEADER_SIZE <= bytes.len() {
                let h = BatchHeader::parse(&bytes[pos..]);
                assert!(
                    h.last_offset() < open,
                    "a planned segment holds the open transaction"
                );
                pos += h.size();
            }
        }
    }
}

/// A marker at `epoch` from coordinator epoch `coordinator_epoch`, as the log answers it.
fn try_marker(
    log: &mut Log,
    pid: i64,
    epoch: i16,
    coordinator_epoch: i32,
) -> crate::Result<crate::AppendInfo> {
    let m = build_marker(
        pid,
        epoch,
        Marker {
            kind: MarkerKind::Abort,
            coordinator_epoch,
        },
        1_000,
    );
    let summary = validate_batches(&m, 1 << 20).unwrap();
    log.append(&m, &summary, 0, 1_000)
}

#[test]
fn a_marker_ends_only_an_open_transaction_of_its_producer_one_epoch_bump_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    // No transaction of producer 7 is open: a marker changes nothing (a retry, or forged).
    let before = log.log_end_offset();
    let info = try_marker(&mut log, 7, 5, 0).unwrap();
    assert!(info.duplicate);
    assert_eq!(log.log_end_offset(), before);
    assert!(log.producer_state().entry(7).is_none());
    // Producer 7 opens a transaction at epoch 0.
    let first = write(&mut log, &txn_batch(7, 0, 2, "k"));
    let open_end = log.log_end_offset();
    // Two epochs ahead, or from an older coordinator, is refused and leaves it open.
    assert!(matches!(
        try_marker(&mut log, 7, 2, 3),
        Err(crate::LogError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(log.log_end_offset(), open_end);
    assert_eq!(log.last_stable().offset, first);
    // The coordinator's marker (one epoch bump, transactions v2) ends it.
    let info = try_marker(&mut log, 7, 1, 3).unwrap();
    assert!(!info.duplicate);
    log.mark_flushed(info.end);
    log.advance_high_watermark(info.end);
    assert_eq!(log.last_stable().offset, log.log_end_offset());
    // Its retry changes nothing; an older coordinator's is refused once the producer has a
    // transaction open again.
    assert!(try_marker(&mut log, 7, 1, 3).unwrap().duplicate);
    write(&mut log, &txn_batch_at(7, 1, 0, "k2"));
    assert!(matches!(
        try_marker(&mut log, 7, 1, 2),
        Err(crate::LogError::TransactionCoordinatorFenced { .. })
    ));
}

/// `txn_batch` at producer epoch `epoch`.
fn txn_batch_at(pid: i64, epoch: i16, seq: i32, key: &str) -> Vec<u8> {
    let mut b = txn_batch(pid, seq, 1, key);
    batch::set_producer(&mut b, pid, epoch, seq);
    b
}

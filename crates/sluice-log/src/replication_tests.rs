//! The log primitives replication builds on: the leader-epoch cache, the follower's append
//! that keeps the leader's offsets, truncation of a divergent tail, reads to the log end.

use proptest::prelude::*;

use crate::batch::{build_batch, validate_batches, BatchHeader};
use crate::{Log, LogConfig, ReadBound};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// A leader's append in `epoch` of `count` records of `size` bytes; returns the base offset.
fn lead(log: &mut Log, epoch: i32, count: usize, size: usize) -> i64 {
    let value = vec![epoch as u8; size];
    let records: Vec<_> = (0..count).map(|_| (None, Some(value.as_slice()))).collect();
    let batch = build_batch(1_000, &records);
    let summary = validate_batches(&batch, 1 << 20).unwrap();
    let info = log.append(&batch, &summary, epoch, 1_000).unwrap();
    log.mark_flushed(info.end);
    log.advance_high_watermark(info.end);
    info.base_offset
}

/// Copies what `leader` has after `follower`'s end, as a follower's fetches would.
fn replicate(leader: &Log, follower: &mut Log) {
    loop {
        let from = follower.log_end_offset();
        let Some(slice) = leader.read_bounded(from, 700, ReadBound::LogEnd).unwrap() else {
            return;
        };
        let bytes = slice.read_to_vec().unwrap();
        // A fetch may end inside a batch: only whole batches are appended.
        let mut whole = 0;
        while whole + 61 <= bytes.len() {
            let size = BatchHeader::parse(&bytes[whole..]).size();
            if whole + size > bytes.len() {
                break;
            }
            whole += size;
        }
        let summary = validate_batches(&bytes[..whole], 1 << 20).unwrap();
        follower
            .append_replicated(&bytes[..whole], &summary, 1_000)
            .unwrap();
    }
}

/// Unlinks what a truncation dropped (index files of a segment may never have been written).
fn unlink(files: Vec<std::path::PathBuf>) {
    for f in files {
        match std::fs::remove_file(&f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{}: {e}", f.display()),
            _ => {}
        }
    }
}

/// Every batch's (base offset, leader epoch, bytes) from the log start, to the log end.
fn batches(log: &Log) -> Vec<(i64, i32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log
        .read_bounded(offset, 1 << 20, ReadBound::LogEnd)
        .unwrap()
    {
        let bytes = slice.read_to_vec().unwrap();
        let mut pos = 0;
        while pos + 61 <= bytes.len() {
            let h = BatchHeader::parse(&bytes[pos..]);
            out.push((
                h.base_offset,
                h.partition_leader_epoch,
                bytes[pos..pos + h.size()].to_vec(),
            ));
            offset = h.last_offset() + 1;
            pos += h.size();
        }
    }
    out
}

#[test]
fn a_follower_copies_the_leaders_batches_and_epochs_exactly() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = Log::open(ld.path(), config(), 0).unwrap();
    let mut follower = Log::open(fd.path(), config(), 0).unwrap();
    for epoch in [0, 0, 3, 3, 3, 7] {
        lead(&mut leader, epoch, 4, 90);
    }
    replicate(&leader, &mut follower);
    assert_eq!(batches(&follower), batches(&leader));
    assert_eq!(follower.epochs().entries(), &[(0, 0), (3, 8), (7, 20)]);
    assert_eq!(follower.end_offset_for_epoch(3), (3, 20));
    assert_eq!(follower.end_offset_for_epoch(5), (3, 20));
    assert_eq!(follower.end_offset_for_epoch(7), (7, 24));
    // Consumers of the follower see nothing it has not been told is committed.
    assert!(follower.read(0, 1 << 20).unwrap().is_none());
    // A batch that does not follow the log end is refused.
    let stray = build_batch(1, &[(None, Some(b"x".as_slice()))]);
    let summary = validate_batches(&stray, 1 << 20).unwrap();
    assert!(follower.append_replicated(&stray, &summary, 1).is_err());
    // The cache survives a restart.
    drop(follower);
    let follower = Log::open(fd.path(), config(), 0).unwrap();
    assert_eq!(follower.epochs().entries(), &[(0, 0), (3, 8), (7, 20)]);
    assert_eq!(follower.log_end_offset(), 24);
}

#[test]
fn a_divergent_tail_is_truncated_and_replaced_by_the_new_leaders() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut old_leader = Log::open(ld.path(), config(), 0).unwrap();
    let mut new_leader = Log::open(fd.path(), config(), 0).unwrap();
    for _ in 0..5 {
        lead(&mut old_leader, 1, 3, 100);
    }
    replicate(&old_leader, &mut new_leader);
    // The old leader appends in epoch 1 what never reached the other; the other becomes
    // leader in epoch 2 and appends its own.
    for _ in 0..4 {
        lead(&mut old_leader, 1, 3, 100);
    }
    for _ in 0..2 {
        lead(&mut new_leader, 2, 5, 40);
    }
    // The old leader asks where epoch 1 ends on the new leader and cuts its log there.
    let (epoch, end) = new_leader.end_offset_for_epoch(1);
    assert_eq!((epoch, end), (1, 15));
    unlink(old_leader.truncate_to(end, 2_000).unwrap());
    assert_eq!(old_leader.log_end_offset(), 15);
    assert!(old_leader.high_watermark() <= 15);
    assert_eq!(old_leader.epochs().entries(), &[(1, 0)]);
    replicate(&new_leader, &mut old_leader);
    assert_eq!(batches(&old_leader), batches(&new_leader));
    // After a restart (no clean shutdown) the truncated log is what it was.
    let before = batches(&old_leader);
    drop(old_leader);
    let old_leader = Log::open(ld.path(), config(), 0).unwrap();
    assert_eq!(batches(&old_leader), before);
    assert_eq!(old_leader.epochs().entries(), &[(1, 0), (2, 15)]);
}

#[test]
fn truncation_below_the_log_start_empties_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    for _ in 0..10 {
        lead(&mut log, 0, 2, 200);
    }
    unlink(log.truncate_to(0, 1).unwrap());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert!(log.epochs().entries().is_empty());
    lead(&mut log, 4, 1, 10);
    assert_eq!(log.epochs().entries(), &[(4, 0)]);
}

#[test]
fn a_new_leader_that_wrote_nothing_still_shows_where_an_old_tail_diverges() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut old_leader = Log::open(ld.path(), config(), 0).unwrap();
    let mut new_leader = Log::open(fd.path(), config(), 0).unwrap();
    lead(&mut old_leader, 1, 3, 100);
    replicate(&old_leader, &mut new_leader);
    lead(&mut old_leader, 1, 3, 100);
    // Epoch 3 begins at the new leader's log end before it writes anything.
    new_leader.begin_leader_epoch(3).unwrap();
    assert_eq!(new_leader.end_offset_for_epoch(1), (1, 3));
    unlink(old_leader.truncate_to(3, 2_000).unwrap());
    assert_eq!(old_leader.log_end_offset(), 3);

    // The old leader is elected in epoch 5 and deposed before writing: its empty epoch goes
    // when the next leader (which never had it) says its log ends where it already does.
    old_leader.begin_leader_epoch(5).unwrap();
    assert_eq!(old_leader.epochs().entries(), &[(1, 0), (5, 3)]);
    // The next leader begins epoch 6 where its empty epoch 3 began: 3 is superseded.
    new_leader.begin_leader_epoch(6).unwrap();
    assert_eq!(new_leader.end_offset_for_epoch(5), (1, 3));
    assert!(old_leader.truncate_to(3, 2_000).unwrap().is_empty());
    assert_eq!(old_leader.epochs().entries(), &[(1, 0)]);
    // Epoch 0 (a partition's first leader) writes no entry.
    let fresh = tempfile::tempdir().unwrap();
    let mut first = Log::open(fresh.path(), config(), 0).unwrap();
    first.begin_leader_epoch(0).unwrap();
    assert!(first.epochs().entries().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever the leader's history, a follower that replicates it, diverges, truncates to
    /// where the new leader's epoch says and replicates again ends up byte-identical.
    #[test]
    fn replicate_diverge_truncate_converge(
        common in prop::collection::vec((1usize..4, 1usize..300), 1..12),
        stray in prop::collection::vec((1usize..4, 1usize..300), 1..8),
        fresh in prop::collection::vec((1usize..4, 1usize..300), 0..8),
    ) {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = Log::open(ld.path(), config(), 0).unwrap();
        let mut b = Log::open(fd.path(), config(), 0).unwrap();
        for (count, size) in &common {
            lead(&mut a, 1, *count, *size);
        }
        replicate(&a, &mut b);
        for (count, size) in &stray {
            lead(&mut a, 1, *count, *size);
        }
        b.begin_leader_epoch(2).unwrap();
        for (count, size) in &fresh {
            lead(&mut b, 2, *count, *size);
        }
        let (_, end) = b.end_offset_for_epoch(1);
        unlink(a.truncate_to(end, 5).unwrap());
        replicate(&b, &mut a);
        prop_assert_eq!(batches(&a), batches(&b));
        // An epoch that holds nothing yet is the leader's alone: fetches carry no batch of it.
        let written: Vec<_> = b.epochs().entries().iter().copied()
            .filter(|&(_, start)| start < b.log_end_offset())
            .collect();
        prop_assert_eq!(a.epochs().entries(), written.as_slice());
    }
}

/// The follower's append in three steps (the broker writes without the log's lock): until
/// committed nothing is visible and nothing else may change the log; a failed write is undone.
#[test]
fn a_replicated_write_is_invisible_until_committed_and_a_failed_one_is_undone() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = Log::open(&dir.path().join("leader"), config(), 0).unwrap();
    let mut follower = Log::open(&dir.path().join("follower"), config(), 0).unwrap();
    lead(&mut leader, 1, 3, 10);
    let slice = leader
        .read_bounded(0, 1 << 20, ReadBound::LogEnd)
        .unwrap()
        .unwrap();
    let bytes = slice.read_to_vec().unwrap();
    let summary = validate_batches(&bytes, 1 << 20).unwrap();

    let crate::PreparedReplicated::Write(pending) = follower
        .prepare_replicated(&bytes, &summary, 1_000)
        .unwrap()
    else {
        panic!("a batch to write was planned as empty");
    };
    assert_eq!(follower.log_end_offset(), 0, "visible before its commit");
    assert!(follower
        .prepare_replicated(&bytes, &summary, 1_000)
        .is_err());
    assert!(follower.truncate_to(0, 1_000).is_err());
    let failed = Err(std::io::Error::other("disk full"));
    assert!(follower.commit_replicated(pending, &bytes, failed).is_err());
    assert_eq!(
        follower.log_end_offset(),
        0,
        "a failed write left offsets behind"
    );

    let crate::PreparedReplicated::Write(pending) = follower
        .prepare_replicated(&bytes, &summary, 1_000)
        .unwrap()
    else {
        panic!("a batch to write was planned as empty");
    };
    let written = pending.write(&bytes);
    let info = follower
        .commit_replicated(pending, &bytes, written)
        .unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 2));
    assert_eq!(follower.log_end_offset(), 3);
    assert_eq!(follower.epochs().latest_epoch(), Some(1));
    let copied = follower
        .read_bounded(0, 1 << 20, ReadBound::LogEnd)
        .unwrap()
        .unwrap();
    assert_eq!(copied.read_to_vec().unwrap(), bytes);
}

//! Round-trip, roll and recovery tests of the log, including property tests.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use proptest::prelude::*;

use crate::batch::{build_batch, validate_batches, BatchHeader};
use crate::{Log, LogConfig, LogError};

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn append(log: &mut Log, ts: i64, values: &[&[u8]]) -> i64 {
    let records: Vec<_> = values.iter().map(|v| (None, Some(*v))).collect();
    let batch = build_batch(ts, &records);
    let summary = validate_batches(&batch, 1 << 20).unwrap();
    let info = log.append(&batch, &summary, 0, ts).unwrap();
    log.mark_flushed(info.end);
    log.advance_high_watermark(info.end);
    info.base_offset
}

/// Reads every batch from `offset` on and returns (base offset, record count) pairs.
fn read_all(log: &Log, mut offset: i64) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    while let Some(slice) = log.read(offset, 1 << 20).unwrap() {
        let bytes = slice.read_to_vec().unwrap();
        let mut pos = 0;
        while pos + 61 <= bytes.len() {
            let h = BatchHeader::parse(&bytes[pos..]);
            if pos + h.size() > bytes.len() {
                break;
            }
            out.push((h.base_offset, h.record_count));
            offset = h.last_offset() + 1;
            pos += h.size();
        }
    }
    out
}

#[test]
fn append_read_roll_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    let mut expected = Vec::new();
    for i in 0..100 {
        let v = vec![i as u8; 100];
        let base = append(&mut log, 1000 + i, &[&v, &v]);
        assert_eq!(base, i * 2);
        expected.push((base, 2));
    }
    assert!(log.segment_count() > 3, "small segments roll");
    assert_eq!(read_all(&log, 0), expected);
    // A read inside a batch starts at that batch.
    assert_eq!(read_all(&log, 51)[0], (50, 2));
    assert!(matches!(
        log.read(201, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(200, 100).unwrap().is_none());
    assert_eq!(
        log.offset_for_timestamp(1050).unwrap().unwrap().resolve().0,
        100
    );
    assert!(log.offset_for_timestamp(99_999).unwrap().is_none());
    log.close().unwrap();

    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 200);
    assert_eq!(read_all(&log, 0), expected);
    assert_eq!(
        log.offset_for_timestamp(1050).unwrap().unwrap().resolve().0,
        100
    );
}

#[test]
fn reads_stop_at_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    append(&mut log, 1, &[b"a"]);
    let batch = build_batch(2, &[(None, Some(b"b"))]);
    let summary = validate_batches(&batch, 1 << 20).unwrap();
    log.append(&batch, &summary, 0, 2).unwrap();
    assert_eq!(log.high_watermark(), 1);
    assert_eq!(read_all(&log, 0), vec![(0, 1)]);
    assert!(
        log.read(1, 100).unwrap().is_none(),
        "unflushed data is invisible"
    );
}

#[test]
fn first_batch_is_returned_whole_even_if_over_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let big = vec![7u8; 5000];
    append(&mut log, 1, &[&big]);
    append(&mut log, 1, &[&big]);
    let slice = log.read(0, 100).unwrap().unwrap();
    assert_eq!(
        slice.len,
        BatchHeader::parse(&slice.read_to_vec().unwrap()).size()
    );
}

#[test]
fn a_read_says_through_which_offset_its_batches_are_whole() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    // 40 batches of 3 records of 100 bytes (offsets 0..120), one segment.
    for i in 0..40 {
        let v = vec![i as u8; 100];
        append(&mut log, 1, &[&v, &v, &v]);
    }
    let whole = log.read(0, 1 << 20).unwrap().unwrap();
    assert_eq!(whole.whole_through, Some(119), "up to the high watermark");
    let batch = whole.len / 40;
    // Cut inside the eighth batch: seven are whole (offsets 0..=20).
    let cut = log.read(0, batch * 7 + batch / 2).unwrap().unwrap();
    assert_eq!(cut.whole_through, Some(20));
    // From the middle of a batch, cut after exactly two batches.
    let mid = log.read(31, batch * 2).unwrap().unwrap();
    assert_eq!(mid.whole_through, Some(35));
    // A first batch larger than the limit is sent whole.
    let one = log.read(60, 10).unwrap().unwrap();
    assert_eq!(one.whole_through, Some(62));
}

#[test]
fn crash_without_clean_close_recovers_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    for i in 0..10 {
        append(&mut log, i, &[b"hello", b"world"]);
    }
    let path = log.segment_paths().pop().unwrap();
    drop(log); // no close: like a crash
    let len = std::fs::metadata(&path).unwrap().len();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 7).unwrap(); // tear the last batch
    drop(f);
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 18);
    assert_eq!(read_all(&log, 0).len(), 9);
    assert_eq!(
        append(&mut log, 1, &[b"again"]),
        18,
        "appends continue after the cut"
    );
}

/// Flips one bit inside batch `n` (0-based) of a log of equal-sized batches.
fn flip_bit_in_batch(path: &std::path::Path, n: u64) -> u64 {
    let batch_size = BatchHeader::parse(&std::fs::read(path).unwrap()).size() as u64;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let at = batch_size * n + 65; // inside the batch's records
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x10], at).unwrap();
    batch_size
}

#[test]
fn a_damaged_batch_is_cut_out_and_the_intact_ones_after_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    for i in 0..5 {
        append(&mut log, i, &[b"0123456789"]);
    }
    let path = log.segment_paths().pop().unwrap();
    drop(log); // no clean shutdown: recovery checks every batch
    let before = crate::corruptions_found();
    let batch_size = flip_bit_in_batch(&path, 3);
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert!(crate::corruptions_found() > before);
    assert_eq!(log.log_end_offset(), 5, "the fifth batch is kept");
    let offsets: Vec<i64> = read_all(&log, 0).iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, vec![0, 1, 2, 4]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), batch_size * 4);
    assert_eq!(
        append(&mut log, 9, &[b"more"]),
        5,
        "appends continue after it"
    );
    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn a_damaged_last_batch_is_cut_as_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    for i in 0..5 {
        append(&mut log, i, &[b"0123456789"]);
    }
    let path = log.segment_paths().pop().unwrap();
    drop(log);
    let batch_size = flip_bit_in_batch(&path, 4);
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), batch_size * 4);
}

#[test]
fn log_append_time_is_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        log_append_time: true,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    let batch = build_batch(5, &[(None, Some(b"x"))]);
    let summary = validate_batches(&batch, 1 << 20).unwrap();
    let info = log.append(&batch, &summary, 0, 777).unwrap();
    log.advance_high_watermark(info.end);
    assert_eq!(info.log_append_time, 777);
    let bytes = log.read(0, 1000).unwrap().unwrap().read_to_vec().unwrap();
    assert_eq!(BatchHeader::parse(&bytes).max_timestamp, 777);
    assert!(crate::batch::stored_batch_is_intact(&bytes));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever is appended reads back in order, before and after a reopen, clean or not.
    #[test]
    fn round_trip(batches in prop::collection::vec(prop::collection::vec(0usize..600, 1..6), 1..40), clean in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
        let mut expected = Vec::new();
        for (i, sizes) in batches.iter().enumerate() {
            let values: Vec<Vec<u8>> = sizes.iter().map(|s| vec![i as u8; *s]).collect();
            let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
            let base = append(&mut log, i as i64, &refs);
            expected.push((base, sizes.len() as i32));
        }
        prop_assert_eq!(read_all(&log, 0), expected.clone());
        if clean { log.close().unwrap(); } else { drop(log); }
        let log = Log::open(dir.path(), small_config(), 0).unwrap();
        prop_assert_eq!(read_all(&log, 0), expected);
    }

    /// Cutting the active segment anywhere keeps exactly the batches that end before the cut.
    #[test]
    fn truncated_tail_recovers_to_last_whole_batch(n in 1usize..30, cut_frac in 0.0f64..1.0) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
        let mut ends = Vec::new();
        for i in 0..n {
            append(&mut log, i as i64, &[&vec![1u8; 10 + i * 13]]);
            ends.push(log.end().position);
        }
        let path = log.segment_paths().pop().unwrap();
        drop(log);
        let len = std::fs::metadata(&path).unwrap().len();
        let cut = (len as f64 * cut_frac) as u64;
        OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();
        let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
        let kept = ends.iter().filter(|&&e| e <= cut).count();
        prop_assert_eq!(log.log_end_offset(), kept as i64);
        prop_assert_eq!(read_all(&log, 0).len(), kept);
    }
}

#[test]
fn segments_roll_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    let batch = build_batch(1, &[(None, Some(b"a"))]);
    let summary = validate_batches(&batch, 1 << 20).unwrap();
    log.append(&batch, &summary, 0, 10).unwrap();
    log.append(&batch, &summary, 0, 999).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&batch, &summary, 0, 1000).unwrap();
    assert_eq!(
        log.segment_count(),
        2,
        "a segment older than segment.ms is rolled"
    );
    assert_eq!(
        log.segment_paths()[1].file_name().unwrap(),
        "00000000000000000002.log"
    );
}

#[test]
fn idempotent_retries_are_not_stored_twice_even_after_a_crash() {
    use crate::batch::build_idempotent_batch;
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let append = |log: &mut Log, seq: i32| {
        let b = build_idempotent_batch(42, 0, seq, 2);
        let summary = validate_batches(&b, 1 << 20).unwrap();
        log.append(&b, &summary, 0, 1)
    };
    let first = append(&mut log, 0).unwrap();
    assert_eq!((first.base_offset, first.duplicate), (0, false));
    let retry = append(&mut log, 0).unwrap();
    assert_eq!(
        (retry.base_offset, retry.last_offset, retry.duplicate),
        (0, 1, true)
    );
    assert_eq!(log.log_end_offset(), 2, "the retry was not stored");
    assert!(matches!(
        append(&mut log, 5),
        Err(LogError::OutOfOrderSequence(_))
    ));
    append(&mut log, 2).unwrap();
    drop(log); // crash: no snapshot, the state is rebuilt from the batches
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let retry = append(&mut log, 2).unwrap();
    assert_eq!((retry.base_offset, retry.duplicate), (2, true));
    log.close().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(
        log.producer_state().entry(42).unwrap().batches.len(),
        2,
        "from the snapshot"
    );
    assert!(append(&mut log, 4).is_ok());
}

#[test]
fn retention_deletes_whole_old_segments_and_delete_records_moves_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for i in 0..60 {
        append(&mut log, 1000 + i, &[&[7u8; 200]]);
    }
    let segments = log.segment_count();
    assert!(segments > 3);
    // By time: everything with timestamps before 1030 is past retention.
    let files = log.apply_retention(2000, 2000 - 1030, -1);
    assert!(
        !files.is_empty() && files.iter().all(|f| f.exists()),
        "files are returned for unlinking"
    );
    let start = log.log_start_offset();
    assert!(start > 0 && start <= 30, "{start}");
    assert!(matches!(
        log.read(0, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(start, 100).unwrap().is_some());
    // By size: keep at most ~2 segments' worth.
    log.apply_retention(2000, -1, 2 * 4096);
    assert!(log.segment_count() <= 3);
    // The active segment is never deleted.
    log.apply_retention(i64::MAX, 0, 0);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 60);
    // DeleteRecords inside the active segment: durable across a reopen.
    log.advance_log_start(58).unwrap();
    assert_eq!(log.log_start_offset(), 58);
    assert!(
        log.advance_log_start(99).is_err(),
        "beyond the high watermark"
    );
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_start_offset(), 58);
}

mod compaction {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use crate::batch::{
        build_batch, rebuild_with_records, validate_batches, BatchHeader, HEADER_SIZE,
    };
    use crate::cleaner::{clean, CleanerConfig};
    use crate::records::parse_records;
    use crate::{codec, Log, LogConfig};

    /// A batch of (key, value) records compressed with `codec`.
    fn batch_with_codec(ts: i64, records: &[(Vec<u8>, Option<Vec<u8>>)], codec_id: i16) -> Vec<u8> {
        let kv: Vec<_> = records
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
            .collect();
        let plain = build_batch(ts, &kv);
        if codec_id == 0 {
            return plain;
        }
        let mut b = rebuild_with_records(
            &plain,
            records.len() as i32,
            &codec::compress(codec_id, &plain[HEADER_SIZE..]).unwrap(),
        );
        let attributes = codec_id;
        b[21..23].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Every (offset, key, value) in the log, decompressing as needed.
    fn all_records(log: &Log) -> Vec<(i64, Vec<u8>, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while let Some(slice) = log.read(offset, 1 << 20).unwrap() {
            let bytes = slice.read_to_vec().unwrap();
            let mut pos = 0;
            while pos + HEADER_SIZE <= bytes.len() {
                let h = BatchHeader::parse(&bytes[pos..]);
                if pos + h.size() > bytes.len() {
                    break;
                }
                let payload = codec::decompress(
                    h.compression(),
                    &bytes[pos + HEADER_SIZE..pos + h.size()],
                    64 << 20,
                )
                .unwrap();
                for r in parse_records(&h, &payload).unwrap() {
                    out.push((
                        r.offset,
                        r.key.unwrap().to_vec(),
                        r.value.map(|v| v.to_vec()),
                    ));
                }
                offset = h.last_offset() + 1;
                pos += h.size();
            }
        }
        out
    }

    fn config(delete_retention_ms: i64) -> CleanerConfig {
        CleanerConfig {
            delete_retention_ms,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.0,
            max_map_entries: 1 << 20,
            max_uncompressed_bytes: 64 << 20,
        }
    }

    /// A batch the cleaner cannot read (a compression bomb stored before records were
    /// validated, or a corrupt record) is kept as it is, and the rest is still compacted.
    #[test]
    fn unreadable_batches_are_kept_and_the_pass_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let log_config = LogConfig {
            segment_bytes: 1024,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir.path(), log_config, 0).unwrap();
        let bomb_records = vec![(b"bomb".to_vec(), Some(vec![0u8; 8 << 20]))];
        let mut garbage = build_batch(1_000, &[(Some(b"x"), Some(b"y"))]);
        garbage[HEADER_SIZE] = 0x7f; // a record length past the batch's end
        let crc = crc32c::crc32c(&garbage[21..]);
        garbage[17..21].copy_from_slice(&crc.to_be_bytes());
        let batches = vec![
            batch_with_codec(1_000, &[(b"k".to_vec(), Some(b"old".to_vec()))], 0),
            batch_with_codec(1_000, &bomb_records, 4),
            garbage,
            batch_with_codec(1_000, &[(b"k".to_vec(), Some(b"new".to_vec()))], 0),
            batch_with_codec(1_000, &[(b"z".to_vec(), Some(vec![1u8; 1200]))], 0),
        ];
        for b in &batches {
            let summary = validate_batches(b, 1 << 20).unwrap();
            let info = log.append(b, &summary, 0, 0).unwrap();
            log.mark_flushed(info.end);
            log.advance_high_watermark(info.end);
        }
        let cfg = CleanerConfig {
            max_uncompressed_bytes: 1 << 20,
            ..config(i64::MAX / 2)
        };
        let plan = log.plan_cleaning(10_000, &cfg).expect("something to clean");
        let results = clean(&plan, &cfg, 10_000).expect("the pass completes");
        assert_eq!(results.iter().map(|c| c.skipped_batches).sum::<u64>(), 2);
        log.install_cleaned(results, 10_000).unwrap();
        // Offset 0 ("old") is gone; the bomb (1) and the garbage batch (2) are still there.
        let mut bases = Vec::new();
        let mut offset = 0;
        while let Some(slice) = log.read(offset, 1 << 30).unwrap() {
            let bytes = slice.read_to_vec().unwrap();
            let h = BatchHeader::parse(&bytes);
            bases.push(h.base_offset);
            offset = h.last_offset() + 1;
        }
        assert_eq!(bases, vec![1, 2, 3, 4]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// After compaction the cleaned part holds exactly the latest record of each key
        /// (tombstones too, until delete.retention.ms), offsets unchanged, the active
        /// segment untouched, whatever the codec.
        #[test]
        fn compaction_keeps_exactly_the_latest_per_key(
            ops in prop::collection::vec((0u8..12, prop::option::weighted(0.85, prop::collection::vec(any::<u8>(), 0..40))), 20..200),
            per_batch in 1usize..6,
            codec_id in 0i16..=4,
            drop_tombstones in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let log_config = LogConfig { segment_bytes: 1024, ..LogConfig::default() };
            let mut log = Log::open(dir.path(), log_config.clone(), 0).unwrap();
            let mut written = Vec::new();
            for chunk in ops.chunks(per_batch) {
                let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = chunk.iter().map(|(k, v)| (vec![b'k', *k], v.clone())).collect();
                let b = batch_with_codec(1_000, &records, codec_id);
                let summary = validate_batches(&b, 1 << 20).unwrap();
                let info = log.append(&b, &summary, 0, 0).unwrap();
                log.mark_flushed(info.end);
                log.advance_high_watermark(info.end);
                for (i, r) in records.into_iter().enumerate() {
                    written.push((info.base_offset + i as i64, r.0, r.1));
                }
            }
            let before = all_records(&log);
            prop_assert_eq!(&before, &written);
            let now = 10_000;
            let cfg = config(if drop_tombstones { 0 } else { i64::MAX / 2 });
            let Some(plan) = log.plan_cleaning(now, &cfg) else { return Ok(()) };
            let active_base = {
                let paths = log.segment_paths();
                let name = paths.last().unwrap().file_stem().unwrap().to_string_lossy().to_string();
                name.parse::<i64>().unwrap()
            };
            let results = clean(&plan, &cfg, now).unwrap();
            log.install_cleaned(results, now).unwrap();
            let after = all_records(&log);
            // The model: latest offset per key among records below the active segment.
            let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
            for (o, k, _) in written.iter().filter(|(o, _, _)| *o < active_base) {
                latest.insert(k.clone(), *o);
            }
            let expected: Vec<_> = written
                .iter()
                .filter(|(o, k, v)| {
                    *o >= active_base || (latest[k] == *o && !(drop_tombstones && v.is_none()))
                })
                .cloned()
                .collect();
            prop_assert_eq!(after, expected);
            // And the log still reopens (recovery accepts the rewritten segments).
            log.close().unwrap();
            let reopened = Log::open(dir.path(), log_config, 0).unwrap();
            prop_assert_eq!(reopened.log_end_offset(), written.len() as i64);
        }
    }
}

#[test]
fn crash_recovery_checks_only_what_follows_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    for i in 0..20 {
        append(&mut log, i, &[b"before the checkpoint"]);
    }
    log.recovery_checkpoint().unwrap().write().unwrap();
    assert!(
        log.recovery_checkpoint().is_none(),
        "nothing new to checkpoint"
    );
    for i in 20..30 {
        append(&mut log, i, &[b"after the checkpoint"]);
    }
    let path = log.segment_paths().pop().unwrap();
    drop(log); // crash
               // Damage one batch before the recovery point and tear the last one after it.
    let data = std::fs::read(&path).unwrap();
    let batch = BatchHeader::parse(&data).size() as u64;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.write_all_at(&[0xff], batch * 3 + 70).unwrap();
    f.set_len(data.len() as u64 - 5).unwrap();
    drop(f);
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(
        log.log_end_offset(),
        29,
        "the torn tail after the recovery point is cut"
    );
    assert_eq!(
        read_all(&log, 0).len(),
        29,
        "what precedes the recovery point is trusted, not rescanned"
    );
}

#[test]
fn an_append_written_outside_the_lock_is_invisible_until_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    append(&mut log, 1, &[b"first"]);
    let batch = build_batch(2, &[(None, Some(&b"second"[..]))]);
    let summary = validate_batches(&batch, 1 << 20).unwrap();
    let crate::PreparedAppend::Write(pending) = log.prepare_append(&batch, &summary, 0, 2).unwrap()
    else {
        panic!("not a duplicate");
    };
    // One writer: a second plan waits for the first to be committed.
    assert!(log.prepare_append(&batch, &summary, 0, 2).is_err());
    pending.write(&batch).unwrap();
    assert_eq!(log.log_end_offset(), 1, "written but not committed");
    let info = log.commit_append(pending, Ok(())).unwrap();
    assert_eq!((info.base_offset, log.log_end_offset()), (1, 2));

    // A failed write is cut and leaves the log as it was; the next append goes on from there.
    let crate::PreparedAppend::Write(pending) = log.prepare_append(&batch, &summary, 0, 3).unwrap()
    else {
        panic!("not a duplicate");
    };
    pending.write(&batch).unwrap(); // bytes reached the file, then the write "failed"
    let failed = log.commit_append(pending, Err(std::io::Error::other("disk full")));
    assert!(failed.is_err());
    assert_eq!(log.log_end_offset(), 2);
    append(&mut log, 4, &[b"third"]);
    assert_eq!(read_all(&log, 0), vec![(0, 1), (1, 1), (2, 1)]);
}

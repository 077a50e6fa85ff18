//! Log compaction: keep the latest record of each key in the non-active segments.
//!
//! Three steps, so the partition lock is held only for the first and the last:
//! 1. `Log::plan_cleaning` (under the lock) picks the cleanable segments: non-active, older
//!    than `min.compaction.lag.ms`, and dirty enough (`min.cleanable.dirty.ratio`, or older
//!    than `max.compaction.lag.ms`).
//! 2. `clean` (no lock) builds a bounded map of key hash → latest offset over them, then
//!    writes a `.cleaned` copy of each segment with only the latest record per key. Batches
//!    keep their base and last offsets (offsets never change; gaps are fine) and are
//!    recompressed with their own codec. Tombstones are dropped once older than
//!    `delete.retention.ms`. Records of aborted transactions are dropped and count for no
//!    key; transaction markers are kept as they are. Cleaning stops before the first
//!    transaction not yet decided.
//! 3. `Log::install_cleaned` (under the lock) swaps each copy in by rename.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::warn;

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::codec;
use crate::error::{LogError, Result};
use crate::records::{BatchRecords, RecordView};
use crate::txn::AbortedTxn;

#[derive(Debug, Clone)]
pub struct CleanerConfig {
    /// `delete.retention.ms`
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`
    pub min_cleanable_dirty_ratio: f64,
    /// Keys the offset map may hold (from `log.cleaner.dedupe.buffer.size`); a pass cleans
    /// only as many segments as the map covers.
    pub max_map_entries: usize,
    /// Decompressed bytes one batch may expand to (from `max.message.bytes`); a batch past
    /// it is left uncleaned.
    pub max_uncompressed_bytes: usize,
}

/// A segment to clean, captured under the lock.
#[derive(Debug, Clone)]
pub struct PlannedSegment {
    pub base_offset: i64,
    pub file: Arc<File>,
    pub size: u64,
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct CleanPlan {
    pub segments: Vec<PlannedSegment>,
    /// Aborted transactions with records in these segments.
    pub aborted: Vec<AbortedTxn>,
}

impl CleanPlan {
    /// The batch belongs to an aborted transaction: its records go.
    fn is_aborted(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.aborted.iter().any(|a| {
                a.producer_id == h.producer_id
                    && a.first_offset <= h.base_offset
                    && h.base_offset < a.last_offset
            })
    }
}

/// A cleaned copy, ready to replace its segment.
#[derive(Debug)]
pub struct CleanedSegment {
    pub base_offset: i64,
    pub original_size: u64,
    pub cleaned_path: PathBuf,
    pub records_before: u64,
    pub records_after: u64,
    /// Batches that could not be read and were copied as they are.
    pub skipped_batches: u64,
}

/// 128-bit key digest (two SipHash passes with different prefixes), so that a collision,
/// which would drop a live record, is out of reach in practice.
fn key_digest(key: &[u8]) -> u128 {
    let mut a = std::collections::hash_map::DefaultHasher::new();
    0u8.hash(&mut a);
    key.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    1u8.hash(&mut b);
    key.hash(&mut b);
    ((a.finish() as u128) << 64) | b.finish() as u128
}

/// Calls `f` with every batch of a segment file (read one batch at a time).
fn for_each_batch(seg: &PlannedSegment, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let mut pos = 0u64;
    let mut header = [0u8; HEADER_SIZE];
    let mut buf = Vec::new();
    while pos + HEADER_SIZE as u64 <= seg.size {
        seg.file.read_exact_at(&mut header, pos)?;
        let h = BatchHeader::parse(&header);
        let size = h.size();
        if size < HEADER_SIZE || pos + size as u64 > seg.size {
            return Err(LogError::CorruptRecord(format!(
                "bad batch at {pos} in {}",
                seg.path.display()
            )));
        }
        buf.resize(size, 0);
        seg.file.read_exact_at(&mut buf, pos)?;
        f(&buf)?;
        pos += size as u64;
    }
    Ok(())
}

/// The (key digest, offset) of every keyed record of a batch, read as a stream
/// bounded by `limit` decompressed bytes.
fn keyed_records(batch_bytes: &[u8], limit: usize) -> Result<Vec<(u128, i64)>> {
    let mut records = BatchRecords::open(batch_bytes, limit)?;
    let mut out = Vec::new();
    while let Some(r) = records.next_record()? {
        if let Some(k) = r.key {
            out.push((key_digest(k), r.offset));
        }
    }
    records.finish()?;
    Ok(out)
}

/// Says why a batch is left as it is; the pass goes on with the next one.
fn skip_bad_batch(seg: &PlannedSegment, batch_bytes: &[u8], e: &LogError, skipped: &mut u64) {
    let h = BatchHeader::parse(batch_bytes);
    warn!(
        segment = %seg.path.display(),
        base_offset = h.base_offset,
        error = %e,
        "compaction leaves an unreadable batch as it is"
    );
    *skipped += 1;
}

/// The batch with only the records `keep` accepts: `None` when all are kept (the stored
/// bytes are copied as they are), an empty vector when none are.
fn rebuild_batch(
    batch_bytes: &[u8],
    limit: usize,
    mut keep: impl FnMut(&RecordView<'_>) -> bool,
    counts: &mut (u64, u64),
) -> Result<Option<Vec<u8>>> {
    let mut records = BatchRecords::open(batch_bytes, limit)?;
    let header = *records.header();
    let (mut total, mut kept) = (0u64, 0i32);
    let mut raw = Vec::new();
    while let Some(r) = records.next_record()? {
        total += 1;
        if keep(&r) {
            kept += 1;
            raw.extend_from_slice(r.raw);
        }
    }
    records.finish()?;
    counts.0 += total;
    counts.1 += kept as u64;
    if kept as u64 == total {
        return Ok(None);
    }
    if kept == 0 {
        return Ok(Some(Vec::new()));
    }
    let payload = codec::compress(header.compression(), &raw)?;
    Ok(Some(batch::rebuild_with_records(
        batch_bytes,
        kept,
        &payload,
    )))
}

/// Runs a cleaning pass over `plan` (outside the log's lock). `now_ms` decides which
/// tombstones are old enough to drop. A batch that cannot be read (corrupt, or expanding
/// past `max_uncompressed_bytes`) is logged, left as it is and counted in `skipped_batches`.
pub fn clean(plan: &CleanPlan, config: &CleanerConfig, now_ms: i64) -> Result<Vec<CleanedSegment>> {
    let limit = config.max_uncompressed_bytes;
    // 1. The latest offset of every key, over as many whole segments as the map allows.
    let mut latest: HashMap<u128, i64> = HashMap::new();
    let mut covered = 0;
    let mut skipped = 0u64;
    for seg in &plan.segments {
        if latest.len() >= config.max_map_entries {
            break;
        }
        for_each_batch(seg, |b| {
            let h = BatchHeader::parse(b);
            if h.is_control() || plan.is_aborted(&h) {
                return Ok(());
            }
            match keyed_records(b, limit) {
                Ok(keys) => {
                    for (digest, offset) in keys {
                        latest.insert(digest, offset);
                    }
                }
                Err(e) => skip_bad_batch(seg, b, &e, &mut skipped),
            }
            Ok(())
        })?;
        covered += 1;
    }
    // 2. Write the cleaned copies.
    let horizon = now_ms.saturating_sub(config.delete_retention_ms);
    let mut out = Vec::new();
    for seg in &plan.segments[..covered] {
        let cleaned_path = seg.path.with_extension("log.cleaned");
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&cleaned_path)?;
        let mut counts = (0u64, 0u64);
        let mut skipped_here = 0u64;
        for_each_batch(seg, |b| {
            let h = BatchHeader::parse(b);
            if h.is_control() {
                file.write_all(b)?;
                return Ok(());
            }
            let aborted = plan.is_aborted(&h);
            let max_timestamp = h.max_timestamp;
            let keep = |r: &RecordView<'_>| match r.key {
                _ if aborted => false,
                None => true, // keyless records cannot be compacted: keep them
                Some(k) => {
                    let newest = latest.get(&key_digest(k)).is_none_or(|&o| o == r.offset);
                    let expired_tombstone = r.value.is_none() && max_timestamp < horizon;
                    newest && !expired_tombstone
                }
            };
            match rebuild_batch(b, limit, keep, &mut counts) {
                Ok(None) => file.write_all(b)?,
                Ok(Some(bytes)) => file.write_all(&bytes)?,
                Err(e) => {
                    skip_bad_batch(seg, b, &e, &mut skipped_here);
                    file.write_all(b)?;
                }
            }
            Ok(())
        })?;
        file.sync_all()?;
        out.push(CleanedSegment {
            base_offset: seg.base_offset,
            original_size: seg.size,
            cleaned_path,
            records_before: counts.0,
            records_after: counts.1,
            skipped_batches: skipped_here,
        });
    }
    Ok(out)
}

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
//!    `delete.retention.ms`.
//! 3. `Log::install_cleaned` (under the lock) swaps each copy in by rename.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::codec;
use crate::error::{LogError, Result};

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
}

/// A cleaned copy, ready to replace its segment.
#[derive(Debug)]
pub struct CleanedSegment {
    pub base_offset: i64,
    pub original_size: u64,
    pub cleaned_path: PathBuf,
    pub records_before: u64,
    pub records_after: u64,
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

/// Decompresses a batch's records (once) and hands them to `f`.
fn with_records<R>(
    batch_bytes: &[u8],
    f: impl FnOnce(&BatchHeader, Vec<batch::RecordView<'_>>) -> Result<R>,
) -> Result<R> {
    let header = BatchHeader::parse(batch_bytes);
    let payload = codec::decompress(header.compression(), &batch_bytes[HEADER_SIZE..])?;
    let records = batch::parse_records(&header, &payload)?;
    f(&header, records)
}

/// Runs a cleaning pass over `plan` (outside the log's lock). `now_ms` decides which
/// tombstones are old enough to drop.
pub fn clean(plan: &CleanPlan, config: &CleanerConfig, now_ms: i64) -> Result<Vec<CleanedSegment>> {
    // 1. The latest offset of every key, over as many whole segments as the map allows.
    let mut latest: HashMap<u128, i64> = HashMap::new();
    let mut covered = 0;
    for seg in &plan.segments {
        if latest.len() >= config.max_map_entries {
            break;
        }
        for_each_batch(seg, |b| {
            with_records(b, |_, records| {
                for r in records {
                    if let Some(k) = r.key {
                        latest.insert(key_digest(k), r.offset);
                    }
                }
                Ok(())
            })
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
        let (mut before, mut after) = (0u64, 0u64);
        for_each_batch(seg, |b| {
            let rebuilt = with_records(b, |header, records| {
                before += records.len() as u64;
                let keep: Vec<&batch::RecordView<'_>> = records
                    .iter()
                    .filter(|r| match r.key {
                        None => true, // keyless records cannot be compacted: keep them
                        Some(k) => {
                            let newest = latest.get(&key_digest(k)).is_none_or(|&o| o == r.offset);
                            let expired_tombstone =
                                r.value.is_none() && header.max_timestamp < horizon;
                            newest && !expired_tombstone
                        }
                    })
                    .collect();
                after += keep.len() as u64;
                if keep.len() == records.len() {
                    return Ok(None); // unchanged: copy the stored bytes as they are
                }
                if keep.is_empty() {
                    return Ok(Some(Vec::new()));
                }
                let mut raw = Vec::with_capacity(keep.iter().map(|r| r.raw.len()).sum());
                for r in &keep {
                    raw.extend_from_slice(r.raw);
                }
                let payload = codec::compress(header.compression(), &raw)?;
                Ok(Some(batch::rebuild_with_records(
                    b,
                    keep.len() as i32,
                    &payload,
                )))
            })?;
            match rebuilt {
                None => file.write_all(b)?,
                Some(bytes) => file.write_all(&bytes)?,
            }
            Ok(())
        })?;
        file.sync_all()?;
        out.push(CleanedSegment {
            base_offset: seg.base_offset,
            original_size: seg.size,
            cleaned_path,
            records_before: before,
            records_after: after,
        });
    }
    Ok(out)
}

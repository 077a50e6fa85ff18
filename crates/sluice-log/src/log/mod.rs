//! A partition's log: an ordered set of segments behind one `Log`. This file holds the log's
//! state, settings and accessors; each of its jobs has a file beside it: `open.rs` (loading
//! and crash recovery), `append.rs` (the leader's appends, rolls, transaction markers),
//! `follower.rs` (replicated appends, truncation), `flush.rs` (what a flush syncs,
//! checkpoints, the high watermark, a clean close), `read.rs` (reads and timestamp lookups)
//! and `retention.rs` (retention, DeleteRecords, installing what the cleaner compacted).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{debug, info};

use crate::batch::{self, BatchHeader, BatchSetSummary};
use crate::cleaner::{CleanPlan, CleanedSegment, CleanerConfig, PlannedSegment};
use crate::epochs::LeaderEpochCache;
use crate::error::{LogError, Result};
use crate::producer_state::{MarkerCheck, ProducerState, SeqCheck};
use crate::segment::{self, Segment, SegmentWrite};
use crate::txn::{self, AbortedTxn, Marker, MarkerKind};

/// Marker written by a clean close; its absence on open means the active segment is recovered.
const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
/// Idempotent producer state as of some offset (written on roll and clean close).
const PRODUCER_SNAPSHOT_FILE: &str = "producer.snapshot";
/// The log start offset when DeleteRecords moved it inside a segment.
const LOG_START_FILE: &str = "log-start-offset";
/// How far the log was known to be on disk: crash recovery checks only what follows.
const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Offsets below this have been compacted (the clean part of the log).
const CLEANER_CHECKPOINT_FILE: &str = "cleaner-checkpoint";

mod append;
mod flush;
mod follower;
mod open;
mod read;
mod retention;

pub use append::{PendingWrite, PreparedAppend};
pub use flush::{sync_filesystem, RecoveryCheckpoint, StagedClose};
pub use follower::{PreparedReplicated, ReplicatedWrite};
pub use read::{ReadBound, ReadSlice, TimestampLookup};

/// Per-log settings (Kafka topic-level names in comments).
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`
    pub segment_bytes: u64,
    /// `segment.ms`
    pub segment_ms: i64,
    /// `index.interval.bytes`
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type=LogAppendTime`
    pub log_append_time: bool,
    /// `cleanup.policy` includes `compact`: produced records need keys.
    pub compacted: bool,
    /// `message.timestamp.before.max.ms`
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`
    pub timestamp_after_max_ms: i64,
    /// `compression.type` (with its level) when not `producer`.
    pub compression: Option<crate::records::TargetCompression>,
}

/// How many times `max.message.bytes` one batch's records may expand to once decompressed.
pub const MAX_EXPANSION_RATIO: usize = 64;

impl LogConfig {
    /// Decompressed bytes one batch's records may take: a bound on the work and memory of
    /// opening a compressed batch (producers' batches expand a few times, never this much).
    pub fn max_uncompressed_bytes(&self) -> usize {
        self.max_message_bytes.saturating_mul(MAX_EXPANSION_RATIO)
    }

    /// What the records a client produces must satisfy.
    pub fn record_rules(&self) -> crate::records::RecordRules {
        crate::records::RecordRules {
            max_uncompressed_bytes: self.max_uncompressed_bytes(),
            require_keys: self.compacted,
            timestamp_window: (!self.log_append_time)
                .then_some((self.timestamp_before_max_ms, self.timestamp_after_max_ms)),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            max_message_bytes: 1 << 20,
            log_append_time: false,
            compacted: false,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            compression: None,
        }
    }
}

/// A point in the log: an offset and where it falls in the segment files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPosition {
    pub offset: i64,
    pub segment_base: i64,
    /// Byte position of `offset` in that segment (its end when `offset` is the log end).
    pub position: u64,
}

/// The outcome of an append.
#[derive(Debug, Clone, Copy)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 unless the log uses LogAppendTime.
    pub log_append_time: i64,
    /// The log end after this append: once flushed, it may become the high watermark.
    pub end: LogPosition,
    /// The batch was a producer's retry of one already stored: nothing was written and the
    /// offsets are the original ones.
    pub duplicate: bool,
}

pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    /// Everything below this is known to be on stable storage.
    flushed: LogPosition,
    /// What readers may see: the flushed point, or the log end when flushing is relaxed.
    high_watermark: LogPosition,
    /// Set by `close` and `delete`: later appends fail instead of writing to a closed log.
    closed: bool,
    /// Between `prepare_append` and `commit_append`.
    write_in_progress: bool,
    producers: ProducerState,
    /// The flushed offset of the last recovery checkpoint taken.
    checkpointed_offset: Option<i64>,
    /// Where each leader epoch's data starts (epochs.rs).
    epochs: LeaderEpochCache,
}

impl Log {
    /// The leader-epoch cache (epoch -> first offset).
    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// Where `epoch` ends in this log (OffsetForLeaderEpoch): the largest epoch <= it that the
    /// log has, and the first offset after that epoch's data.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// This replica became leader in `epoch`: the epoch starts at its log end (Kafka's
    /// maybeAssignEpochStartOffset), so a follower with a tail from an older leader learns
    /// where it diverges even before this leader writes anything.
    /// Epoch 0 (a partition's first leader, all a single node ever has) needs no entry:
    /// nothing precedes it, and opening many partitions writes no epoch files.
    pub fn begin_leader_epoch(&mut self, epoch: i32) -> Result<()> {
        if epoch <= 0 || self.epochs.latest_epoch().is_some_and(|e| e >= epoch) {
            return Ok(());
        }
        self.note_epoch(epoch, self.log_end_offset())
    }

    /// Notes that `epoch` starts at `offset` (its first batch in this log), saving the cache
    /// when it changes: once per leader change, a small synced write.
    fn note_epoch(&mut self, epoch: i32, offset: i64) -> Result<()> {
        if self.epochs.assign(epoch, offset) {
            self.epochs.save()?;
        }
        Ok(())
    }

    fn write_producer_snapshot(&self) -> Result<()> {
        self.producers.write_snapshot(
            &self.dir.join(PRODUCER_SNAPSHOT_FILE),
            self.log_end_offset(),
        )?;
        Ok(())
    }

    pub fn producer_state(&self) -> &ProducerState {
        &self.producers
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.offset
    }

    pub fn flushed_offset(&self) -> i64 {
        self.flushed.offset
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    pub fn end(&self) -> LogPosition {
        let active = self.active();
        LogPosition {
            offset: active.next_offset(),
            segment_base: active.base_offset,
            position: active.size(),
        }
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Bytes of record batches in the log's segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size()).sum()
    }

    /// Removes the log's directory and everything in it.
    pub fn delete(&mut self) -> Result<()> {
        self.closed = true;
        fs::remove_dir_all(&self.dir)?;
        Ok(())
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.values().map(|s| s.log_path()).collect()
    }
}

pub fn segment_file_name(base: i64) -> String {
    format!("{}.log", segment::file_stem(base))
}

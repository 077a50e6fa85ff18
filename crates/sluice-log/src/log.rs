//! A partition's log: an ordered set of segments, the append and read paths, recovery.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{debug, info};

use crate::batch::{self, BatchHeader, BatchSetSummary};
use crate::cleaner::{CleanPlan, CleanedSegment, CleanerConfig, PlannedSegment};
use crate::epochs::LeaderEpochCache;
use crate::error::{LogError, Result};
use crate::producer_state::{ProducerState, SeqCheck};
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

/// A byte range of one segment file, to be read outside the log's lock.
#[derive(Debug, Clone)]
pub struct ReadSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: usize,
    /// The last offset of the whole batches in the slice (a read cut by its byte limit may
    /// end inside a batch), when known: what a reader gets, for counting records out.
    pub whole_through: Option<i64>,
}

impl ReadSlice {
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_append(&mut buf)?;
        Ok(buf)
    }

    /// Reads the range onto the end of `out`; returns the bytes read (fewer than `len` if
    /// the segment was truncated or deleted under us).
    pub fn read_append(&self, out: &mut Vec<u8>) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let start = out.len();
        out.resize(start + self.len, 0);
        let mut done = 0;
        while done < self.len {
            let n = match self
                .file
                .read_at(&mut out[start + done..], self.position + done as u64)
            {
                Ok(n) => n,
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            };
            if n == 0 {
                break;
            }
            done += n;
        }
        out.truncate(start + done);
        Ok(done)
    }
}

/// What `Log::prepare_append` decided.
pub enum PreparedAppend {
    /// A producer's retry of a batch already stored: nothing to write.
    Duplicate(AppendInfo),
    Write(PendingWrite),
}

/// An append planned under the log's lock, to be written without it and then committed.
pub struct PendingWrite {
    segment: SegmentWrite,
    /// The batches as stored, when LogAppendTime made a rewritten copy.
    rewritten: Option<Vec<u8>>,
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: i64,
    producer_batch: Option<BatchHeader>,
    /// The batch is a transaction marker the broker writes.
    marker: Option<Marker>,
}

impl PendingWrite {
    /// Writes the batches (`batches` as given to `prepare_append`); needs no lock.
    pub fn write(&self, batches: &[u8]) -> std::io::Result<()> {
        self.segment
            .write(self.rewritten.as_deref().unwrap_or(batches))
    }
}

/// A log closed by `Log::close_staged`, waiting for its files to be synced.
pub struct StagedClose {
    dir: PathBuf,
}

impl StagedClose {
    /// Once everything written is durable: marks the log clean. The marker is durable after
    /// the next filesystem sync.
    pub fn finish(self) -> Result<()> {
        fs::write(self.dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
        Ok(())
    }
}

/// Syncs the whole filesystem holding `path` (syncfs): one call makes every log's staged
/// files durable, where a sync per file would cost thousands of journal commits.
pub fn sync_filesystem(path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = File::open(path)?;
    // SAFETY: `dir` is an open descriptor for the duration of the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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

/// Where a read stops: at the high watermark (what consumers may see), at the last stable
/// offset (read_committed consumers: no undecided transaction) or at the log end (followers
/// copy what the leader has before it is committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBound {
    HighWatermark,
    LastStable,
    LogEnd,
}

/// The headers of a validated batch set, in order.
fn batch_headers(batches: &[u8]) -> Vec<BatchHeader> {
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos + batch::HEADER_SIZE <= batches.len() {
        let h = BatchHeader::parse(&batches[pos..]);
        pos += h.size();
        headers.push(h);
    }
    headers
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering the active segment after a crash.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log> {
        fs::create_dir_all(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let (epochs, epochs_found) = LeaderEpochCache::open(dir);
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".cleaned") || name.ends_with(".tmp") {
                // Left by a compaction or an index write that a crash interrupted.
                fs::remove_file(entry.path())?;
                continue;
            }
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        // After a crash, check what may not have reached the disk: everything from the
        // recovery point on (every segment when there is none).
        let recovery_point = if clean {
            None
        } else {
            RecoveryPoint::read(dir)
        };
        let mut segments = BTreeMap::new();
        for base in &bases {
            let verify_from = match (clean, recovery_point) {
                (true, _) => None,
                (false, Some(rp)) if *base < rp.segment_base => None,
                (false, Some(rp)) if *base == rp.segment_base => Some(rp.position),
                _ => Some(0),
            };
            let seg = Segment::open(dir, *base, config.index_interval_bytes, verify_from, now_ms)?;
            segments.insert(*base, seg);
        }
        if segments.is_empty() {
            segments.insert(
                0,
                Segment::create(dir, 0, config.index_interval_bytes, now_ms)?,
            );
        }
        if clean {
            fs::remove_file(&marker)?;
        }
        if !config.compacted {
            report_gaps(dir, &segments);
        }
        let first_base = *segments.keys().next().expect("one segment");
        let end_offset = segments
            .values()
            .next_back()
            .map_or(first_base, |s| s.next_offset());
        let checkpoint = fs::read_to_string(dir.join(LOG_START_FILE))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok());
        let log_start_offset = checkpoint
            .unwrap_or(first_base)
            .clamp(first_base, end_offset.max(first_base));
        let active = segments.values().next_back().expect("one segment");
        let end = LogPosition {
            offset: active.next_offset(),
            segment_base: active.base_offset,
            position: active.size(),
        };
        debug!(dir = %dir.display(), segments = segments.len(), log_end = end.offset, clean, "opened log");
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            flushed: end,
            high_watermark: end,
            closed: false,
            write_in_progress: false,
            producers: ProducerState::default(),
            checkpointed_offset: None,
            epochs,
        };
        log.rebuild_producer_state()?;
        log.reconcile_epochs(epochs_found)?;
        Ok(log)
    }

    /// Makes the leader-epoch cache agree with the log: rebuilt from the batch headers if its
    /// file was missing or unreadable, cut to the log's start and end (recovery may have
    /// removed a torn tail after the cache was saved).
    fn reconcile_epochs(&mut self, found: bool) -> Result<()> {
        let mut changed = false;
        if !found {
            let start = self.log_start_offset;
            let mut rebuilt = Vec::new();
            for seg in self.segments.values() {
                seg.for_each_header(start, |h, _, _| {
                    if rebuilt
                        .last()
                        .is_none_or(|&(e, _)| h.partition_leader_epoch > e)
                    {
                        rebuilt.push((h.partition_leader_epoch, h.base_offset));
                    }
                })?;
            }
            for (epoch, offset) in rebuilt {
                changed |= self.epochs.assign(epoch, offset);
            }
        }
        changed |= self.epochs.truncate_from_end(self.log_end_offset());
        changed |= self.epochs.truncate_from_start(self.log_start_offset);
        if changed {
            self.epochs.save()?;
        }
        Ok(())
    }

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

    /// Loads the producer snapshot (if sound and not beyond the log end) and replays the
    /// batch headers after it: producers' sequences, open transactions and, from the markers,
    /// the aborted-transactions indexes (their entries from the replay's start are rebuilt).
    fn rebuild_producer_state(&mut self) -> Result<()> {
        let path = self.dir.join(PRODUCER_SNAPSHOT_FILE);
        let (mut state, from) = match ProducerState::read_snapshot(&path) {
            Some((state, offset))
                if offset <= self.log_end_offset() && offset >= self.log_start_offset =>
            {
                (state, offset)
            }
            _ => (ProducerState::default(), self.log_start_offset),
        };
        let floor = self
            .segments
            .range(..=from)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(self.log_start_offset);
        let mut aborted: Vec<(i64, AbortedTxn)> = Vec::new();
        for (base, seg) in self.segments.range(floor..) {
            seg.for_each_header(from, |h, position, marker| {
                if h.base_offset < from {
                    return;
                }
                if !h.is_control() {
                    state.record(h, Some((*base, position)));
                    return;
                }
                let Some(marker) = marker else { return };
                if let Some(first) = state.complete(h, marker) {
                    if marker.kind == MarkerKind::Abort {
                        let entry = AbortedTxn {
                            producer_id: h.producer_id,
                            first_offset: first,
                            last_offset: h.base_offset,
                            last_stable_offset: state.stable_after(h.base_offset),
                        };
                        aborted.push((*base, entry));
                    }
                }
            })?;
        }
        let active = self.active().base_offset;
        for (base, seg) in self.segments.range_mut(floor..) {
            let before = seg.aborted.clone();
            seg.aborted.retain_markers_below(from);
            for (_, entry) in aborted.iter().filter(|(b, _)| b == base) {
                seg.aborted.push(*entry);
            }
            // The active segment's index is saved on roll and close; an older one is final.
            if seg.aborted != before && *base != active {
                seg.save_txn_index()?;
            }
        }
        for first in state.unplaced() {
            if let Some(p) = self.position_at_or_below(first)? {
                state.place(first, (p.segment_base, p.position));
            }
        }
        state.note_high_watermark(self.high_watermark.offset);
        self.producers = state;
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

    /// Appends a validated batch set (see [`batch::validate_batches`]), assigning offsets.
    /// Appends a validated batch set: plan, write and commit under one borrow. The broker's
    /// append stage uses the three steps itself, to write without holding the log's lock.
    pub fn append(
        &mut self,
        batches: &[u8],
        summary: &BatchSetSummary,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        match self.prepare_append(batches, summary, leader_epoch, now_ms)? {
            PreparedAppend::Duplicate(info) => Ok(info),
            PreparedAppend::Write(pending) => {
                let written = pending.write(batches);
                self.commit_append(pending, written)
            }
        }
    }

    /// Plans an append: checks the producer's sequence, rolls the segment if needed and
    /// assigns offsets. Until `commit_append`, nothing is visible and no other append may be
    /// planned (the log has one writer).
    pub fn prepare_append(
        &mut self,
        batches: &[u8],
        summary: &BatchSetSummary,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<PreparedAppend> {
        if self.closed {
            return Err(LogError::Io(std::io::Error::other("log is closed")));
        }
        if self.write_in_progress {
            return Err(LogError::Io(std::io::Error::other(
                "an append is already in progress",
            )));
        }
        // An idempotent producer's set is one batch (checked in validation), and so is a
        // transaction marker.
        let producer_batch = summary.idempotent.then(|| BatchHeader::parse(batches));
        let mut marker = None;
        if let Some(h) = producer_batch.as_ref().filter(|h| h.is_control()) {
            let m = txn::parse_marker(batches)
                .ok_or_else(|| LogError::InvalidRecord("unreadable transaction marker".into()))?;
            self.producers
                .check_marker(h.producer_id, h.producer_epoch(), m.coordinator_epoch)?;
            marker = Some(m);
        } else if let Some(h) = &producer_batch {
            if let SeqCheck::Duplicate(original) = self.producers.check(h)? {
                return Ok(PreparedAppend::Duplicate(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_append_time: -1,
                    end: self.end(),
                    duplicate: true,
                }));
            }
        }
        self.maybe_roll(batches.len() as u64, summary.offset_count, now_ms)?;
        let base_offset = self.log_end_offset();
        let (segment, rewritten, log_append_time) = if self.config.log_append_time {
            // Rewrites attributes and max timestamp, which the CRC covers: work on a copy.
            let mut owned = batches.to_vec();
            batch::assign_offsets(&mut owned, base_offset, leader_epoch, Some(now_ms));
            let w = self
                .active()
                .prepare_append(&owned, base_offset, leader_epoch, true)?;
            (w, Some(owned), now_ms)
        } else {
            let w = self
                .active()
                .prepare_append(batches, base_offset, leader_epoch, false)?;
            (w, None, -1)
        };
        self.write_in_progress = true;
        Ok(PreparedAppend::Write(PendingWrite {
            segment,
            rewritten,
            base_offset,
            leader_epoch,
            log_append_time,
            producer_batch,
            marker,
        }))
    }

    /// Makes a written append visible to the log (end offset, indexes, producer state), or
    /// undoes a failed one.
    pub fn commit_append(
        &mut self,
        pending: PendingWrite,
        written: std::io::Result<()>,
    ) -> Result<AppendInfo> {
        self.write_in_progress = false;
        self.active_mut().commit_append(&pending.segment, written)?;
        self.note_epoch(pending.leader_epoch, pending.base_offset)?;
        if let Some(mut h) = pending.producer_batch {
            h.base_offset = pending.base_offset;
            match pending.marker {
                Some(marker) => self.complete_transaction(&h, marker),
                None => {
                    let at = (self.active().base_offset, pending.segment.start());
                    self.producers.record(&h, Some(at));
                }
            }
        }
        let end = self.end();
        Ok(AppendInfo {
            base_offset: pending.base_offset,
            last_offset: end.offset - 1,
            log_append_time: pending.log_append_time,
            end,
            duplicate: false,
        })
    }

    /// A marker was stored (header with its offset): its producer's transaction ends, and an
    /// aborted one is noted in the active segment's aborted-transactions index.
    fn complete_transaction(&mut self, h: &BatchHeader, marker: Marker) {
        let Some(first) = self.producers.complete(h, marker) else {
            return;
        };
        if marker.kind == MarkerKind::Abort {
            let entry = AbortedTxn {
                producer_id: h.producer_id,
                first_offset: first,
                last_offset: h.base_offset,
                last_stable_offset: self.producers.stable_after(h.base_offset),
            };
            self.active_mut().aborted.push(entry);
        }
    }

    /// The last stable offset (what read_committed consumers may see): the high watermark,
    /// or the first offset of an earlier transaction not yet decided, as a position.
    pub fn last_stable(&self) -> LogPosition {
        let hw = self.high_watermark;
        let Some((first, txn)) = self.producers.first_unstable() else {
            return hw;
        };
        if first >= hw.offset {
            return hw;
        }
        match txn.position {
            Some((segment_base, position)) if first >= self.log_start_offset => LogPosition {
                offset: first,
                segment_base,
                position,
            },
            // Retention took the transaction's start, or its place is unknown.
            _ => self
                .position_at_or_below(first.max(self.log_start_offset))
                .ok()
                .flatten()
                .filter(|p| p.offset <= hw.offset)
                .unwrap_or(hw),
        }
    }

    /// The aborted transactions a read_committed fetch of `[from, upto)` must name.
    pub fn aborted_transactions(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        let floor = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(self.log_start_offset, |(b, _)| *b);
        for seg in self.segments.range(floor..).map(|(_, s)| s) {
            if seg.aborted.collect(from, upto, &mut out) {
                break;
            }
        }
        out
    }

    /// Appends batches whose offsets a leader assigned (the follower path): stored as they
    /// are, offsets and leader epochs kept. The first must start at this log's end and the
    /// offsets must rise; the leader-epoch cache and the producer state follow the batches.
    pub fn append_replicated(
        &mut self,
        batches: &[u8],
        summary: &BatchSetSummary,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        if self.closed || self.write_in_progress {
            return Err(LogError::Io(std::io::Error::other(
                "the log is closed or an append is in progress",
            )));
        }
        let headers = batch_headers(batches);
        let end = self.log_end_offset();
        let mut expected = end;
        for h in &headers {
            if h.base_offset < expected {
                return Err(LogError::InvalidRecord(format!(
                    "replicated batch at offset {} does not follow offset {}",
                    h.base_offset,
                    expected - 1
                )));
            }
            expected = h.last_offset() + 1;
        }
        if headers.first().is_some_and(|h| h.base_offset != end) {
            return Err(LogError::InvalidRecord(format!(
                "replicated batches start at offset {}, the log ends at {end}",
                headers[0].base_offset
            )));
        }
        let Some(first) = headers.first() else {
            return Ok(AppendInfo {
                base_offset: end,
                last_offset: end - 1,
                log_append_time: -1,
                end: self.end(),
                duplicate: false,
            });
        };
        self.maybe_roll(batches.len() as u64, summary.offset_count, now_ms)?;
        let segment = self.active().prepare_append(
            batches,
            first.base_offset,
            first.partition_leader_epoch,
            true,
        )?;
        let written = segment.write(batches);
        self.active_mut().commit_append(&segment, written)?;
        let segment_base = self.active().base_offset;
        let mut at = 0usize;
        for h in &headers {
            if h.is_control() {
                let bytes = &batches[at..at + h.size()];
                if let Some(marker) = txn::parse_marker(bytes) {
                    self.complete_transaction(h, marker);
                }
            } else if h.producer_id >= 0 {
                let position = segment.start() + at as u64;
                self.producers.record(h, Some((segment_base, position)));
            }
            at += h.size();
            self.note_epoch(h.partition_leader_epoch, h.base_offset)?;
        }
        let end = self.end();
        Ok(AppendInfo {
            base_offset: first.base_offset,
            last_offset: end.offset - 1,
            log_append_time: -1,
            end,
            duplicate: false,
        })
    }

    /// Removes every batch from the one holding `offset` on (a follower's divergent tail):
    /// later segments go whole, the one holding it is cut at that batch. The log end becomes
    /// that batch's base offset (at most `offset`); the high watermark and flushed point come
    /// back with it; the producer state and the leader-epoch cache are rebuilt for what
    /// remains. Below the log start, the log is emptied and starts at `offset`. Returns files
    /// to unlink outside the lock.
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> Result<Vec<PathBuf>> {
        if self.closed || self.write_in_progress {
            return Err(LogError::Io(std::io::Error::other(
                "the log is closed or an append is in progress",
            )));
        }
        if offset >= self.log_end_offset() {
            // Nothing to cut, but an epoch this replica began as leader and never wrote in
            // starts here: the leader that replaced it does not have it, so it goes.
            if self.epochs.truncate_from_end(offset) {
                self.epochs.save()?;
            }
            return Ok(Vec::new());
        }
        // A crash during the cut must verify the segments again.
        self.forget_recovery_point()?;
        let files = if offset <= self.log_start_offset {
            self.empty_from(offset, now_ms)?
        } else {
            let mut files = Vec::new();
            let missing = || LogError::Io(std::io::Error::other("no segment holds the offset"));
            let holder = *self
                .segments
                .range(..=offset)
                .next_back()
                .map(|(b, _)| b)
                .ok_or_else(missing)?;
            let later: Vec<i64> = self.segments.range(holder + 1..).map(|(b, _)| *b).collect();
            for base in later {
                if let Some(seg) = self.segments.remove(&base) {
                    files.extend(seg.file_paths());
                }
            }
            let seg = self.segments.get_mut(&holder).ok_or_else(missing)?;
            if let Some(loc) = seg.find_batch(offset, seg.size())? {
                seg.truncate_to(loc.position)?;
            }
            files
        };
        let end = self.end();
        if self.flushed.offset > end.offset {
            self.flushed = end;
        }
        if self.high_watermark.offset > end.offset {
            self.high_watermark = end;
        }
        self.rebuild_producer_state()?;
        if self.epochs.truncate_from_end(end.offset)
            | self.epochs.truncate_from_start(self.log_start_offset)
        {
            self.epochs.save()?;
        }
        info!(dir = %self.dir.display(), to = end.offset, "truncated the log");
        Ok(files)
    }

    /// Empties the log and starts it again at `offset`, past its end: a follower that was
    /// away while its leader's retention deleted what it lacks starts over at the leader's
    /// log start, as Kafka's does. Returns files to unlink outside the lock.
    pub fn restart_at(&mut self, offset: i64, now_ms: i64) -> Result<Vec<PathBuf>> {
        if self.closed || self.write_in_progress {
            return Err(LogError::Io(std::io::Error::other(
                "the log is closed or an append is in progress",
            )));
        }
        if offset <= self.log_end_offset() {
            return self.truncate_to(offset, now_ms);
        }
        self.forget_recovery_point()?;
        let files = self.empty_from(offset, now_ms)?;
        let end = self.end();
        self.flushed = end;
        self.high_watermark = end;
        self.rebuild_producer_state()?;
        // An empty log has no epochs: its next fetch names none, so nothing can diverge.
        if self.epochs.clear() {
            self.epochs.save()?;
        }
        info!(dir = %self.dir.display(), at = offset, "restarted the log at a later offset");
        Ok(files)
    }

    /// Drops the recovery point, so that a crash in the middle of a cut verifies the segments.
    fn forget_recovery_point(&mut self) -> Result<()> {
        match fs::remove_file(self.dir.join(RECOVERY_POINT_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        self.checkpointed_offset = None;
        Ok(())
    }

    /// Empties the log and makes it start at `offset`; returns the files to unlink. A segment
    /// starting at `offset` is emptied and kept: a new one would have its file name, which
    /// the caller is about to unlink.
    fn empty_from(&mut self, offset: i64, now_ms: i64) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        let others: Vec<i64> = self
            .segments
            .keys()
            .copied()
            .filter(|&b| b != offset)
            .collect();
        for base in others {
            if let Some(seg) = self.segments.remove(&base) {
                files.extend(seg.file_paths());
            }
        }
        match self.segments.get_mut(&offset) {
            Some(seg) => seg.truncate_to(0)?,
            None => {
                let seg =
                    Segment::create(&self.dir, offset, self.config.index_interval_bytes, now_ms)?;
                self.segments.insert(offset, seg);
            }
        }
        self.log_start_offset = offset;
        crate::index::write_file_synced(
            &self.dir.join(LOG_START_FILE),
            offset.to_string().as_bytes(),
        )?;
        Ok(files)
    }

    fn maybe_roll(
        &mut self,
        incoming_bytes: u64,
        incoming_offsets: u64,
        now_ms: i64,
    ) -> Result<()> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let too_big = active.size() + incoming_bytes > self.config.segment_bytes;
        let too_old = now_ms - active.opened_ms >= self.config.segment_ms;
        let offsets_overflow =
            active.next_offset() + incoming_offsets as i64 - active.base_offset > i32::MAX as i64;
        if !(too_big || too_old || offsets_overflow) {
            return Ok(());
        }
        let base = active.next_offset();
        debug!(dir = %self.dir.display(), base, too_big, too_old, "rolling segment");
        self.active_mut().save_indexes()?;
        self.write_producer_snapshot()?;
        let seg = Segment::create(&self.dir, base, self.config.index_interval_bytes, now_ms)?;
        self.segments.insert(base, seg);
        Ok(())
    }

    /// Files holding data between the flushed point and `upto`, to be synced outside the lock.
    pub fn files_to_flush(&self, upto: LogPosition) -> Result<Vec<Arc<File>>> {
        if upto.offset <= self.flushed.offset {
            return Ok(Vec::new());
        }
        self.segments
            .range(self.flushed.segment_base..=upto.segment_base)
            .map(|(_, s)| s.file())
            .collect()
    }

    /// A recovery checkpoint if the flushed point moved since the last one.
    pub fn recovery_checkpoint(&mut self) -> Option<RecoveryCheckpoint> {
        if self.checkpointed_offset == Some(self.flushed.offset) {
            return None;
        }
        self.checkpointed_offset = Some(self.flushed.offset);
        let seg = self.segments.get(&self.flushed.segment_base)?;
        Some(RecoveryCheckpoint {
            dir: self.dir.clone(),
            flushed: self.flushed,
            indexes: Some(seg.index_snapshot()),
        })
    }

    /// Records that everything up to `upto` is on stable storage.
    pub fn mark_flushed(&mut self, upto: LogPosition) {
        if upto.offset > self.flushed.offset {
            self.flushed = upto;
        }
    }

    /// The position of the batch boundary at or below `offset` (a follower's log end, as a
    /// candidate high watermark): `offset` itself when a batch starts there or it is the log
    /// end, else the start of the batch holding it. Reads batch headers.
    pub fn position_at_or_below(&self, offset: i64) -> Result<Option<LogPosition>> {
        let end = self.end();
        if offset >= end.offset {
            return Ok(Some(end));
        }
        if offset < self.log_start_offset {
            return Ok(None);
        }
        let Some((base, seg)) = self.segments.range(..=offset).next_back() else {
            return Ok(None);
        };
        Ok(seg.find_batch(offset, seg.size())?.map(|loc| {
            let start = loc.header.base_offset.min(offset);
            LogPosition {
                offset: start,
                segment_base: *base,
                position: loc.position,
            }
        }))
    }

    /// Sets the high watermark to `to`, lower or higher: a follower takes its leader's.
    pub fn set_high_watermark(&mut self, to: LogPosition) {
        self.high_watermark = to;
        self.producers.note_high_watermark(to.offset);
    }

    /// Lets readers see everything up to `upto`.
    pub fn advance_high_watermark(&mut self, upto: LogPosition) {
        if upto.offset > self.high_watermark.offset {
            self.high_watermark = upto;
            self.producers.note_high_watermark(upto.offset);
        }
    }

    /// Bytes to send for a fetch at `offset`: whole batches from the one containing `offset`,
    /// at most `max_bytes` unless the first batch alone is larger (then that batch), never past
    /// the high watermark. `Ok(None)` means no data yet.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Option<ReadSlice>> {
        self.read_bounded(offset, max_bytes, ReadBound::HighWatermark)
    }

    /// `read`, up to the high watermark (consumers) or the log end (followers, which copy
    /// what the leader has before it is committed).
    pub fn read_bounded(
        &self,
        offset: i64,
        max_bytes: usize,
        bound: ReadBound,
    ) -> Result<Option<ReadSlice>> {
        let hw = match bound {
            ReadBound::HighWatermark => self.high_watermark,
            ReadBound::LastStable => self.last_stable(),
            ReadBound::LogEnd => self.end(),
        };
        if offset < self.log_start_offset || offset > self.log_end_offset() {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset(),
            });
        }
        if offset >= hw.offset {
            return Ok(None);
        }
        let floor = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(self.log_start_offset);
        for (base, seg) in self.segments.range(floor..) {
            if *base > hw.segment_base {
                break;
            }
            let end = if *base == hw.segment_base {
                hw.position
            } else {
                seg.size()
            };
            if let Some(loc) = seg.find_batch(offset, end)? {
                let available = (end - loc.position) as usize;
                let first = loc.header.size().min(available);
                let len = available.min(max_bytes.max(first));
                let whole_through = if len == available && *base == hw.segment_base {
                    Some(hw.offset - 1)
                } else {
                    seg.last_whole_before(loc.position, loc.position + len as u64)?
                };
                return Ok(Some(ReadSlice {
                    file: seg.file()?,
                    position: loc.position,
                    len,
                    whole_through,
                }));
            }
        }
        Ok(None)
    }

    /// Finds the batch holding the first record with a timestamp >= `ts`. Only batch
    /// headers are read here (under the partition's lock); the records are read by
    /// [`TimestampLookup::resolve`], outside it.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<TimestampLookup>> {
        let hw = self.high_watermark;
        for (base, seg) in self.segments.iter() {
            if *base > hw.segment_base {
                break;
            }
            if seg.max_timestamp() < ts {
                continue;
            }
            let end = if *base == hw.segment_base {
                hw.position
            } else {
                seg.size()
            };
            if let Some(loc) = seg.find_timestamp(ts, end)? {
                return self.timestamp_lookup(seg, loc, ts).map(Some);
            }
        }
        Ok(None)
    }

    /// Finds the batch holding the log's largest timestamp (resolve it outside the lock).
    pub fn max_timestamp(&self) -> Result<Option<TimestampLookup>> {
        let best = self
            .segments
            .values()
            .filter(|seg| seg.max_timestamp() >= 0)
            .fold(None::<&Segment>, |best, seg| match best {
                Some(b) if b.max_timestamp() >= seg.max_timestamp() => Some(b),
                _ => Some(seg),
            });
        let Some(seg) = best else { return Ok(None) };
        let ts = seg.max_timestamp();
        seg.find_timestamp(ts, seg.size())?
            .map(|loc| self.timestamp_lookup(seg, loc, ts))
            .transpose()
    }

    fn timestamp_lookup(
        &self,
        seg: &Segment,
        loc: segment::BatchLocation,
        ts: i64,
    ) -> Result<TimestampLookup> {
        Ok(TimestampLookup {
            file: seg.file()?,
            loc,
            ts,
            limit: self.config.max_uncompressed_bytes(),
        })
    }

    /// Syncs everything, saves indexes and leaves the clean-shutdown marker.
    pub fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        // Segments before the flushed one are synced already; opening them all would cost a
        // descriptor each.
        for seg in self
            .segments
            .range(self.flushed.segment_base..)
            .map(|(_, s)| s)
        {
            seg.file()?.sync_all()?;
        }
        self.active_mut().save_indexes()?;
        self.write_producer_snapshot()?;
        fs::write(self.dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// The first half of closing many logs at once: stops appends and writes the index and
    /// producer snapshot files, without syncing. The caller makes them (and the segments)
    /// durable with one filesystem sync for all logs, then calls `StagedClose::finish`. A
    /// crash in between leaves an unclean log, recovered as after any crash.
    pub fn close_staged(&mut self) -> Result<StagedClose> {
        self.closed = true;
        for (path, bytes) in self.active_mut().final_indexes() {
            crate::index::write_file_in_place(&path, &bytes)?;
        }
        let snapshot = self.producers.snapshot_bytes(self.log_end_offset());
        crate::index::write_file_in_place(&self.dir.join(PRODUCER_SNAPSHOT_FILE), &snapshot)?;
        Ok(StagedClose {
            dir: self.dir.clone(),
        })
    }

    /// Moves the log start offset forward (DeleteRecords), durably, and drops the segments
    /// wholly below it. Returns the files to remove, to be unlinked outside the lock.
    pub fn advance_log_start(&mut self, offset: i64) -> Result<Vec<PathBuf>> {
        if offset <= self.log_start_offset {
            return Ok(Vec::new());
        }
        if offset > self.high_watermark.offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.high_watermark.offset,
            });
        }
        crate::index::write_file_synced(
            &self.dir.join(LOG_START_FILE),
            offset.to_string().as_bytes(),
        )?;
        self.log_start_offset = offset;
        self.forget_epochs_below_start();
        let doomed: Vec<i64> = self
            .segments
            .iter()
            .filter(|(base, seg)| {
                **base != self.active().base_offset && seg.next_offset() <= offset
            })
            .map(|(b, _)| *b)
            .collect();
        Ok(self.drop_segments(&doomed))
    }

    /// Bytes of record batches in the log's segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size()).sum()
    }

    /// Deletes whole non-active segments past `retention_ms` (by their largest timestamp)
    /// or beyond `retention_bytes` (oldest first); -1 disables either. Returns the files to
    /// remove, to be unlinked outside the lock.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> Vec<PathBuf> {
        let active = self.active().base_offset;
        let mut total = self.size_bytes();
        let mut doomed = Vec::new();
        for (base, seg) in &self.segments {
            if *base == active {
                break;
            }
            let too_old = retention_ms >= 0
                && seg.max_timestamp() >= 0
                && seg.max_timestamp() < now_ms.saturating_sub(retention_ms);
            let too_big = retention_bytes >= 0 && total > retention_bytes as u64;
            if !(too_old || too_big) {
                break; // deletion keeps the log contiguous: stop at the first segment to keep
            }
            total -= seg.size();
            doomed.push(*base);
        }
        self.drop_segments(&doomed)
    }

    fn drop_segments(&mut self, bases: &[i64]) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for base in bases {
            if let Some(seg) = self.segments.remove(base) {
                files.extend(seg.file_paths());
            }
        }
        if let Some(first) = self.segments.keys().next() {
            self.log_start_offset = self.log_start_offset.max(*first);
        }
        if !bases.is_empty() {
            self.producers.drop_below(self.log_start_offset);
            info!(dir = %self.dir.display(), segments = bases.len(), log_start = self.log_start_offset, "deleted old segments");
        }
        self.forget_epochs_below_start();
        files
    }

    /// Cuts the leader-epoch cache to the log start (retention or DeleteRecords moved it). A
    /// cache that cannot be saved is rebuilt from the batches at the next start.
    fn forget_epochs_below_start(&mut self) {
        if self.epochs.truncate_from_start(self.log_start_offset) {
            if let Err(e) = self.epochs.save() {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not save the leader-epoch cache");
            }
        }
    }

    /// The segments a compaction pass should work on, or `None` when the log is not dirty
    /// enough (see `cleaner`).
    pub fn plan_cleaning(&self, now_ms: i64, config: &CleanerConfig) -> Option<CleanPlan> {
        let active = self.active().base_offset;
        let clean_upto = fs::read_to_string(self.dir.join(CLEANER_CHECKPOINT_FILE))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let lag_horizon = now_ms.saturating_sub(config.min_compaction_lag_ms);
        // Nothing at or past an undecided transaction is cleaned (Kafka's first uncleanable
        // offset): whether its records stay depends on its marker.
        let unstable = self.producers.first_unstable().map(|(o, _)| o);
        let cleanable: Vec<&Segment> = self
            .segments
            .values()
            .take_while(|s| {
                s.base_offset != active
                    && s.max_timestamp() <= lag_horizon
                    && unstable.is_none_or(|o| s.next_offset() <= o)
            })
            .collect();
        let dirty: Vec<&&Segment> = cleanable
            .iter()
            .filter(|s| s.next_offset() > clean_upto)
            .collect();
        if dirty.is_empty() {
            return None;
        }
        let total: u64 = cleanable.iter().map(|s| s.size()).sum();
        let dirty_bytes: u64 = dirty.iter().map(|s| s.size()).sum();
        let overdue = dirty
            .iter()
            .any(|s| s.max_timestamp() < now_ms.saturating_sub(config.max_compaction_lag_ms));
        if (dirty_bytes as f64) < config.min_cleanable_dirty_ratio * total as f64 && !overdue {
            return None;
        }
        let segments: Result<Vec<PlannedSegment>> = cleanable
            .iter()
            .map(|s| {
                Ok(PlannedSegment {
                    base_offset: s.base_offset,
                    file: s.file()?,
                    size: s.size(),
                    path: s.log_path(),
                })
            })
            .collect();
        // Aborted transactions with records in the cleanable segments (their markers may be
        // in later ones): their records are dropped.
        let upto = cleanable.last().map_or(0, |s| s.next_offset());
        let aborted = self
            .segments
            .values()
            .flat_map(|s| s.aborted.entries())
            .filter(|a| a.first_offset < upto)
            .copied()
            .collect();
        match segments {
            Ok(segments) => Some(CleanPlan { segments, aborted }),
            Err(e) => {
                debug!(dir = %self.dir.display(), error = %e, "cannot open segments to clean");
                None
            }
        }
    }

    /// Swaps cleaned copies in for their segments (skipping any segment that retention
    /// removed meanwhile) and records how far the log is clean.
    pub fn install_cleaned(&mut self, cleaned: Vec<CleanedSegment>, now_ms: i64) -> Result<()> {
        let mut clean_upto = None;
        for c in cleaned {
            let current = self
                .segments
                .get(&c.base_offset)
                .map(|s| (s.size(), s.next_offset(), s.log_path()));
            match current {
                Some((size, next, path)) if size == c.original_size => {
                    fs::rename(&c.cleaned_path, &path)?;
                    // Offsets never change in cleaning: the aborted-transactions index stays.
                    let mut seg = Segment::open(
                        &self.dir,
                        c.base_offset,
                        self.config.index_interval_bytes,
                        Some(0),
                        now_ms,
                    )?;
                    seg.save_indexes()?; // the old index files describe the old layout
                    self.segments.insert(c.base_offset, seg);
                    clean_upto = Some(next);
                }
                _ => {
                    let _ = fs::remove_file(&c.cleaned_path);
                }
            }
        }
        if let Some(upto) = clean_upto {
            crate::index::write_file_synced(
                &self.dir.join(CLEANER_CHECKPOINT_FILE),
                upto.to_string().as_bytes(),
            )?;
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
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

/// Warns of offsets that no segment holds (a segment file lost or removed by hand). Compacted
/// logs are skipped: cleaning may legitimately empty the end of a segment.
fn report_gaps(dir: &Path, segments: &BTreeMap<i64, Segment>) {
    let mut previous: Option<&Segment> = None;
    for seg in segments.values() {
        if let Some(prev) = previous.filter(|p| !p.is_empty()) {
            if prev.next_offset() < seg.base_offset {
                crate::note_corruption();
                tracing::warn!(
                    dir = %dir.display(),
                    missing = %format!("{}..{}", prev.next_offset(), seg.base_offset),
                    "offsets missing between segments (a segment file is gone); consumers skip them"
                );
            }
        }
        previous = Some(seg);
    }
}

/// A batch found by timestamp, whose records are read without the partition's lock.
pub struct TimestampLookup {
    file: Arc<File>,
    loc: segment::BatchLocation,
    ts: i64,
    limit: usize,
}

impl TimestampLookup {
    /// The first record of the batch with a timestamp >= the one asked for: (offset,
    /// timestamp). A LogAppendTime batch carries one timestamp for all its records: its base
    /// offset. The batch is read as a bounded stream; if it cannot be read, the batch's
    /// base offset and max timestamp answer.
    pub fn resolve(&self) -> (i64, i64) {
        let h = &self.loc.header;
        let fallback = (h.base_offset, h.max_timestamp);
        if h.is_log_append_time() {
            return fallback;
        }
        match self.first_record_at() {
            Ok(found) => found.unwrap_or(fallback),
            Err(e) => {
                debug!(base_offset = h.base_offset, error = %e, "timestamp lookup could not read a batch");
                fallback
            }
        }
    }

    fn first_record_at(&self) -> Result<Option<(i64, i64)>> {
        use std::os::unix::fs::FileExt;
        let mut bytes = vec![0u8; self.loc.header.size()];
        self.file.read_exact_at(&mut bytes, self.loc.position)?;
        let mut records = crate::records::BatchRecords::open(&bytes, self.limit)?;
        while let Some(r) = records.next_record()? {
            if let Some(t) = r.timestamp.filter(|&t| t >= self.ts) {
                return Ok(Some((r.offset, t)));
            }
        }
        Ok(None)
    }
}

/// A flushed position of the log, saved so crash recovery can start there.
#[derive(Debug, Clone, Copy)]
struct RecoveryPoint {
    segment_base: i64,
    position: u64,
}

impl RecoveryPoint {
    fn read(dir: &Path) -> Option<RecoveryPoint> {
        let text = fs::read_to_string(dir.join(RECOVERY_POINT_FILE)).ok()?;
        let mut parts = text.split_whitespace().map(|p| p.parse::<i64>());
        let segment_base = parts.next()?.ok()?;
        let position = parts.next()?.ok()?;
        (position >= 0).then_some(RecoveryPoint {
            segment_base,
            position: position as u64,
        })
    }
}

/// The data for a recovery checkpoint, taken under the lock and written outside it.
pub struct RecoveryCheckpoint {
    dir: PathBuf,
    flushed: LogPosition,
    indexes: Option<(
        PathBuf,
        crate::index::OffsetIndex,
        PathBuf,
        crate::index::TimeIndex,
    )>,
}

impl RecoveryCheckpoint {
    /// Writes the active segment's indexes, then the recovery point (each synced).
    pub fn write(self) -> Result<()> {
        for (path, bytes) in self.files() {
            crate::index::write_file_synced(&path, &bytes)?;
        }
        Ok(())
    }

    /// Writes the files in place, unsynced; a later filesystem sync (`sync_filesystem`) makes
    /// them durable. Until then a crash finds the previous checkpoint or this one.
    pub fn write_unsynced(self) -> Result<()> {
        for (path, bytes) in self.files() {
            crate::index::write_file_in_place(&path, &bytes)?;
        }
        Ok(())
    }

    fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        if let Some((index_path, index, time_path, time_index)) = &self.indexes {
            files.push((index_path.clone(), index.to_bytes()));
            files.push((time_path.clone(), time_index.to_bytes()));
        }
        // Fixed width, so an in-place overwrite never leaves a longer old tail behind.
        let text = format!(
            "{:<60}\n",
            format!(
                "{} {} {}",
                self.flushed.segment_base, self.flushed.position, self.flushed.offset
            )
        );
        files.push((self.dir.join(RECOVERY_POINT_FILE), text.into_bytes()));
        files
    }
}

pub fn segment_file_name(base: i64) -> String {
    format!("{}.log", segment::file_stem(base))
}

//! Durability: what a flush must sync, the recovery checkpoint written after it, the high
//! watermark, and a clean close (producer snapshot, indexes, the clean-shutdown marker).

use super::*;

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

/// A flushed position of the log, saved so crash recovery can start there.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecoveryPoint {
    pub(super) segment_base: i64,
    pub(super) position: u64,
}

impl RecoveryPoint {
    pub(super) fn read(dir: &Path) -> Option<RecoveryPoint> {
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

impl Log {
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
}

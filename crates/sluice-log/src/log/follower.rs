//! The follower's side: batches appended with the offsets their leader gave them, and the
//! log truncated where it diverges from a new leader's (or emptied to restart elsewhere).

use super::append::batch_headers;
use super::*;

/// What `Log::prepare_replicated` decided.
pub enum PreparedReplicated {
    /// No batch: nothing to write.
    Empty(AppendInfo),
    Write(ReplicatedWrite),
}

/// A replicated append planned under the log's lock, to be written without it and then
/// committed.
pub struct ReplicatedWrite {
    segment: SegmentWrite,
    base_offset: i64,
    headers: Vec<BatchHeader>,
}

impl ReplicatedWrite {
    /// Writes the batches (as given to `prepare_replicated`); needs no lock.
    pub fn write(&self, batches: &[u8]) -> std::io::Result<()> {
        self.segment.write(batches)
    }
}

impl Log {
    /// Appends batches whose offsets a leader assigned (the follower path): stored as they
    /// are, offsets and leader epochs kept. The first must start at this log's end and the
    /// offsets must rise; the leader-epoch cache and the producer state follow the batches.
    /// Plan, write and commit under one borrow; the broker uses the three steps itself
    /// (`prepare_replicated`, `ReplicatedWrite::write`, `commit_replicated`) to write without
    /// holding the log's lock, as the leader's append does.
    pub fn append_replicated(
        &mut self,
        batches: &[u8],
        summary: &BatchSetSummary,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        match self.prepare_replicated(batches, summary, now_ms)? {
            PreparedReplicated::Empty(info) => Ok(info),
            PreparedReplicated::Write(pending) => {
                let written = pending.write(batches);
                self.commit_replicated(pending, batches, written)
            }
        }
    }

    /// Plans a replicated append: checks the batches continue this log, rolls the segment if
    /// needed. Until `commit_replicated`, nothing is visible and no other append may be
    /// planned.
    pub fn prepare_replicated(
        &mut self,
        batches: &[u8],
        summary: &BatchSetSummary,
        now_ms: i64,
    ) -> Result<PreparedReplicated> {
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
            return Ok(PreparedReplicated::Empty(AppendInfo {
                base_offset: end,
                last_offset: end - 1,
                log_append_time: -1,
                end: self.end(),
                duplicate: false,
            }));
        };
        self.maybe_roll(batches.len() as u64, summary.offset_count, now_ms)?;
        let segment = self.active().prepare_append(
            batches,
            first.base_offset,
            first.partition_leader_epoch,
            true,
        )?;
        self.write_in_progress = true;
        Ok(PreparedReplicated::Write(ReplicatedWrite {
            segment,
            base_offset: first.base_offset,
            headers,
        }))
    }

    /// Makes a written replicated append visible (end offset, indexes, producer state,
    /// transaction markers, leader epochs), or undoes a failed one. `batches` are those
    /// given to `prepare_replicated`.
    pub fn commit_replicated(
        &mut self,
        pending: ReplicatedWrite,
        batches: &[u8],
        written: std::io::Result<()>,
    ) -> Result<AppendInfo> {
        self.write_in_progress = false;
        let ReplicatedWrite {
            segment,
            base_offset,
            headers,
        } = pending;
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
            base_offset,
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
}

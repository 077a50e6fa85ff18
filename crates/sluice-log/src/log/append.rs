//! The leader's append path: batches checked against the producer state and staged
//! (`prepare_append`), written outside the partition lock (`PendingWrite`), then committed;
//! segment rolls, and transaction markers with the last stable offset they move.

use super::*;

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

/// The headers of a validated batch set, in order.
pub(super) fn batch_headers(batches: &[u8]) -> Vec<BatchHeader> {
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
            let check = self.producers.check_marker(
                h.producer_id,
                h.producer_epoch(),
                m.coordinator_epoch,
            )?;
            if check == MarkerCheck::NothingOpen {
                // Answered as a retry of what is stored: the caller waits for the log end
                // (which holds any earlier marker) to be replicated.
                let end = self.end();
                return Ok(PreparedAppend::Duplicate(AppendInfo {
                    base_offset: end.offset - 1,
                    last_offset: end.offset - 1,
                    log_append_time: -1,
                    end,
                    duplicate: true,
                }));
            }
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
    pub(super) fn complete_transaction(&mut self, h: &BatchHeader, marker: Marker) {
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

    pub(super) fn maybe_roll(
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
}

//! Reads: file ranges of whole batches from an offset up to a bound (high watermark, last
//! stable offset or log end), and offset lookups by timestamp.

use super::*;

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

/// Where a read stops: at the high watermark (what consumers may see), at the last stable
/// offset (read_committed consumers: no undecided transaction) or at the log end (followers
/// copy what the leader has before it is committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBound {
    HighWatermark,
    LastStable,
    LogEnd,
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

impl Log {
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
}

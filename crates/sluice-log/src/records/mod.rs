//! The records inside a batch: reading them one at a time, and checking a producer's records
//! as Kafka's LogValidator does before anything is stored.
//!
//! Uncompressed records are read in place. Compressed ones come through a streaming
//! decompressor capped at a byte limit (codec.rs), one record at a time into one reused
//! buffer, so opening a batch never costs more memory than its largest record, and a
//! compression bomb ends in an error instead of an allocation the size of its claim.

use std::io::{BufRead, BufReader, Read};

use crate::batch::{BatchHeader, HEADER_SIZE};
use crate::codec;
use crate::error::{LogError, RecordError, Result};

/// One record of a batch, borrowed from the batch or from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: i64,
    /// The record's offset delta as written by the producer.
    pub offset_delta: i64,
    /// The record's timestamp (`None` when base timestamp + delta overflows).
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The whole encoded record, length prefix included (deltas are relative to the batch).
    pub raw: &'a [u8],
}

/// A record header: its key and (nullable) value.
pub use crate::batch::Header;

impl<'a> RecordView<'a> {
    /// The record's headers, parsed from its bytes (for the cold paths that need them: a
    /// queue's delayed delivery and dead letters).
    pub fn headers(&self) -> Result<Vec<Header<'a>>> {
        let mut cur = Cursor {
            buf: self.raw,
            pos: 0,
        };
        cur.varint32()?; // length
        cur.take(1)?; // attributes
        cur.varint64()?; // timestamp delta
        cur.varint32()?; // offset delta
        cur.nullable_bytes()?; // key
        cur.nullable_bytes()?; // value
        let count = cur.varint32()?;
        // Each header takes at least two bytes: the count cannot claim more than that.
        if count < 0 || count as usize > self.raw.len() / 2 {
            return Err(corrupt("bad header count"));
        }
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let key = cur.nullable_bytes()?.ok_or(Malformed("null header key"))?;
            out.push((key, cur.nullable_bytes()?));
        }
        Ok(out)
    }
}

fn corrupt(what: &str) -> LogError {
    LogError::CorruptRecord(what.to_string())
}

/// Why a record's bytes do not parse. A static reason keeps the parser's results small
/// (register-sized) on the hot path; it becomes a `LogError` once, at the end.
#[derive(Debug, Clone, Copy)]
struct Malformed(&'static str);

impl From<Malformed> for LogError {
    fn from(m: Malformed) -> LogError {
        corrupt(m.0)
    }
}

/// Parses the record at the front of `buf`; returns it and the bytes it took. Checks the
/// record's framing entirely: every field and header lies inside its declared length and
/// fills it exactly.
pub fn parse_record<'a>(header: &BatchHeader, buf: &'a [u8]) -> Result<(RecordView<'a>, usize)> {
    Ok(parse_record_inner(header, buf)?)
}

#[inline]
fn parse_record_inner<'a>(
    header: &BatchHeader,
    buf: &'a [u8],
) -> std::result::Result<(RecordView<'a>, usize), Malformed> {
    let mut cur = Cursor { buf, pos: 0 };
    let len = usize::try_from(cur.varint32()?).map_err(|_| Malformed("negative record length"))?;
    let start = cur.pos;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or(Malformed("record overruns its batch"))?;
    let mut body = Cursor {
        buf: &buf[..end],
        pos: start,
    };
    body.take(1)?; // attributes
    let ts_delta = body.varint64()?;
    let offset_delta = body.varint32()? as i64;
    let key = body.nullable_bytes()?;
    let value = body.nullable_bytes()?;
    let headers = body.varint32()?;
    if headers < 0 {
        return Err(Malformed("negative header count"));
    }
    for _ in 0..headers {
        if body.nullable_bytes()?.is_none() {
            return Err(Malformed("null header key"));
        }
        body.nullable_bytes()?;
    }
    if body.pos != end {
        return Err(Malformed("record length does not match its fields"));
    }
    Ok((
        RecordView {
            offset: header.base_offset.wrapping_add(offset_delta),
            offset_delta,
            timestamp: header.base_timestamp.checked_add(ts_delta),
            key,
            value,
            raw: &buf[..end],
        },
        end,
    ))
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

type Parsed<T> = std::result::Result<T, Malformed>;

impl<'a> Cursor<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Parsed<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(Malformed("record truncated"))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    #[inline]
    fn varint(&mut self, max_bytes: usize) -> Parsed<i64> {
        // Fast path: most varints in a record (deltas, short lengths) are one byte.
        if let Some(&b) = self.buf.get(self.pos) {
            if b & 0x80 == 0 {
                self.pos += 1;
                return Ok(((b >> 1) as i64) ^ -((b & 1) as i64));
            }
        }
        let mut z: u64 = 0;
        for i in 0..max_bytes {
            let b = self.take(1)?[0];
            z |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(Malformed("varint too long"))
    }

    /// A zigzag varint that fits 32 bits (lengths, counts, offset deltas).
    #[inline]
    fn varint32(&mut self) -> Parsed<i32> {
        let v = self.varint(5)?;
        i32::try_from(v).map_err(|_| Malformed("varint out of 32-bit range"))
    }

    #[inline]
    fn varint64(&mut self) -> Parsed<i64> {
        self.varint(10)
    }

    #[inline]
    fn nullable_bytes(&mut self) -> Parsed<Option<&'a [u8]>> {
        match self.varint32()? {
            -1 => Ok(None),
            n if n >= 0 => Ok(Some(self.take(n as usize)?)),
            _ => Err(Malformed("negative length")),
        }
    }
}

enum Source<'a> {
    /// Uncompressed records, read in place.
    Slice { buf: &'a [u8], pos: usize },
    /// Decompressed records, parsed in the reader's buffer when whole there (then consumed
    /// on the next call: `pending`), else gathered into `scratch`.
    Stream {
        reader: BufReader<Box<dyn Read + 'a>>,
        scratch: Vec<u8>,
        pending: usize,
    },
}

/// Reads the records of one batch in order, never holding more than one record's bytes.
pub struct BatchRecords<'a> {
    header: BatchHeader,
    source: Source<'a>,
    left: i64,
    limit: usize,
    /// Decompressed bytes read so far.
    read: usize,
}

/// Decompressed bytes a stream reader buffers at once.
const STREAM_BUFFER: usize = 64 * 1024;

impl<'a> BatchRecords<'a> {
    /// Opens the records of `batch` (one whole batch, header included), decompressing at most
    /// `limit` bytes of records.
    pub fn open(batch: &'a [u8], limit: usize) -> Result<BatchRecords<'a>> {
        if batch.len() < HEADER_SIZE {
            return Err(corrupt("truncated batch header"));
        }
        let header = BatchHeader::parse(batch);
        let end = header.size().min(batch.len());
        let payload = &batch[HEADER_SIZE..end];
        let source = match header.compression() {
            0 => Source::Slice {
                buf: payload,
                pos: 0,
            },
            codec_id => Source::Stream {
                reader: BufReader::with_capacity(
                    STREAM_BUFFER,
                    codec::reader(codec_id, payload, limit)?,
                ),
                scratch: Vec::new(),
                pending: 0,
            },
        };
        Ok(BatchRecords {
            header,
            source,
            left: header.record_count.max(0) as i64,
            limit,
            read: 0,
        })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The next record, `None` after `record_count` records.
    #[inline]
    pub fn next_record(&mut self) -> Result<Option<RecordView<'_>>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let header = self.header;
        match &mut self.source {
            Source::Slice { buf, pos } => {
                let (view, used) = parse_record_inner(&header, &buf[*pos..])?;
                *pos += used;
                Ok(Some(view))
            }
            Source::Stream {
                reader,
                scratch,
                pending,
            } => {
                reader.consume(std::mem::take(pending));
                // Most records lie whole in the reader's buffer: parse them there, no copy.
                let whole = whole_record_len(reader.fill_buf().map_err(codec::read_error)?);
                if let Some(used) = whole {
                    self.read = self.read.saturating_add(used);
                    *pending = used;
                    let (view, _) = parse_record_inner(&header, &reader.buffer()[..used])?;
                    return Ok(Some(view));
                }
                // One that straddles the buffer's end is gathered into `scratch`.
                scratch.clear();
                let len = read_length_prefix(reader, scratch)?;
                self.read = self.read.saturating_add(scratch.len()).saturating_add(len);
                if self.read > self.limit {
                    return Err(LogError::RecordTooLarge {
                        size: self.read,
                        max: self.limit,
                    });
                }
                let prefix = scratch.len();
                scratch.resize(prefix + len, 0);
                reader
                    .read_exact(&mut scratch[prefix..])
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => corrupt("record truncated"),
                        _ => codec::read_error(e),
                    })?;
                let (view, _) = parse_record(&header, scratch)?;
                Ok(Some(view))
            }
        }
    }

    /// Checks that no bytes follow the last record (Kafka refuses a batch whose declared size
    /// leaves records over).
    pub fn finish(self) -> Result<()> {
        let trailing = match self.source {
            Source::Slice { buf, pos } => pos < buf.len(),
            Source::Stream {
                mut reader,
                pending,
                ..
            } => {
                reader.consume(pending);
                !reader.fill_buf().map_err(codec::read_error)?.is_empty()
            }
        };
        if trailing {
            return Err(corrupt("bytes left after the batch's last record"));
        }
        Ok(())
    }
}

/// The bytes of the record at the front of `buf` (length prefix included), if it is all
/// there.
fn whole_record_len(buf: &[u8]) -> Option<usize> {
    let mut z: u32 = 0;
    for (i, &b) in buf.iter().take(5).enumerate() {
        z |= ((b & 0x7f) as u32) << (7 * i);
        if b & 0x80 == 0 {
            let len = usize::try_from(((z >> 1) as i32) ^ -((z & 1) as i32)).ok()?;
            let total = (i + 1).checked_add(len)?;
            return (total <= buf.len()).then_some(total);
        }
    }
    None
}

/// Reads a record's length varint into `out`; returns the length.
fn read_length_prefix(reader: &mut impl BufRead, out: &mut Vec<u8>) -> Result<usize> {
    let mut z: u32 = 0;
    for i in 0..5 {
        let b = {
            let buf = reader.fill_buf().map_err(codec::read_error)?;
            let Some(&b) = buf.first() else {
                return Err(corrupt("record truncated"));
            };
            reader.consume(1);
            b
        };
        out.push(b);
        z |= ((b & 0x7f) as u32) << (7 * i);
        if b & 0x80 == 0 {
            let len = ((z >> 1) as i32) ^ -((z & 1) as i32);
            return usize::try_from(len).map_err(|_| corrupt("negative record length"));
        }
    }
    Err(corrupt("varint too long"))
}

/// What a partition requires of the records a client produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRules {
    /// Decompressed bytes one batch's records may take (derived from `max.message.bytes`).
    pub max_uncompressed_bytes: usize,
    /// Compacted topics: every record needs a key (Kafka's INVALID_RECORD otherwise).
    pub require_keys: bool,
    /// CreateTime topics: how far a timestamp may lie before and after the broker's clock
    /// (`message.timestamp.before.max.ms`, `message.timestamp.after.max.ms`). `None` for
    /// LogAppendTime, where the broker's time replaces the producer's.
    pub timestamp_window: Option<(i64, i64)>,
}

/// At most this many per-record errors are reported for one batch.
const MAX_RECORD_ERRORS: usize = 100;

/// Header keys of Sluice's own start with this (a queue's delivery time): validation says
/// whether a set may carry one, so that a share fetch reads only such records to look.
pub const SLUICE_HEADER_PREFIX: &[u8] = b"sluice-";

/// What validation saw in a set of records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validated {
    /// Some record's headers hold `SLUICE_HEADER_PREFIX` (perhaps in a value: a false
    /// positive only costs a share fetch a look).
    pub sluice_headers: bool,
}

/// Checks every batch of a validated set (`batch::validate_batches`) record by record:
/// counts and offset deltas against the header, the framing of each record, no control
/// batches, keys on compacted topics, timestamps inside the window.
pub fn validate_records(set: &[u8], rules: &RecordRules, now_ms: i64) -> Result<Validated> {
    let mut seen = Validated::default();
    let mut pos = 0;
    while pos + HEADER_SIZE <= set.len() {
        let header = BatchHeader::parse(&set[pos..]);
        let end = (pos + header.size()).min(set.len());
        validate_batch(&set[pos..end], rules, now_ms, &mut seen)?;
        pos = end;
    }
    Ok(seen)
}

/// The bytes of a record after its value: the header count and the headers.
fn header_bytes<'a>(r: &RecordView<'a>) -> &'a [u8] {
    let raw_start = r.raw.as_ptr() as usize;
    let after = match (r.value, r.key) {
        (Some(v), _) => v.as_ptr() as usize + v.len() - raw_start,
        // A null value: headers follow its one-byte length; count from the key if any.
        (None, Some(k)) => k.as_ptr() as usize + k.len() - raw_start,
        (None, None) => 0,
    };
    r.raw.get(after..).unwrap_or(r.raw)
}

fn validate_batch(
    batch: &[u8],
    rules: &RecordRules,
    now_ms: i64,
    seen: &mut Validated,
) -> Result<()> {
    let header = BatchHeader::parse(batch);
    if header.is_control() {
        return Err(LogError::InvalidRecord(
            "clients may not write control batches".into(),
        ));
    }
    if header.record_count <= 0 {
        return Err(LogError::InvalidRecord(format!(
            "invalid record count {}",
            header.record_count
        )));
    }
    if header.record_count as i64 != header.last_offset_delta as i64 + 1 {
        return Err(LogError::InvalidRecord(format!(
            "record count {} does not match the offset range (last offset delta {})",
            header.record_count, header.last_offset_delta
        )));
    }
    let window = rules
        .timestamp_window
        .filter(|_| !header.is_log_append_time());
    if let Some(window) = window {
        if let Err(reason) = check_timestamp(header.max_timestamp, window, now_ms) {
            return Err(LogError::InvalidTimestamp(format!(
                "batch max timestamp {}: {reason}",
                header.max_timestamp
            )));
        }
    }
    let limit = rules.max_uncompressed_bytes;
    // The timestamps the window allows, as one range (-1, "none", is allowed too).
    let allowed = window.map_or(i64::MIN..=i64::MAX, |(before, after)| {
        now_ms.saturating_sub(before).max(0)..=now_ms.saturating_add(after)
    });
    let mut records = BatchRecords::open(batch, limit)?;
    let mut errors = Vec::new();
    let mut timestamp_error = false;
    let mut index = 0i64;
    let sluice = memchr::memmem::Finder::new(SLUICE_HEADER_PREFIX);
    while let Some(r) = records.next_record()? {
        if !seen.sluice_headers {
            // A record without headers ends in a zero count: one byte.
            let tail = header_bytes(&r);
            seen.sluice_headers = tail.len() > 1 && sluice.find(tail).is_some();
        }
        let fine = r.offset_delta == index
            && (!rules.require_keys || r.key.is_some())
            && r.timestamp
                .is_some_and(|ts| ts == -1 || allowed.contains(&ts));
        if fine {
            index += 1;
            continue;
        }
        let mut refuse = |message: String| {
            if errors.len() < MAX_RECORD_ERRORS {
                errors.push(RecordError {
                    batch_index: index as i32,
                    message,
                });
            }
        };
        if r.offset_delta != index {
            refuse(format!(
                "record {index} has offset delta {}",
                r.offset_delta
            ));
        }
        if rules.require_keys && r.key.is_none() {
            refuse("compacted topic cannot accept a record without a key".into());
        }
        if let Some(window) = window {
            let checked = r
                .timestamp
                .ok_or_else(|| "overflows".to_string())
                .and_then(|ts| {
                    check_timestamp(ts, window, now_ms).map_err(|e| format!("{ts}: {e}"))
                });
            if let Err(reason) = checked {
                timestamp_error = true;
                refuse(format!("timestamp {reason}"));
            }
        }
        index += 1;
    }
    records.finish()?;
    if errors.is_empty() {
        return Ok(());
    }
    let first = errors[0].message.clone();
    let message = format!(
        "{} record(s) of the batch refused; first: record {}: {first}",
        errors.len(),
        errors[0].batch_index
    );
    Err(LogError::RecordErrors {
        timestamp: timestamp_error,
        message,
        records: errors,
    })
}

/// A CreateTime timestamp must be -1 (none) or lie within `(before, after)` ms of `now`.
fn check_timestamp(
    ts: i64,
    (before, after): (i64, i64),
    now_ms: i64,
) -> std::result::Result<(), String> {
    if ts == -1 {
        return Ok(());
    }
    if ts < -1 {
        return Err("is negative".into());
    }
    let diff = now_ms as i128 - ts as i128;
    if diff > before as i128 {
        return Err(format!(
            "is more than {before} ms before the broker's time (message.timestamp.before.max.ms)"
        ));
    }
    if -diff > after as i128 {
        return Err(format!(
            "is more than {after} ms after the broker's time (message.timestamp.after.max.ms)"
        ));
    }
    Ok(())
}

/// A topic's `compression.type` other than `producer`: the codec batches are stored with
/// and its level (`compression.<codec>.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetCompression {
    pub codec: i16,
    pub level: Option<i32>,
}

/// The record set with every batch in `target`'s codec, or `None` when every batch already
/// is (the common case: stored as sent, no copy). Batches keep their header (offsets,
/// timestamps, producer, sequence, record count); only the codec, length and CRC change.
/// Call on a set that passed `validate_records` with the same `limit`.
pub fn recompress(
    set: &[u8],
    target: TargetCompression,
    limit: usize,
    max_batch_bytes: usize,
) -> Result<Option<Vec<u8>>> {
    let mut pos = 0;
    let mut all_match = true;
    while pos + HEADER_SIZE <= set.len() {
        let h = BatchHeader::parse(&set[pos..]);
        all_match &= h.compression() == target.codec;
        pos += h.size();
    }
    if all_match {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(set.len());
    let mut pos = 0;
    while pos + HEADER_SIZE <= set.len() {
        let h = BatchHeader::parse(&set[pos..]);
        let batch = &set[pos..pos + h.size()];
        pos += h.size();
        if h.compression() == target.codec {
            out.extend_from_slice(batch);
            continue;
        }
        let records = codec::decompress(h.compression(), &batch[HEADER_SIZE..], limit)?;
        let payload = codec::compress_at(target.codec, &records, target.level)?;
        let rebuilt = crate::batch::rebuild_with_codec(batch, target.codec, &payload);
        if rebuilt.len() > max_batch_bytes {
            return Err(LogError::RecordTooLarge {
                size: rebuilt.len(),
                max: max_batch_bytes,
            });
        }
        out.extend_from_slice(&rebuilt);
    }
    Ok(Some(out))
}

/// The records of one uncompressed batch (for internal topics the broker writes itself).
/// Compressed batches and malformed records are an error, never a panic.
pub fn uncompressed_records(batch: &[u8]) -> Result<Vec<RecordView<'_>>> {
    if batch.len() < HEADER_SIZE {
        return Err(LogError::CorruptRecord("truncated batch header".into()));
    }
    let header = BatchHeader::parse(batch);
    if header.compression() != 0 {
        return Err(LogError::InvalidRecord(
            "compressed batch where an uncompressed one was expected".into(),
        ));
    }
    let end = header.size().min(batch.len());
    parse_records(&header, &batch[HEADER_SIZE..end])
}

/// Parses `header.record_count` records from a batch's record bytes (after decompression).
pub fn parse_records<'a>(header: &BatchHeader, records: &'a [u8]) -> Result<Vec<RecordView<'a>>> {
    let count = header.record_count.max(0) as usize;
    let mut out = Vec::with_capacity(count.min(records.len()));
    let mut pos = 0;
    for _ in 0..count {
        let (view, used) = parse_record(header, &records[pos..])?;
        out.push(view);
        pos += used;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

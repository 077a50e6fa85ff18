//! Kafka RecordBatch (magic 2) headers: parsing, validation and in-place offset assignment.
//!
//! The broker never decodes individual records on the hot path: it reads the fixed 61-byte
//! header of each batch, checks the CRC-32C over the batch once, and writes the base offset
//! (which lies outside the CRC) into the header.

use crate::error::LogError;

/// Size of the fixed part of a magic-2 batch header.
pub const HEADER_SIZE: usize = 61;
/// `baseOffset` + `batchLength`: the bytes before the length-counted part of a batch.
pub const LOG_OVERHEAD: usize = 12;

const BATCH_LENGTH_OFFSET: usize = 8;
const LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORD_COUNT_OFFSET: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_FLAG: i16 = 0x08;
const CONTROL_FLAG: i16 = 0x20;

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The fixed header of one stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the length field; the whole batch is `LOG_OVERHEAD + batch_length`.
    pub batch_length: i32,
    /// The leader epoch the batch was appended in (set by the leader that assigned its
    /// offsets).
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub record_count: i32,
    producer_epoch: i16,
    base_sequence: i32,
}

impl BatchHeader {
    /// Parses a header from at least `HEADER_SIZE` bytes (no checks on the values).
    pub fn parse(b: &[u8]) -> BatchHeader {
        BatchHeader {
            base_offset: i64_at(b, 0),
            batch_length: i32_at(b, BATCH_LENGTH_OFFSET),
            partition_leader_epoch: i32_at(b, LEADER_EPOCH_OFFSET),
            magic: b[MAGIC_OFFSET] as i8,
            attributes: i16_at(b, ATTRIBUTES_OFFSET),
            last_offset_delta: i32_at(b, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: i64_at(b, BASE_TIMESTAMP_OFFSET),
            max_timestamp: i64_at(b, MAX_TIMESTAMP_OFFSET),
            producer_id: i64_at(b, PRODUCER_ID_OFFSET),
            record_count: i32_at(b, RECORD_COUNT_OFFSET),
            producer_epoch: i16_at(b, PRODUCER_EPOCH_OFFSET),
            base_sequence: i32_at(b, BASE_SEQUENCE_OFFSET),
        }
    }

    /// Total bytes of the batch on the wire and on disk.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn producer_epoch(&self) -> i16 {
        self.producer_epoch
    }

    pub fn base_sequence(&self) -> i32 {
        self.base_sequence
    }

    /// Part of a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    /// A transaction marker (attribute bit 5), which only the broker writes.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// The batch's timestamps are the broker's (attribute bit 3).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_FLAG != 0
    }
}

/// What `validate_batches` learned about a producer's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSetSummary {
    pub batches: usize,
    /// Offsets the set will occupy (sum of `last_offset_delta + 1`).
    pub offset_count: u64,
    pub max_timestamp: i64,
    /// Some batch carries a producer id (idempotent producer).
    pub idempotent: bool,
}

/// Checks the framing, magic, CRC and size limit of every batch in `buf`, a producer's
/// request: an idempotent producer sends one batch per partition.
///
/// `max_batch_bytes` is `max.message.bytes`: the largest batch accepted.
pub fn validate_batches(buf: &[u8], max_batch_bytes: usize) -> Result<BatchSetSummary, LogError> {
    let summary = validate_replicated_batches(buf, max_batch_bytes)?;
    if summary.idempotent && summary.batches > 1 {
        return Err(LogError::InvalidRecord(
            "an idempotent produce carries one batch per partition".into(),
        ));
    }
    Ok(summary)
}

/// `validate_batches` for batches copied from a leader, where many producers' batches follow
/// each other.
pub fn validate_replicated_batches(
    buf: &[u8],
    max_batch_bytes: usize,
) -> Result<BatchSetSummary, LogError> {
    if buf.is_empty() {
        return Err(LogError::InvalidRecord("empty record set".into()));
    }
    let mut pos = 0;
    let mut summary = BatchSetSummary {
        batches: 0,
        offset_count: 0,
        max_timestamp: -1,
        idempotent: false,
    };
    while pos < buf.len() {
        let rest = &buf[pos..];
        if rest.len() > MAGIC_OFFSET && rest[MAGIC_OFFSET] < 2 {
            return Err(LogError::UnsupportedMagic(rest[MAGIC_OFFSET] as i8));
        }
        if rest.len() < HEADER_SIZE {
            return Err(LogError::CorruptRecord("truncated batch header".into()));
        }
        let header = BatchHeader::parse(rest);
        if header.magic != 2 {
            return Err(LogError::UnsupportedMagic(header.magic));
        }
        if (header.batch_length as i64) < (HEADER_SIZE - LOG_OVERHEAD) as i64 {
            return Err(LogError::CorruptRecord(format!(
                "batch length {} below header size",
                header.batch_length
            )));
        }
        let size = header.size();
        if size > rest.len() {
            return Err(LogError::CorruptRecord(format!(
                "batch of {size} bytes overruns a record set of {}",
                rest.len()
            )));
        }
        if size > max_batch_bytes {
            return Err(LogError::RecordTooLarge {
                size,
                max: max_batch_bytes,
            });
        }
        let stored_crc = u32::from_be_bytes(rest[CRC_OFFSET..CRC_OFFSET + 4].try_into().unwrap());
        if crc32c::crc32c(&rest[ATTRIBUTES_OFFSET..size]) != stored_crc {
            return Err(LogError::CorruptRecord("batch CRC-32C mismatch".into()));
        }
        if header.last_offset_delta < 0 || header.record_count < 0 {
            return Err(LogError::InvalidRecord(
                "negative record count or last offset delta".into(),
            ));
        }
        if header.compression() > 4 {
            return Err(LogError::InvalidRecord(format!(
                "unknown compression codec {}",
                header.compression()
            )));
        }
        if header.is_transactional() && header.producer_id < 0 {
            return Err(LogError::InvalidRecord(
                "a transactional batch needs a producer id".into(),
            ));
        }
        summary.idempotent |= header.producer_id >= 0;
        summary.batches += 1;
        summary.offset_count += header.last_offset_delta as u64 + 1;
        summary.max_timestamp = summary.max_timestamp.max(header.max_timestamp);
        pos += size;
    }
    Ok(summary)
}

/// Writes consecutive base offsets (starting at `base`) and the leader epoch into every batch of
/// an already validated set. Neither field is covered by the CRC.
///
/// With `log_append_time`, marks the batches as LogAppendTime and sets their max timestamp,
/// which is covered by the CRC, so the CRC is computed again.
pub fn assign_offsets(buf: &mut [u8], base: i64, leader_epoch: i32, log_append_time: Option<i64>) {
    let mut pos = 0;
    let mut next = base;
    while pos < buf.len() {
        let header = BatchHeader::parse(&buf[pos..]);
        let size = header.size();
        let batch = &mut buf[pos..pos + size];
        batch[0..8].copy_from_slice(&next.to_be_bytes());
        batch[LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4]
            .copy_from_slice(&leader_epoch.to_be_bytes());
        if let Some(now) = log_append_time {
            let attributes = header.attributes | TIMESTAMP_TYPE_FLAG;
            batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2]
                .copy_from_slice(&attributes.to_be_bytes());
            batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
                .copy_from_slice(&now.to_be_bytes());
            let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
            batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        }
        next += header.last_offset_delta as i64 + 1;
        pos += size;
    }
}

/// Checks one stored batch during recovery: framing, magic and CRC.
pub fn stored_batch_is_intact(batch: &[u8]) -> bool {
    if batch.len() < HEADER_SIZE || batch[MAGIC_OFFSET] != 2 {
        return false;
    }
    let stored_crc = u32::from_be_bytes(batch[CRC_OFFSET..CRC_OFFSET + 4].try_into().unwrap());
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]) == stored_crc
}

/// A record's key and value; `None` is a null key or value.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds an uncompressed magic-2 batch from (key, value) pairs, for tests and tools.
pub fn build_batch(base_timestamp: i64, records: &[KeyValue<'_>]) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_SIZE];
    for (i, (key, value)) in records.iter().enumerate() {
        put_record(&mut b, i as i64, *key, *value);
    }
    seal_batch(&mut b, records.len() as i32, base_timestamp, 0);
    b
}

/// Appends one record (no headers, timestamp delta 0) to a batch being built.
pub fn put_record(out: &mut Vec<u8>, offset_delta: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
    let field_len = |f: Option<&[u8]>| f.map_or(1, |b| varlong_len(b.len() as i64) + b.len());
    let len = 1 + 1 + varlong_len(offset_delta) + field_len(key) + field_len(value) + 1;
    put_varlong(out, len as i64);
    out.push(0); // attributes
    put_varlong(out, 0); // timestamp delta
    put_varlong(out, offset_delta);
    for field in [key, value] {
        match field {
            Some(b) => {
                put_varlong(out, b.len() as i64);
                out.extend_from_slice(b);
            }
            None => put_varlong(out, -1),
        }
    }
    put_varlong(out, 0); // headers
}

/// A record header: its key and value (null when absent).
pub type Header<'a> = (&'a [u8], Option<&'a [u8]>);

/// Appends one record with headers and a timestamp delta to a batch being built.
pub fn put_record_with_headers(
    out: &mut Vec<u8>,
    offset_delta: i64,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header<'_>],
) {
    let field_len = |f: Option<&[u8]>| f.map_or(1, |b| varlong_len(b.len() as i64) + b.len());
    let headers_len: usize = headers
        .iter()
        .map(|(k, v)| field_len(Some(k)) + field_len(*v))
        .sum();
    let len = 1
        + varlong_len(timestamp_delta)
        + varlong_len(offset_delta)
        + field_len(key)
        + field_len(value)
        + varlong_len(headers.len() as i64)
        + headers_len;
    put_varlong(out, len as i64);
    out.push(0); // attributes
    put_varlong(out, timestamp_delta);
    put_varlong(out, offset_delta);
    let put_field = |out: &mut Vec<u8>, field: Option<&[u8]>| match field {
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => put_varlong(out, -1),
    };
    put_field(out, key);
    put_field(out, value);
    put_varlong(out, headers.len() as i64);
    for (k, v) in headers {
        put_field(out, Some(k));
        put_field(out, *v);
    }
}

/// Fills in the header of a batch whose first `HEADER_SIZE` bytes were reserved and whose
/// record bytes (compressed with the codec in `attributes`, if any) follow, then its CRC.
/// The batch has no producer id and base offset 0, as a plain producer sends it.
pub fn seal_batch(b: &mut [u8], record_count: i32, base_timestamp: i64, attributes: i16) {
    let batch_length = (b.len() - LOG_OVERHEAD) as i32;
    b[..8].copy_from_slice(&0i64.to_be_bytes());
    b[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    b[LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4].copy_from_slice(&0i32.to_be_bytes());
    b[MAGIC_OFFSET] = 2;
    b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let last_delta = (record_count - 1).max(0);
    b[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
        .copy_from_slice(&last_delta.to_be_bytes());
    b[BASE_TIMESTAMP_OFFSET..BASE_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&base_timestamp.to_be_bytes());
    b[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&base_timestamp.to_be_bytes());
    b[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&(-1i64).to_be_bytes());
    b[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2].copy_from_slice(&(-1i16).to_be_bytes());
    b[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4].copy_from_slice(&(-1i32).to_be_bytes());
    b[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&record_count.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A batch with the header of `original` (offsets, timestamps, producer, codec) and a new
/// record payload: length, record count and CRC follow the payload.
pub fn rebuild_with_records(original: &[u8], record_count: i32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_SIZE + payload.len());
    b.extend_from_slice(&original[..HEADER_SIZE]);
    b.extend_from_slice(payload);
    let batch_length = (b.len() - LOG_OVERHEAD) as i32;
    b[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    b[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&record_count.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A batch with the header of `original` and its records recompressed: `payload` in
/// `codec`. The codec bits of the attributes, the length and the CRC follow.
pub fn rebuild_with_codec(original: &[u8], codec: i16, payload: &[u8]) -> Vec<u8> {
    let header = BatchHeader::parse(original);
    let mut b = Vec::with_capacity(HEADER_SIZE + payload.len());
    b.extend_from_slice(&original[..HEADER_SIZE]);
    b.extend_from_slice(payload);
    let batch_length = (b.len() - LOG_OVERHEAD) as i32;
    b[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = (header.attributes & !COMPRESSION_MASK) | (codec & COMPRESSION_MASK);
    b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Marks a batch as part of a transaction of `producer_id` (attribute bit 4) with its
/// epoch and base sequence, and sets its CRC again.
pub fn set_transactional(b: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    let attributes = i16_at(b, ATTRIBUTES_OFFSET) | 0x10;
    b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    set_producer(b, producer_id, epoch, base_sequence);
}

/// Sets a batch's producer id, epoch and base sequence, and its CRC again.
pub fn set_producer(b: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    b[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&producer_id.to_be_bytes());
    b[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2].copy_from_slice(&epoch.to_be_bytes());
    b[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// An uncompressed batch of `records` empty-valued records from an idempotent producer.
pub fn build_idempotent_batch(
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    records: usize,
) -> Vec<u8> {
    let values: Vec<KeyValue<'_>> = (0..records).map(|_| (None, Some(&b"v"[..]))).collect();
    let mut b = build_batch(0, &values);
    set_producer(&mut b, producer_id, epoch, base_sequence);
    b
}

fn varlong_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - z.leading_zeros() as usize).max(1).div_ceil(7)
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_batch_validates_and_offsets_are_assigned() {
        let mut set = build_batch(1000, &[(Some(b"k"), Some(b"v")), (None, Some(b"w"))]);
        set.extend(build_batch(2000, &[(None, None)]));
        let s = validate_batches(&set, 1 << 20).unwrap();
        assert_eq!(s.batches, 2);
        assert_eq!(s.offset_count, 3);
        assert_eq!(s.max_timestamp, 2000);
        assign_offsets(&mut set, 40, 7, None);
        let first = BatchHeader::parse(&set);
        let second = BatchHeader::parse(&set[first.size()..]);
        assert_eq!((first.base_offset, first.last_offset()), (40, 41));
        assert_eq!(second.base_offset, 42);
        assert!(
            validate_batches(&set, 1 << 20).is_ok(),
            "offsets are outside the CRC"
        );
    }

    #[test]
    fn log_append_time_rewrites_crc() {
        let mut set = build_batch(1000, &[(None, Some(b"v"))]);
        assign_offsets(&mut set, 0, 0, Some(5555));
        let h = BatchHeader::parse(&set);
        assert_eq!(h.max_timestamp, 5555);
        assert_eq!(h.attributes & TIMESTAMP_TYPE_FLAG, TIMESTAMP_TYPE_FLAG);
        assert!(stored_batch_is_intact(&set));
    }

    #[test]
    fn bad_input_is_rejected() {
        let good = build_batch(1, &[(None, Some(b"value"))]);
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            validate_batches(&flipped, 1 << 20),
            Err(LogError::CorruptRecord(_))
        ));
        assert!(matches!(
            validate_batches(&good[..30], 1 << 20),
            Err(LogError::CorruptRecord(_))
        ));
        assert!(matches!(
            validate_batches(&good, 10),
            Err(LogError::RecordTooLarge { .. })
        ));
        let mut old = good.clone();
        old[MAGIC_OFFSET] = 1;
        assert!(matches!(
            validate_batches(&old, 1 << 20),
            Err(LogError::UnsupportedMagic(1))
        ));
        let mut huge = good.clone();
        huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(validate_batches(&huge, usize::MAX).is_err());
        let mut negative = good;
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(validate_batches(&negative, 1 << 20).is_err());
    }
}

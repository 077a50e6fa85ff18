//! The bench's record batches: built once per batch from a fixed random payload (each value
//! starts with its send time, for end-to-end latency), and walked by header on the way back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sluice_log::batch::{put_record, seal_batch, BatchHeader, HEADER_SIZE};
use sluice_log::codec;
use sluice_log::records::BatchRecords;

/// The most a fetched batch's records may expand to when the bench reads their timestamps.
const MAX_DECOMPRESSED_BATCH: usize = 256 << 20;

/// Bytes a record adds beyond its value (length, attributes, deltas, key, headers), at most.
pub const RECORD_OVERHEAD: usize = 21;

/// Nanoseconds since the Unix epoch: a clock producers and consumers in different processes
/// on one machine share.
pub fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub struct BatchBuilder {
    value: Vec<u8>,
    codec: i16,
    scratch: Vec<u8>,
}

impl BatchBuilder {
    /// Values of `record_size` bytes of pseudo-random data (so compression has real work).
    pub fn new(record_size: usize, codec: i16, seed: u64) -> BatchBuilder {
        let mut x = seed | 1;
        let value = (0..record_size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        BatchBuilder {
            value,
            codec,
            scratch: Vec::new(),
        }
    }

    /// A batch of `count` records; value i begins with `stamp(i)` (big-endian ns).
    pub fn build(&mut self, count: usize, stamp: impl Fn(usize) -> u64) -> anyhow::Result<Bytes> {
        let records_len = count * (self.value.len() + RECORD_OVERHEAD);
        let stamped = self.value.len() >= 8;
        let mut out = if self.codec == 0 {
            Vec::with_capacity(HEADER_SIZE + records_len)
        } else {
            self.scratch.clear();
            self.scratch.reserve(records_len);
            std::mem::take(&mut self.scratch)
        };
        if self.codec == 0 {
            out.resize(HEADER_SIZE, 0);
        }
        for i in 0..count {
            if stamped {
                self.value[..8].copy_from_slice(&stamp(i).to_be_bytes());
            }
            put_record(&mut out, i as i64, None, Some(&self.value));
        }
        let base_timestamp = (wall_clock_ns() / 1_000_000) as i64;
        if self.codec != 0 {
            let compressed = codec::compress(self.codec, &out)?;
            self.scratch = out;
            out = Vec::with_capacity(HEADER_SIZE + compressed.len());
            out.resize(HEADER_SIZE, 0);
            out.extend_from_slice(&compressed);
        }
        seal_batch(&mut out, count as i32, base_timestamp, self.codec);
        Ok(Bytes::from(out))
    }
}

/// What one partition's fetched records held from `fetch_offset` on.
pub struct Walked {
    pub records: u64,
    pub bytes: u64,
    /// Where the next fetch starts.
    pub next_offset: i64,
}

/// Counts the complete batches in a fetch response by their headers. With `latencies`, also
/// reads each record's embedded send time and pushes its age.
pub fn walk(
    records: &[u8],
    fetch_offset: i64,
    mut latencies: Option<&mut Vec<(Duration, u64)>>,
) -> anyhow::Result<Walked> {
    let mut walked = Walked {
        records: 0,
        bytes: 0,
        next_offset: fetch_offset,
    };
    let now = wall_clock_ns();
    let mut rest = records;
    while rest.len() >= HEADER_SIZE {
        let header = BatchHeader::parse(rest);
        let size = header.size();
        if size > rest.len() || size < HEADER_SIZE {
            break; // a partial batch at the end of the response
        }
        let batch = &rest[..size];
        rest = &rest[size..];
        if header.last_offset() < walked.next_offset {
            continue;
        }
        let skipped = (walked.next_offset - header.base_offset).max(0) as u64;
        walked.records += (header.record_count.max(0) as u64).saturating_sub(skipped);
        walked.bytes += size as u64;
        if let Some(out) = latencies.as_deref_mut() {
            let mut records = BatchRecords::open(batch, MAX_DECOMPRESSED_BATCH)?;
            while let Some(r) = records.next_record()? {
                if let Some(v) = r.value.filter(|v| v.len() >= 8 && r.offset >= fetch_offset) {
                    let sent = u64::from_be_bytes(v[..8].try_into().unwrap());
                    out.push((Duration::from_nanos(now.saturating_sub(sent)), 1));
                }
            }
        }
        walked.next_offset = header.last_offset() + 1;
    }
    Ok(walked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_log::batch::validate_batches;

    #[test]
    fn built_batches_are_valid_and_walk_back() {
        for codec in [0, 1, 2, 3, 4] {
            let mut builder = BatchBuilder::new(100, codec, 7);
            let now = wall_clock_ns();
            let batch = builder.build(3, |_| now).unwrap();
            let summary = validate_batches(&batch, usize::MAX).unwrap();
            assert_eq!(summary.offset_count, 3, "codec {codec}");
            let mut lat = Vec::new();
            let walked = walk(&batch, 0, Some(&mut lat)).unwrap();
            assert_eq!((walked.records, walked.next_offset), (3, 3));
            assert_eq!(lat.len(), 3);
            assert!(lat.iter().all(|(d, _)| *d < Duration::from_secs(5)));
            // Resuming inside the batch counts only what is left.
            assert_eq!(walk(&batch, 2, None).unwrap().records, 1);
            // A truncated batch is left for the next fetch.
            assert_eq!(walk(&batch[..batch.len() - 1], 0, None).unwrap().records, 0);
        }
    }
}

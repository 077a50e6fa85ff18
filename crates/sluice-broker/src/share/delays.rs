//! Delayed delivery, a queue feature of Sluice's own: a record carrying the header
//! `sluice-deliver-at` (epoch milliseconds) or `sluice-delay-ms` (milliseconds after the
//! record's timestamp) is not offered to a share group before that time. Consumer groups read
//! it at once: it is in the log like any record.

use memchr::memmem;
use sluice_log::batch::BatchHeader;
use sluice_log::records::BatchRecords;

use super::partition::Delays;

pub const DELIVER_AT_HEADER: &str = "sluice-deliver-at";
pub const DELAY_MS_HEADER: &str = "sluice-delay-ms";
/// What both header names start with: batches without it are skipped unparsed.
const PREFIX: &[u8] = b"sluice-del";
/// Decompressed bytes read from one batch while looking for delays.
const MAX_BATCH_BYTES: usize = 64 << 20;

/// The records of `batches` (whole batches as stored) that must wait past `now_ms`, with the
/// time each may be delivered. Uncompressed batches without the header names in their bytes
/// are not parsed; compressed ones are read through.
pub fn delays_in(batches: &[u8], now_ms: i64) -> Delays {
    let mut out = Delays::new();
    let finder = memmem::Finder::new(PREFIX);
    let mut pos = 0;
    while pos + sluice_log::batch::HEADER_SIZE <= batches.len() {
        let header = BatchHeader::parse(&batches[pos..]);
        let end = (pos + header.size()).min(batches.len());
        let batch = &batches[pos..end];
        pos = end;
        if header.compression() == 0 && finder.find(batch).is_none() {
            continue;
        }
        let Ok(mut records) = BatchRecords::open(batch, MAX_BATCH_BYTES) else {
            continue;
        };
        while let Ok(Some(record)) = records.next_record() {
            if let Some(at) = deliver_at(&record).filter(|&at| at > now_ms) {
                out.insert(record.offset, at);
            }
        }
    }
    out
}

/// When a record asks to be delivered, if it does.
fn deliver_at(record: &sluice_log::records::RecordView<'_>) -> Option<i64> {
    let headers = record.headers().ok()?;
    let number =
        |v: Option<&[u8]>| -> Option<i64> { std::str::from_utf8(v?).ok()?.trim().parse().ok() };
    for (key, value) in headers {
        if key == DELIVER_AT_HEADER.as_bytes() {
            return number(value);
        }
        if key == DELAY_MS_HEADER.as_bytes() {
            return record.timestamp?.checked_add(number(value)?);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_log::batch::{put_record_with_headers, seal_batch, HEADER_SIZE};

    #[test]
    fn records_with_a_future_delivery_time_are_found() {
        let mut b = vec![0u8; HEADER_SIZE];
        put_record_with_headers(&mut b, 0, 0, None, Some(b"now"), &[]);
        put_record_with_headers(
            &mut b,
            1,
            0,
            None,
            Some(b"at"),
            &[(DELIVER_AT_HEADER.as_bytes(), Some(b"5000"))],
        );
        put_record_with_headers(
            &mut b,
            2,
            10,
            None,
            Some(b"in"),
            &[(b"x", None), (DELAY_MS_HEADER.as_bytes(), Some(b"3000"))],
        );
        put_record_with_headers(
            &mut b,
            3,
            0,
            None,
            Some(b"past"),
            &[(DELIVER_AT_HEADER.as_bytes(), Some(b"10"))],
        );
        put_record_with_headers(
            &mut b,
            4,
            0,
            None,
            Some(b"junk"),
            &[(DELIVER_AT_HEADER.as_bytes(), Some(b"soon"))],
        );
        seal_batch(&mut b, 5, 1000, 0);
        let mut plain = vec![0u8; HEADER_SIZE];
        put_record_with_headers(&mut plain, 0, 0, None, Some(b"plain"), &[]);
        seal_batch(&mut plain, 1, 1000, 0);
        let mut both = plain.clone();
        both.extend_from_slice(&b);
        // Offsets as stored: the second batch starts at offset 1.
        both[plain.len()..plain.len() + 8].copy_from_slice(&1i64.to_be_bytes());
        let found = delays_in(&both, 2000);
        assert_eq!(found, Delays::from([(2, 5000), (3, 4010)]));
        assert!(delays_in(&plain, 0).is_empty());
    }
}

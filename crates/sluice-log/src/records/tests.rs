//! Unit tests of `records`.

use super::*;
use crate::batch::{
    assign_offsets, build_batch, put_record, put_record_with_headers, rebuild_with_records,
    seal_batch, validate_batches, HEADER_SIZE,
};

const NOW: i64 = 1_700_000_000_000;

fn rules() -> RecordRules {
    RecordRules {
        max_uncompressed_bytes: 1 << 20,
        require_keys: false,
        timestamp_window: Some((i64::MAX, 3_600_000)),
    }
}

/// Recomputes the CRC after a test edited the header or records.
fn reseal(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn set_i32(b: &mut [u8], at: usize, v: i32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    reseal(b);
}

/// `plain` (an uncompressed batch) with its records compressed with `codec`.
fn compressed(plain: &[u8], codec_id: i16) -> Vec<u8> {
    let h = BatchHeader::parse(plain);
    let payload = codec::compress(codec_id, &plain[HEADER_SIZE..]).unwrap();
    let mut b = rebuild_with_records(plain, h.record_count, &payload);
    b[21..23].copy_from_slice(&codec_id.to_be_bytes());
    reseal(&mut b);
    b
}

fn check(b: &[u8], rules: &RecordRules) -> Result<()> {
    validate_batches(b, usize::MAX)?;
    validate_records(b, rules, NOW).map(|_| ())
}

#[test]
fn producers_batches_pass_with_every_codec() {
    let plain = build_batch(NOW, &[(Some(b"k"), Some(b"v")), (None, Some(&[7u8; 500]))]);
    for codec_id in 0..=4 {
        let b = if codec_id == 0 {
            plain.clone()
        } else {
            compressed(&plain, codec_id)
        };
        check(&b, &rules()).unwrap_or_else(|e| panic!("codec {codec_id}: {e}"));
        let mut walk = BatchRecords::open(&b, 1 << 20).unwrap();
        let first = walk.next_record().unwrap().unwrap();
        assert_eq!(
            (first.key, first.value, first.timestamp),
            (Some(&b"k"[..]), Some(&b"v"[..]), Some(NOW))
        );
        assert_eq!(
            walk.next_record().unwrap().unwrap().value.unwrap().len(),
            500
        );
        assert!(walk.next_record().unwrap().is_none());
        walk.finish().unwrap();
    }
}

#[test]
fn records_across_the_stream_buffer_are_read_whole() {
    // 2,000 records of varying size: many straddle the reader's 64 KiB buffer.
    let values: Vec<Vec<u8>> = (0..2000)
        .map(|i| vec![(i % 251) as u8; 50 + (i * 37) % 400])
        .collect();
    let kv: Vec<_> = values
        .iter()
        .map(|v| (Some(&b"key"[..]), Some(v.as_slice())))
        .collect();
    let plain = build_batch(NOW, &kv);
    for codec_id in 1..=4 {
        let b = compressed(&plain, codec_id);
        check(&b, &rules_with_limit(8 << 20)).unwrap_or_else(|e| panic!("codec {codec_id}: {e}"));
        let mut walk = BatchRecords::open(&b, 8 << 20).unwrap();
        let mut i = 0;
        while let Some(r) = walk.next_record().unwrap() {
            assert_eq!(
                r.value.unwrap(),
                values[i].as_slice(),
                "codec {codec_id} record {i}"
            );
            assert_eq!(r.offset_delta, i as i64);
            i += 1;
        }
        assert_eq!(i, 2000);
        walk.finish().unwrap();
    }
}

fn rules_with_limit(limit: usize) -> RecordRules {
    RecordRules {
        max_uncompressed_bytes: limit,
        ..rules()
    }
}

#[test]
fn counts_that_disagree_with_the_records_are_refused() {
    let good = build_batch(NOW, &[(None, Some(b"a")), (None, Some(b"b"))]);
    for (count, last_delta) in [
        (0, -1),
        (0, 1),
        (i32::MAX, 1),
        (2, i32::MAX),
        (i32::MAX, i32::MAX - 1),
        (3, 2),
        (1, 0),
    ] {
        let mut b = good.clone();
        set_i32(&mut b, 57, count);
        set_i32(&mut b, 23, last_delta);
        assert!(
            check(&b, &rules()).is_err(),
            "count {count}, last delta {last_delta}"
        );
    }
}

#[test]
fn garbage_records_under_a_valid_crc_are_refused() {
    let good = build_batch(NOW, &[(Some(b"key"), Some(b"value"))]);
    for at in HEADER_SIZE..good.len() {
        for byte in [0x00, 0x7f, 0x80, 0xff] {
            let mut b = good.clone();
            if b[at] == byte {
                continue;
            }
            b[at] = byte;
            reseal(&mut b);
            // Key and value bytes may change freely; framing bytes may not.
            if let Err(e) = check(&b, &rules()) {
                assert!(!matches!(e, LogError::Io(_)), "{e}");
            }
        }
    }
    // Bytes after the last record.
    let mut trailing = good.clone();
    trailing.push(0);
    let mut trailing = rebuild_with_records(&good, 1, &trailing[HEADER_SIZE..]);
    reseal(&mut trailing);
    assert!(matches!(
        check(&trailing, &rules()),
        Err(LogError::CorruptRecord(_))
    ));
    // An offset delta that is not the record's index.
    let mut records = Vec::new();
    put_record(&mut records, 5, None, Some(b"v"));
    let b = rebuild_with_records(&good, 1, &records);
    assert!(matches!(
        check(&b, &rules()),
        Err(LogError::RecordErrors {
            timestamp: false,
            ..
        })
    ));
}

#[test]
fn control_batches_from_clients_are_refused() {
    let mut b = build_batch(NOW, &[(None, Some(b"a"))]);
    b[21..23].copy_from_slice(&0x20i16.to_be_bytes());
    reseal(&mut b);
    assert!(matches!(
        check(&b, &rules()),
        Err(LogError::InvalidRecord(_))
    ));
}

#[test]
fn compacted_topics_name_the_records_without_keys() {
    let plain = build_batch(
        NOW,
        &[
            (Some(b"k"), Some(b"v")),
            (None, Some(b"x")),
            (Some(b"j"), None),
            (None, None),
        ],
    );
    let compacted = RecordRules {
        require_keys: true,
        ..rules()
    };
    for codec_id in [0, 4] {
        let b = if codec_id == 0 {
            plain.clone()
        } else {
            compressed(&plain, codec_id)
        };
        match check(&b, &compacted) {
            Err(LogError::RecordErrors {
                timestamp: false,
                records,
                ..
            }) => {
                let indexes: Vec<i32> = records.iter().map(|r| r.batch_index).collect();
                assert_eq!(indexes, vec![1, 3]);
            }
            other => panic!("{other:?}"),
        }
        check(&b, &rules()).unwrap();
    }
}

#[test]
fn timestamps_outside_the_window_are_refused() {
    for ts in [i64::MIN, -2, i64::MAX, NOW + 3_600_001] {
        let b = build_batch(ts, &[(None, Some(b"a"))]);
        match check(&b, &rules()) {
            Err(LogError::InvalidTimestamp(_))
            | Err(LogError::RecordErrors {
                timestamp: true, ..
            }) => {}
            other => panic!("{ts}: {other:?}"),
        }
    }
    for ts in [-1, 0, NOW - 1_000_000_000, NOW + 3_600_000] {
        check(&build_batch(ts, &[(None, Some(b"a"))]), &rules())
            .unwrap_or_else(|e| panic!("{ts}: {e}"));
    }
    let strict = RecordRules {
        timestamp_window: Some((1000, 1000)),
        ..rules()
    };
    assert!(check(&build_batch(NOW - 1001, &[(None, Some(b"a"))]), &strict).is_err());
    let append_time = RecordRules {
        timestamp_window: None,
        ..rules()
    };
    check(&build_batch(i64::MAX, &[(None, Some(b"a"))]), &append_time).unwrap();
}

#[test]
fn compression_bombs_are_refused_without_expanding() {
    // One record whose value is 8 MiB of zeros: a few KB compressed.
    let big = vec![0u8; 8 << 20];
    let plain = build_batch(NOW, &[(Some(b"k"), Some(&big))]);
    for codec_id in 1..=4 {
        let b = compressed(&plain, codec_id);
        assert!(b.len() < 1 << 20, "codec {codec_id}: {} bytes", b.len());
        match check(&b, &rules()) {
            Err(LogError::RecordTooLarge { max, .. }) => assert_eq!(max, 1 << 20),
            other => panic!("codec {codec_id}: {other:?}"),
        }
        let roomy = RecordRules {
            max_uncompressed_bytes: 16 << 20,
            ..rules()
        };
        check(&b, &roomy).unwrap();
    }
}

#[test]
fn validation_says_whether_a_set_may_carry_sluice_headers() {
    use crate::batch::{put_record_with_headers, seal_batch, HEADER_SIZE};
    let rules = RecordRules {
        max_uncompressed_bytes: 1 << 20,
        require_keys: false,
        timestamp_window: None,
    };
    let set = |headers: &[(&[u8], Option<&[u8]>)], value: Option<&[u8]>| {
        let mut b = vec![0u8; HEADER_SIZE];
        put_record_with_headers(&mut b, 0, 0, None, Some(b"sluice-in-a-value"), &[]);
        put_record_with_headers(&mut b, 1, 0, Some(b"k"), value, headers);
        seal_batch(&mut b, 2, NOW, 0);
        validate_records(&b, &rules, NOW).unwrap().sluice_headers
    };
    assert!(
        !set(&[], Some(b"v")),
        "a value naming sluice- is not a header"
    );
    assert!(!set(&[(b"trace", Some(b"x"))], Some(b"v")));
    assert!(set(&[(b"sluice-delay-ms", Some(b"5"))], Some(b"v")));
    assert!(set(
        &[(b"a", None), (b"sluice-deliver-at", Some(b"1"))],
        None
    ));
}

#[test]
fn records_with_headers_are_built_and_read_back() {
    let mut b = vec![0u8; HEADER_SIZE];
    let headers: [Header<'_>; 2] = [(b"a", Some(b"1")), (b"b", None)];
    put_record_with_headers(&mut b, 0, 5, Some(b"k"), Some(b"v"), &headers);
    put_record_with_headers(&mut b, 1, 0, None, None, &[]);
    seal_batch(&mut b, 2, 100, 0);
    assert!(validate_batches(&b, 1 << 20).is_ok());
    let recs = uncompressed_records(&b).unwrap();
    assert_eq!(recs[0].timestamp, Some(105));
    assert_eq!(
        (recs[0].key, recs[0].value),
        (Some(&b"k"[..]), Some(&b"v"[..]))
    );
    assert_eq!(recs[0].headers().unwrap(), headers.to_vec());
    assert!(recs[1].headers().unwrap().is_empty());
}

#[test]
fn records_of_an_uncompressed_batch_are_read_back() {
    let mut b = build_batch(
        500,
        &[
            (Some(b"k"), Some(b"v")),
            (None, None),
            (Some(b""), Some(&[9u8; 300])),
        ],
    );
    assign_offsets(&mut b, 10, 0, None);
    let records = uncompressed_records(&b).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(
        (records[0].offset, records[0].key, records[0].value),
        (10, Some(&b"k"[..]), Some(&b"v"[..]))
    );
    assert_eq!((records[1].key, records[1].value), (None, None));
    assert_eq!(records[2].value.unwrap().len(), 300);
    assert_eq!(records[2].timestamp, Some(500));
    for cut in 0..b.len() {
        let _ = uncompressed_records(&b[..cut]); // never panics
    }
}

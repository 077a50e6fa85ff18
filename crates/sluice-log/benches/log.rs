//! Micro-benchmarks of the storage hot paths: batch validation (framing + CRC-32C), record
//! validation (every record, uncompressed and through each codec), offset assignment,
//! appending to a log (page-cache write, no fsync) and reading from it.
//!
//!   cargo bench -p sluice-log --bench log

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_log::batch::{
    assign_offsets, build_batch, rebuild_with_records, validate_batches, HEADER_SIZE,
};
use sluice_log::codec;
use sluice_log::records::{validate_records, RecordRules};
use sluice_log::{Log, LogConfig};

/// A batch of about 1 MB: `count` records of `size` bytes.
fn batch(count: usize, size: usize) -> Vec<u8> {
    let value = vec![0x5a; size];
    let records: Vec<_> = (0..count).map(|_| (None, Some(value.as_slice()))).collect();
    build_batch(1, &records)
}

fn batches(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch");
    for (name, b) in [
        ("1KB-records", batch(1000, 1024)),
        ("100B-records", batch(9000, 100)),
    ] {
        group.throughput(Throughput::Bytes(b.len() as u64));
        group.bench_function(format!("validate/{name}"), |bench| {
            bench.iter(|| validate_batches(&b, usize::MAX).unwrap())
        });
        let rules = RecordRules {
            max_uncompressed_bytes: 64 << 20,
            require_keys: false,
            timestamp_window: Some((i64::MAX, i64::MAX)),
        };
        for (codec_name, codec_id) in [("none", 0i16), ("lz4", 3), ("zstd", 4)] {
            let set = if codec_id == 0 {
                b.clone()
            } else {
                let payload = codec::compress(codec_id, &b[HEADER_SIZE..]).unwrap();
                let records = i32::from_be_bytes(b[57..61].try_into().unwrap());
                let mut c = rebuild_with_records(&b, records, &payload);
                c[21..23].copy_from_slice(&codec_id.to_be_bytes());
                let crc = crc32c::crc32c(&c[21..]);
                c[17..21].copy_from_slice(&crc.to_be_bytes());
                c
            };
            group.bench_function(format!("validate_records/{name}/{codec_name}"), |bench| {
                bench.iter(|| validate_records(&set, &rules, 1).unwrap())
            });
        }
        let mut owned = b.clone();
        group.bench_function(format!("assign_offsets/{name}"), |bench| {
            bench.iter(|| assign_offsets(&mut owned, 42, 0, None))
        });
    }
    group.finish();
}

fn append_and_read(c: &mut Criterion) {
    let b = batch(1000, 1024);
    let summary = validate_batches(&b, usize::MAX).unwrap();
    let config = LogConfig {
        segment_bytes: 256 << 20,
        max_message_bytes: 2 << 20,
        ..LogConfig::default()
    };
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(16 * b.len() as u64));
    group.bench_function("append/16x1MB-batches", |bench| {
        bench.iter_batched_ref(
            || {
                let dir = tempfile::tempdir().unwrap();
                let log = Log::open(dir.path(), config.clone(), 0).unwrap();
                (dir, log)
            },
            |(_, log)| {
                for _ in 0..16 {
                    log.append(&b, &summary, 0, 0).unwrap();
                }
            },
            BatchSize::PerIteration,
        )
    });

    // Reads locate a batch by offset (sparse index + header walk) and copy it out.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config.clone(), 0).unwrap();
    let mut end = None;
    for _ in 0..64 {
        end = Some(log.append(&b, &summary, 0, 0).unwrap().end);
    }
    let end = end.unwrap();
    log.mark_flushed(end);
    log.advance_high_watermark(end);
    let mut offset = 0;
    group.throughput(Throughput::Bytes(b.len() as u64));
    group.bench_function("read/1MB-from-page-cache", |bench| {
        bench.iter(|| {
            let slice = log.read(offset, 1 << 20).unwrap().unwrap();
            offset = (offset + 1000) % (64 * 1000);
            slice.read_to_vec().unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, batches, append_and_read);
criterion_main!(benches);

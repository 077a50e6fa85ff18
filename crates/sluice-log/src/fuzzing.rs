//! Entry points for fuzzing (fuzz/ and the smoke tests) and a small deterministic mutator,
//! so the test command runs the same targets for a few seconds without libFuzzer.

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::records::{validate_records, BatchRecords, RecordRules};

/// What a produce does with untrusted record bytes: framing and CRC, then every record, then
/// (if accepted) a walk of each batch as the cleaner and timestamp lookups do. Never panics;
/// never expands past 1 MiB.
pub fn validate_record_set(set: &[u8]) {
    let rules = RecordRules {
        max_uncompressed_bytes: 1 << 20,
        require_keys: set.first().is_some_and(|b| b & 1 == 1),
        timestamp_window: Some((i64::MAX, 3_600_000)),
    };
    if batch::validate_batches(set, 1 << 20).is_err() {
        return;
    }
    if validate_records(set, &rules, 1_700_000_000_000).is_err() {
        return;
    }
    let mut pos = 0;
    while pos + HEADER_SIZE <= set.len() {
        let size = BatchHeader::parse(&set[pos..]).size();
        let batch = &set[pos..(pos + size).min(set.len())];
        let mut records = BatchRecords::open(batch, 1 << 20).expect("accepted batches open");
        while records
            .next_record()
            .expect("accepted batches read")
            .is_some()
        {}
        pos += size;
    }
}

/// A deterministic byte mutator (xorshift), for smoke-fuzzing without libFuzzer.
pub struct Mutator {
    state: u64,
}

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator { state: seed | 1 }
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// One to four random edits of `input`: bit flips, interesting bytes and integers,
    /// truncation, duplication and insertion.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        const INTERESTING: [i32; 8] = [0, -1, 1, 0x7f, 0x80, i32::MAX, i32::MIN, 0xffff];
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(4) {
            let len = out.len();
            match self.below(7) {
                0 if len > 0 => {
                    let i = self.below(len);
                    out[i] ^= 1 << self.below(8);
                }
                1 if len > 0 => {
                    let i = self.below(len);
                    out[i] = [0u8, 0xff, 0x7f, 0x80][self.below(4)];
                }
                2 if len >= 4 => {
                    let i = self.below(len - 3);
                    let v = INTERESTING[self.below(INTERESTING.len())];
                    out[i..i + 4].copy_from_slice(&v.to_be_bytes());
                }
                3 if len > 0 => out.truncate(self.below(len)),
                4 if len > 0 => {
                    let start = self.below(len);
                    let end = (start + self.below(64)).min(len);
                    let chunk = out[start..end].to_vec();
                    let at = self.below(out.len());
                    out.splice(at..at, chunk);
                }
                5 => {
                    let at = self.below(len + 1);
                    let junk: Vec<u8> =
                        (0..self.below(16)).map(|_| self.next_u64() as u8).collect();
                    out.splice(at..at, junk);
                }
                _ => {}
            }
        }
        out
    }
}

/// Runs `target` on every saved crash of a fuzz target (`fuzz/regressions/<target>/` of the
/// repository), so each crash ever found stays a test.
pub fn replay_regressions(target_name: &str, mut target: impl FnMut(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target_name);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if let Ok(input) = std::fs::read(entry.path()) {
                target(&input);
            }
        }
    }
}

/// Runs `target` on mutations of `seeds` until `duration` has passed; returns the count.
pub fn smoke(
    seeds: &[Vec<u8>],
    duration: std::time::Duration,
    mut target: impl FnMut(&[u8]),
) -> u64 {
    let started = std::time::Instant::now();
    let mut m = Mutator::new(0x5eed_5eed);
    let mut runs = 0;
    while started.elapsed() < duration {
        let seed = &seeds[m.below(seeds.len())];
        let input = m.mutate(seed);
        target(&input);
        runs += 1;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_batch, rebuild_with_records};
    use crate::codec;

    /// Valid record sets of every codec, keyed and keyless, one and two batches.
    fn seeds() -> Vec<Vec<u8>> {
        let plain = build_batch(
            1_700_000_000_000,
            &[
                (Some(b"key"), Some(b"value")),
                (None, Some(&[7u8; 300])),
                (Some(b"k"), None),
            ],
        );
        let mut out = vec![plain.clone(), [plain.clone(), plain.clone()].concat()];
        for codec_id in 1..=4i16 {
            let payload = codec::compress(codec_id, &plain[HEADER_SIZE..]).unwrap();
            let mut b = rebuild_with_records(&plain, 3, &payload);
            b[21..23].copy_from_slice(&codec_id.to_be_bytes());
            let crc = crc32c::crc32c(&b[21..]);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
            out.push(b);
        }
        out
    }

    /// The fuzz target over a few seconds of mutations, plus every crash ever found
    /// (fuzz/regressions/batch_validation/).
    #[test]
    fn batch_validation_smoke_fuzz() {
        replay_regressions("batch_validation", validate_record_set);
        let seeds = seeds();
        for s in &seeds {
            validate_record_set(s);
        }
        let runs = smoke(
            &seeds,
            std::time::Duration::from_secs(3),
            validate_record_set,
        );
        assert!(runs > 1000, "only {runs} inputs in 3 s");
    }
}

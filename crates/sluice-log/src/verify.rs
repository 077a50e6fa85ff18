//! `sluice log verify`: reads every segment of a data directory (broker stopped or not) and
//! reports what is wrong: batches whose framing or CRC is bad, offsets that go backwards,
//! and gaps between segments.
//!
//! The broker itself checks batches only where it must (crash recovery, from the recovery
//! point on); a bit flipped in a segment after a clean shutdown is found only here.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// A batch that cannot be read or fails its CRC: its data is damaged.
    Corrupt,
    /// Offsets missing between two segments (normal on compacted topics, where cleaning may
    /// empty the end of a segment; data loss elsewhere).
    Gap,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: FindingKind,
    pub file: PathBuf,
    /// Byte position in the file.
    pub position: u64,
    /// The offset the batch claims, or where the gap starts.
    pub offset: i64,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub partitions: usize,
    pub segments: usize,
    pub batches: u64,
    pub bytes: u64,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn corrupt(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.kind == FindingKind::Corrupt)
            .count()
    }
}

/// Verifies every partition directory under `data_dir` (directories holding `.log` files).
pub fn verify_data_dir(data_dir: &Path) -> io::Result<Report> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(data_dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut report = Report::default();
    for dir in dirs {
        let segments = segment_files(&dir)?;
        if segments.is_empty() {
            continue;
        }
        report.partitions += 1;
        verify_partition(&segments, &mut report)?;
    }
    Ok(report)
}

/// The `.log` files of a partition directory by base offset.
fn segment_files(dir: &Path) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut out: Vec<(i64, PathBuf)> = fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let base = name.strip_suffix(".log")?.parse::<i64>().ok()?;
            Some((base, e.path()))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn verify_partition(segments: &[(i64, PathBuf)], report: &mut Report) -> io::Result<()> {
    let mut previous_end: Option<i64> = None;
    for (base, path) in segments {
        report.segments += 1;
        if let Some(end) = previous_end.filter(|&end| end < *base) {
            report.findings.push(Finding {
                kind: FindingKind::Gap,
                file: path.clone(),
                position: 0,
                offset: end,
                detail: format!("offsets {end}..{} are in no segment", base - 1),
            });
        }
        let next = verify_segment(*base, path, report)?;
        // An empty segment (a fresh active one) says nothing about the offsets before it.
        previous_end = Some(next.unwrap_or(*base));
    }
    Ok(())
}

/// Checks every batch of one segment; returns the offset after its last readable batch.
fn verify_segment(base: i64, path: &Path, report: &mut Report) -> io::Result<Option<i64>> {
    let size = fs::metadata(path)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut pos = 0u64;
    let mut expected = base;
    let mut end = None;
    let mut buf = Vec::new();
    let corrupt = |report: &mut Report, pos: u64, offset: i64, detail: String| {
        report.findings.push(Finding {
            kind: FindingKind::Corrupt,
            file: path.to_path_buf(),
            position: pos,
            offset,
            detail,
        });
    };
    while pos < size {
        if size - pos < HEADER_SIZE as u64 {
            corrupt(
                report,
                pos,
                expected,
                format!("{} bytes after the last batch", size - pos),
            );
            break;
        }
        buf.resize(HEADER_SIZE, 0);
        reader.read_exact(&mut buf)?;
        let h = BatchHeader::parse(&buf);
        let len = h.size() as u64;
        if h.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 || len > size - pos || h.magic != 2
        {
            corrupt(
                report,
                pos,
                expected,
                format!(
                    "unreadable batch header (length {}, magic {}): the rest of the segment ({} bytes) cannot be walked",
                    h.batch_length,
                    h.magic,
                    size - pos
                ),
            );
            break;
        }
        buf.resize(len as usize, 0);
        reader.read_exact(&mut buf[HEADER_SIZE..])?;
        report.batches += 1;
        report.bytes += len;
        if !batch::stored_batch_is_intact(&buf) {
            corrupt(
                report,
                pos,
                h.base_offset,
                format!(
                    "CRC mismatch in the batch of offsets {}..={}",
                    h.base_offset,
                    h.last_offset()
                ),
            );
        } else if h.base_offset < expected || h.last_offset_delta < 0 {
            corrupt(
                report,
                pos,
                h.base_offset,
                format!(
                    "offsets {}..={} go back (expected at least {expected})",
                    h.base_offset,
                    h.last_offset()
                ),
            );
        } else {
            expected = h.last_offset() + 1;
            end = Some(expected);
        }
        pos += len;
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{assign_offsets, build_batch};

    fn write_segment(dir: &Path, base: i64, batches: &[Vec<u8>]) -> PathBuf {
        let path = dir.join(crate::segment_file_name(base));
        let mut bytes = Vec::new();
        let mut next = base;
        for b in batches {
            let mut b = b.clone();
            assign_offsets(&mut b, next, 0, None);
            next = BatchHeader::parse(&b).last_offset() + 1;
            bytes.extend(b);
        }
        fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn flipped_bits_and_gaps_are_reported() {
        let data = tempfile::tempdir().unwrap();
        let part = data.path().join("t-0");
        fs::create_dir(&part).unwrap();
        let batch = build_batch(1, &[(Some(b"k"), Some(b"a value")), (None, Some(b"v"))]);
        write_segment(&part, 0, &[batch.clone(), batch.clone()]);
        let second = write_segment(&part, 4, &[batch.clone(), batch.clone(), batch.clone()]);
        write_segment(&part, 20, std::slice::from_ref(&batch)); // offsets 10..20 are missing
        let report = verify_data_dir(data.path()).unwrap();
        assert_eq!(
            (report.partitions, report.segments, report.batches),
            (1, 3, 6)
        );
        assert_eq!(report.corrupt(), 0);
        assert_eq!(report.findings.len(), 1);
        assert_eq!(
            (report.findings[0].kind, report.findings[0].offset),
            (FindingKind::Gap, 10)
        );

        let mut bytes = fs::read(&second).unwrap();
        let middle = batch.len() + batch.len() / 2 + 10;
        bytes[middle] ^= 0x10;
        fs::write(&second, &bytes).unwrap();
        let report = verify_data_dir(data.path()).unwrap();
        assert_eq!(report.corrupt(), 1);
        let f = report
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::Corrupt)
            .unwrap();
        assert_eq!((f.offset, f.position), (6, batch.len() as u64));
        assert_eq!(
            report.batches, 6,
            "the batches after the bad one are still read"
        );
    }
}

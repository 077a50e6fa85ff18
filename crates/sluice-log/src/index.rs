//! Sparse per-segment indexes: offset → file position, and timestamp → offset.
//!
//! Both live in memory and are written to `.index` / `.timeindex` files when a segment is
//! rolled or the log is closed cleanly. After a crash the active segment's indexes are rebuilt
//! from its batches during recovery.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Offset index entries: (offset relative to the segment base, file position).
#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if self
            .entries
            .last()
            .is_none_or(|&(o, _)| relative_offset > o)
        {
            self.entries.push((relative_offset, position));
        }
    }

    /// Position of the last indexed batch starting at or before `relative_offset`.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let i = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    /// The last indexed batch starting at or before `position`: (relative offset, position).
    pub fn at_or_before_position(&self, position: u32) -> Option<(u32, u32)> {
        let i = self.entries.partition_point(|&(_, p)| p <= position);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// Keeps the entries of batches that start before `position`.
    pub fn retain_below(&mut self, position: u32) {
        self.entries.retain(|&(_, p)| p < position);
    }

    /// Relative offset of the last entry (0 without entries).
    pub fn last_relative_offset(&self) -> u32 {
        self.entries.last().map_or(0, |&(o, _)| o)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.entries.len() * 8);
        for &(o, p) in &self.entries {
            buf.extend_from_slice(&o.to_be_bytes());
            buf.extend_from_slice(&p.to_be_bytes());
        }
        buf
    }

    /// Loads an index file; `None` when it is missing or does not fit a segment of `segment_size`.
    pub fn read_from(path: &Path, segment_size: u64) -> Option<OffsetIndex> {
        let buf = fs::read(path).ok()?;
        if buf.len() % 8 != 0 {
            return None;
        }
        let mut index = OffsetIndex::default();
        for e in buf.chunks_exact(8) {
            let o = u32::from_be_bytes(e[0..4].try_into().ok()?);
            let p = u32::from_be_bytes(e[4..8].try_into().ok()?);
            if p as u64 >= segment_size
                || index
                    .entries
                    .last()
                    .is_some_and(|&(lo, lp)| o <= lo || p <= lp)
            {
                return None;
            }
            index.entries.push((o, p));
        }
        Some(index)
    }
}

/// Time index entries: (largest timestamp so far, offset relative to the segment base of the
/// batch that holds it). Timestamps are strictly increasing.
#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub fn push(&mut self, timestamp: i64, relative_offset: u32) {
        if self.entries.last().is_none_or(|&(t, _)| timestamp > t) {
            self.entries.push((timestamp, relative_offset));
        }
    }

    /// Keeps the entries at or below `relative_offset`.
    pub fn retain_up_to(&mut self, relative_offset: u32) {
        self.entries.retain(|&(_, o)| o <= relative_offset);
    }

    /// The largest timestamp indexed and the relative offset of its batch.
    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    /// Relative offset from which to scan for the first record with a timestamp >= `ts`: the
    /// entry just before the first entry reaching `ts`.
    pub fn scan_start(&self, ts: i64) -> u32 {
        let i = self.entries.partition_point(|&(t, _)| t < ts);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.entries.len() * 12);
        for &(t, o) in &self.entries {
            buf.extend_from_slice(&t.to_be_bytes());
            buf.extend_from_slice(&o.to_be_bytes());
        }
        buf
    }

    pub fn read_from(path: &Path) -> Option<TimeIndex> {
        let buf = fs::read(path).ok()?;
        if buf.len() % 12 != 0 {
            return None;
        }
        let mut index = TimeIndex::default();
        for e in buf.chunks_exact(12) {
            let t = i64::from_be_bytes(e[0..8].try_into().ok()?);
            let o = u32::from_be_bytes(e[8..12].try_into().ok()?);
            if index.entries.last().is_some_and(|&(lt, _)| t <= lt) {
                return None;
            }
            index.entries.push((t, o));
        }
        Some(index)
    }
}

/// Writes a whole file durably through a temporary name (synced, renamed, directory synced),
/// so a crash leaves the old file or the new one, never half of one.
pub(crate) fn write_file_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = staged_path(path);
    let mut f = fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_data()?;
    fs::rename(&tmp, path)?;
    // The rename is durable only once the directory is synced.
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Overwrites `path` in place with `data`, unsynced: the caller makes many such files durable
/// with one filesystem sync. In place, because creating a new inode per file (a temporary
/// name and a rename) is what makes writing thousands of them slow on ext4. Used only for
/// files a reader checks or may find stale: indexes (entries are never rewritten, only
/// appended, so a torn write mixes two true versions), the CRC-checked producer snapshot, and
/// the recovery point (one small write, padded so its length never changes).
pub(crate) fn write_file_in_place(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    f.write_all_at(data, 0)?;
    f.set_len(data.len() as u64)
}

/// `<name>.tmp`: removed at open if a crash left it.
fn staged_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_finds_floor_entry() {
        let mut idx = OffsetIndex::default();
        idx.push(0, 0);
        idx.push(10, 4096);
        idx.push(20, 8200);
        assert_eq!(idx.lookup(0), 0);
        assert_eq!(idx.lookup(9), 0);
        assert_eq!(idx.lookup(10), 4096);
        assert_eq!(idx.lookup(25), 8200);
    }

    #[test]
    fn index_files_round_trip_and_reject_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::default();
        idx.push(0, 0);
        idx.push(5, 100);
        let p = dir.path().join("a.index");
        write_file_synced(&p, &idx.to_bytes()).unwrap();
        assert_eq!(OffsetIndex::read_from(&p, 200).unwrap().lookup(6), 100);
        assert!(
            OffsetIndex::read_from(&p, 50).is_none(),
            "entry beyond the segment"
        );
        std::fs::write(&p, [1, 2, 3]).unwrap();
        assert!(OffsetIndex::read_from(&p, 200).is_none());

        let mut t = TimeIndex::default();
        t.push(100, 0);
        t.push(90, 1); // not increasing: ignored
        t.push(200, 7);
        let p = dir.path().join("a.timeindex");
        write_file_synced(&p, &t.to_bytes()).unwrap();
        let t = TimeIndex::read_from(&p).unwrap();
        assert_eq!(t.last(), Some((200, 7)));
        assert_eq!(t.scan_start(150), 0);
        assert_eq!(t.scan_start(250), 7);
    }
}

//! The leader-epoch cache: for each leader epoch the log has data from, the offset of its
//! first batch (Kafka's leader-epoch-checkpoint). A follower asks where an epoch ends
//! (OffsetForLeaderEpoch) to find where its log diverges from its new leader's and truncate
//! there. Kept in the partition's `leader-epoch-checkpoint` file, in Kafka's text format:
//! a version line (0), a count line, then `epoch start_offset` per line.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// An epoch with no entry (Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET).
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_OFFSET: i64 = -1;

#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    /// (epoch, start offset), both strictly increasing.
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// The cache of the log in `dir` (empty if it has no file or an unreadable one: the log
    /// rebuilds it from its batches then).
    pub fn open(dir: &Path) -> (LeaderEpochCache, bool) {
        let path = dir.join(CHECKPOINT_FILE);
        let parsed = fs::read_to_string(&path).ok().and_then(|t| parse(&t));
        let found = parsed.is_some();
        (
            LeaderEpochCache {
                path,
                entries: parsed.unwrap_or_default(),
            },
            found,
        )
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` starts at `start_offset`, if it is newer than the latest epoch.
    /// Returns whether the cache changed (the caller saves it).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        // A new epoch cannot start before the previous one (a truncated tail was removed).
        if self.entries.last().is_some_and(|&(_, s)| start_offset < s) {
            return false;
        }
        // An epoch that began here and holds nothing (a leader that wrote nothing) is
        // superseded, as in Kafka's cache: one entry per start offset.
        while self.entries.last().is_some_and(|&(_, s)| s == start_offset) {
            self.entries.pop();
        }
        self.entries.push((epoch, start_offset));
        true
    }

    /// Where `epoch` ends in this log, as OffsetForLeaderEpoch answers (Kafka's
    /// LeaderEpochFileCache.endOffsetFor): the latest epoch ends at the log end; an older one
    /// at the start of the next epoch this log has, reported with the largest epoch <= it (or
    /// itself when it is older than every entry); an epoch newer than all, or asked of an
    /// empty cache, is UNDEFINED.
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        if epoch == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        }
        if self.latest_epoch() == Some(epoch) {
            return (epoch, log_end);
        }
        let Some(higher) = self.entries.iter().position(|&(e, _)| e > epoch) else {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        };
        let start_of_higher = self.entries[higher].1;
        match higher.checked_sub(1) {
            Some(floor) => (self.entries[floor].0, start_of_higher),
            None => (epoch, start_of_higher),
        }
    }

    /// Forgets every epoch (the log was emptied).
    pub fn clear(&mut self) -> bool {
        let had = !self.entries.is_empty();
        self.entries.clear();
        had
    }

    /// Forgets epochs starting at or after `offset` (the log was truncated to it).
    pub fn truncate_from_end(&mut self, offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < offset);
        self.entries.len() != before
    }

    /// Forgets what lies before `offset` (the log start moved there): epochs wholly below it
    /// go, the one it falls in starts at it.
    pub fn truncate_from_start(&mut self, offset: i64) -> bool {
        let keep_from = self.entries.iter().rposition(|&(_, start)| start <= offset);
        let Some(keep_from) = keep_from else {
            return false;
        };
        let changed = keep_from > 0 || self.entries[keep_from].1 != offset;
        self.entries.drain(..keep_from);
        self.entries[0].1 = offset;
        changed
    }

    /// Writes the file through a temporary file and a rename, both synced.
    pub fn save(&self) -> std::io::Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn parse(text: &str) -> Option<Vec<(i32, i64)>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let (epoch, start) = lines.next()?.trim().split_once(' ')?;
        let entry = (epoch.parse().ok()?, start.parse().ok()?);
        if entries
            .last()
            .is_some_and(|&(e, s)| entry.0 <= e || entry.1 < s)
        {
            return None;
        }
        entries.push(entry);
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_end_where_the_next_begins() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, found) = LeaderEpochCache::open(dir.path());
        assert!(!found);
        assert!(c.assign(0, 0));
        assert!(!c.assign(0, 5), "an epoch is assigned once");
        assert!(c.assign(2, 10));
        assert!(c.assign(5, 30));
        assert_eq!(c.end_offset_for(0, 50), (0, 10));
        assert_eq!(
            c.end_offset_for(1, 50),
            (0, 10),
            "epoch 1 never led: 0 is the last before it"
        );
        assert_eq!(c.end_offset_for(3, 50), (2, 30));
        assert_eq!(c.end_offset_for(5, 50), (5, 50));
        assert_eq!(
            c.end_offset_for(9, 50),
            (UNDEFINED_EPOCH, UNDEFINED_OFFSET),
            "newer than any epoch this log has"
        );
        c.save().unwrap();
        let (again, found) = LeaderEpochCache::open(dir.path());
        assert!(found);
        assert_eq!(again.entries(), c.entries());
    }

    #[test]
    fn truncation_from_either_end() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = LeaderEpochCache::open(dir.path());
        for (e, s) in [(1, 0), (2, 10), (4, 20)] {
            c.assign(e, s);
        }
        assert!(c.truncate_from_end(15));
        assert_eq!(c.entries(), &[(1, 0), (2, 10)]);
        assert!(c.truncate_from_start(12));
        assert_eq!(c.entries(), &[(2, 12)]);
        assert_eq!(c.end_offset_for(1, 40), (1, 12), "older than every entry");
        assert!(
            !c.truncate_from_start(5),
            "below the start: nothing to forget"
        );
    }

    #[test]
    fn an_epoch_that_wrote_nothing_is_superseded_by_the_next_at_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = LeaderEpochCache::open(dir.path());
        c.assign(1, 0);
        c.assign(3, 10);
        assert!(c.assign(4, 10));
        assert_eq!(c.entries(), &[(1, 0), (4, 10)]);
        assert_eq!(c.end_offset_for(3, 20), (1, 10));
    }

    #[test]
    fn a_damaged_file_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n3 10\n",
            "0\n2\n3 10\n2 20\n",
            "0\n1\nx y\n",
        ] {
            fs::write(dir.path().join(CHECKPOINT_FILE), bad).unwrap();
            let (c, found) = LeaderEpochCache::open(dir.path());
            assert!(!found, "{bad:?}");
            assert!(c.entries().is_empty());
        }
    }
}

//! Segment files are opened when used and closed when idle, so descriptors follow the
//! partitions in use, not every partition and segment on disk.
//!
//! Each segment file is a `SegmentFile`: its path and, while open, one shared handle. Using
//! it stamps the time; `close_idle` (run by the broker every few seconds) drops handles not
//! used for a while, and opening past the process budget (`set_budget`) first closes the
//! least recently used ones. Readers hold their own clone of a handle, so closing one here
//! never cuts a read or a sendfile under way.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

/// Segment files this process holds open.
static OPEN: AtomicUsize = AtomicUsize::new(0);
/// Segment files this process may hold open before it closes the least recently used.
static BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Every segment file that was opened and may still be (dead entries are pruned on sweeps).
static REGISTRY: Mutex<Vec<Weak<SegmentFile>>> = Mutex::new(Vec::new());

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sets how many segment files may be open at once (the descriptors left once connections
/// have their reserve).
pub fn set_budget(files: usize) {
    BUDGET.store(files.max(1), Ordering::Relaxed);
}

/// Segment files open now.
pub fn open_files() -> usize {
    OPEN.load(Ordering::Relaxed)
}

#[derive(Debug)]
pub struct SegmentFile {
    path: PathBuf,
    handle: Mutex<Option<Arc<File>>>,
    last_used_ms: AtomicI64,
}

impl SegmentFile {
    /// A segment file, not opened yet.
    pub fn new(path: &Path) -> Arc<SegmentFile> {
        Arc::new(SegmentFile {
            path: path.to_path_buf(),
            handle: Mutex::new(None),
            last_used_ms: AtomicI64::new(now_ms()),
        })
    }

    /// Creates (or empties) the file, and closes it until it is used: creating thousands of
    /// partitions holds no descriptors.
    pub fn create(path: &Path) -> io::Result<Arc<SegmentFile>> {
        let file = open_options().create(true).truncate(false).open(path)?;
        file.set_len(0)?;
        Ok(SegmentFile::new(path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, opening it if it was closed.
    pub fn get(self: &Arc<Self>) -> io::Result<Arc<File>> {
        self.last_used_ms.store(now_ms(), Ordering::Relaxed);
        if let Some(f) = self.handle.lock().expect("segment file lock").as_ref() {
            return Ok(f.clone());
        }
        if OPEN.load(Ordering::Relaxed) >= BUDGET.load(Ordering::Relaxed) {
            close_least_recently_used();
        }
        let file = open_options().open(&self.path)?;
        Ok(self.install(file))
    }

    fn install(self: &Arc<Self>, file: File) -> Arc<File> {
        let mut handle = self.handle.lock().expect("segment file lock");
        if let Some(f) = handle.as_ref() {
            return f.clone(); // opened meanwhile by another caller
        }
        let file = Arc::new(file);
        *handle = Some(file.clone());
        OPEN.fetch_add(1, Ordering::Relaxed);
        REGISTRY
            .lock()
            .expect("segment file registry")
            .push(Arc::downgrade(self));
        file
    }

    /// Drops this process's handle (readers' clones stay valid).
    pub fn close(&self) {
        if self
            .handle
            .lock()
            .expect("segment file lock")
            .take()
            .is_some()
        {
            OPEN.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn close_if_unused_since(&self, before_ms: i64) -> bool {
        if self.last_used_ms.load(Ordering::Relaxed) >= before_ms {
            return false;
        }
        // A file in use right now is skipped, never waited for.
        let Ok(mut handle) = self.handle.try_lock() else {
            return false;
        };
        if handle.take().is_some() {
            OPEN.fetch_sub(1, Ordering::Relaxed);
            return true;
        }
        false
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true).append(true);
    o
}

/// Closes every segment file not used in the last `idle_ms`; returns how many it closed.
pub fn close_idle(idle_ms: i64) -> usize {
    let before = now_ms().saturating_sub(idle_ms);
    let mut registry = REGISTRY.lock().expect("segment file registry");
    let mut closed = 0;
    registry.retain(|weak| match weak.upgrade() {
        Some(file) => {
            if file.close_if_unused_since(before) {
                closed += 1;
                false
            } else {
                file.handle.try_lock().map_or(true, |h| h.is_some())
            }
        }
        None => false,
    });
    closed
}

/// Over budget: closes the oldest eighth of the open files.
fn close_least_recently_used() {
    let mut stamps: Vec<i64> = {
        let registry = REGISTRY.lock().expect("segment file registry");
        registry
            .iter()
            .filter_map(Weak::upgrade)
            .map(|f| f.last_used_ms.load(Ordering::Relaxed))
            .collect()
    };
    if stamps.is_empty() {
        return;
    }
    stamps.sort_unstable();
    let cutoff = stamps[(stamps.len() / 8).min(stamps.len() - 1)] + 1;
    let idle_ms = now_ms().saturating_sub(cutoff);
    close_idle(idle_ms.max(0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_reopen_after_an_idle_close() {
        let dir = tempfile::tempdir().unwrap();
        let f = SegmentFile::create(&dir.path().join("a.log")).unwrap();
        let handle = f.get().unwrap();
        use std::io::Write;
        (&*handle).write_all(b"abc").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(close_idle(5) >= 1);
        assert!(f.handle.lock().unwrap().is_none());
        // The reader's clone still works, and the next use reopens.
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 3];
        handle.read_exact_at(&mut buf, 0).unwrap();
        f.get().unwrap().read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"abc");
    }
}

//! One segment: a `.log` file of stored batches plus its sparse indexes.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::warn;

use crate::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::error::Result;
use crate::file_cache::SegmentFile;
use crate::index::{OffsetIndex, TimeIndex};
use crate::txn::{self, Marker, TxnIndex};

/// Bytes of a header needed to walk batches (base offset, length, last offset delta) and read
/// their max timestamp.
const WALK_HEADER: usize = 43;

pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// Where a batch sits: the first byte of the batch in its segment.
#[derive(Debug, Clone, Copy)]
pub struct BatchLocation {
    pub position: u64,
    pub header: BatchHeader,
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    dir: PathBuf,
    /// Opened when used, closed when idle (file_cache.rs).
    file: Arc<SegmentFile>,
    size: u64,
    /// The offset after the last batch of this segment.
    next_offset: i64,
    index: OffsetIndex,
    time_index: TimeIndex,
    index_interval_bytes: u64,
    bytes_since_index: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Wall-clock time this segment started taking appends in this process (for `segment.ms`).
    pub opened_ms: i64,
    /// The transactions aborted by markers in this segment (saved as `.txnindex`).
    pub aborted: TxnIndex,
}

impl Segment {
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> Result<Segment> {
        let path = dir.join(format!("{}.log", file_stem(base_offset)));
        let file = SegmentFile::create(&path)?;
        File::open(dir)?.sync_all()?; // the new name must survive a crash too
        Ok(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file,
            size: 0,
            next_offset: base_offset,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            index_interval_bytes,
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            opened_ms: now_ms,
            aborted: TxnIndex::default(),
        })
    }

    /// Opens an existing segment. With `verify_from: Some(p)`, every batch from byte `p` on is
    /// checked (framing, CRC, offset order) and the file is cut back to the last intact batch;
    /// saved index entries below `p` are kept (all are rebuilt for `p = 0`). With `None`
    /// (after a clean shutdown) saved indexes are trusted.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        verify_from: Option<u64>,
        now_ms: i64,
    ) -> Result<Segment> {
        let path = dir.join(format!("{}.log", file_stem(base_offset)));
        // Only the size now: the file is opened if a walk below or a later read needs it.
        let size = std::fs::metadata(&path)?.len();
        let mut seg = Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file: SegmentFile::new(&path),
            size,
            next_offset: base_offset,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            index_interval_bytes,
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            opened_ms: now_ms,
            aborted: TxnIndex::default(),
        };
        seg.aborted = TxnIndex::read_from(&seg.txn_index_path());
        let saved = match verify_from {
            Some(0) => None,
            _ => OffsetIndex::read_from(&seg.index_path(), size)
                .zip(TimeIndex::read_from(&seg.time_index_path())),
        };
        match saved {
            Some((mut index, mut time_index)) => {
                if let Some(p) = verify_from {
                    // Entries saved after the recovery point may describe a lost tail.
                    index.retain_below(p as u32);
                    time_index.retain_up_to(index.last_relative_offset());
                }
                seg.index = index;
                seg.time_index = time_index;
                if let Some((ts, relative)) = seg.time_index.last() {
                    seg.max_timestamp = ts;
                    seg.offset_of_max_timestamp = base_offset + relative as i64;
                }
                // Walk only the batches after the last index entry, checking those from the
                // recovery point on.
                let from = seg.index.lookup(u32::MAX) as u64;
                seg.rebuild_from(from, verify_from.unwrap_or(u64::MAX))?;
            }
            None => seg.rebuild_from(0, 0)?,
        }
        Ok(seg)
    }

    /// Walks batches from `from` to the end, updating the end offset, indexes and timestamps.
    /// Batches at or after `verify_from` are checked. A damaged batch followed by intact ones
    /// (a flipped bit, not a torn write) is cut out and the rest kept; otherwise the file is
    /// cut at the first bad batch (a torn or corrupt tail).
    fn rebuild_from(&mut self, from: u64, verify_from: u64) -> Result<()> {
        if from == 0 {
            self.index = OffsetIndex::default();
            self.time_index = TimeIndex::default();
        }
        let mut pos = from;
        let mut expected_min_offset = self.base_offset;
        if pos >= self.size {
            return Ok(());
        }
        let file = self.file.get()?;
        let mut damaged: Vec<(u64, u64)> = Vec::new();
        while pos < self.size {
            let checked = pos >= verify_from;
            let header = match read_batch(
                &file,
                (pos, self.size),
                (self.base_offset, expected_min_offset),
                checked,
            )? {
                BatchCheck::Intact(header) => header,
                BatchCheck::Damaged(header) if checked => {
                    let end = pos + header.size() as u64;
                    let next_is_intact = end < self.size
                        && matches!(
                            read_batch(
                                &file,
                                (end, self.size),
                                (self.base_offset, expected_min_offset),
                                true
                            )?,
                            BatchCheck::Intact(_)
                        );
                    if !next_is_intact {
                        self.truncate_tail(&file, pos)?;
                        break;
                    }
                    crate::note_corruption();
                    warn!(
                        segment = %self.log_path().display(),
                        position = pos,
                        offsets = %format!("{}..={}", header.base_offset, header.last_offset()),
                        "cutting out a damaged batch (CRC mismatch); the batches after it are kept"
                    );
                    damaged.push((pos, end));
                    pos = end;
                    continue;
                }
                _ if checked => {
                    self.truncate_tail(&file, pos)?;
                    break;
                }
                _ => {
                    return Err(crate::LogError::CorruptRecord(format!(
                        "unreadable batch at position {pos} of {}",
                        self.log_path().display()
                    )))
                }
            };
            self.track_batch(pos, &header);
            expected_min_offset = header.last_offset() + 1;
            pos += header.size() as u64;
        }
        if !damaged.is_empty() {
            drop(file);
            self.cut_out(&damaged)?;
            self.max_timestamp = -1;
            self.offset_of_max_timestamp = self.base_offset;
            self.bytes_since_index = 0;
            self.next_offset = self.base_offset;
            self.rebuild_from(0, u64::MAX)?;
            self.write_index_files()?;
        }
        Ok(())
    }

    /// Cuts the file at `pos`, dropping a torn or corrupt tail.
    /// Cuts the segment at byte `pos` (a batch boundary): the file, its end offset, indexes
    /// and timestamps then describe only the batches before it. For a follower's divergent
    /// tail, not damage.
    pub fn truncate_to(&mut self, pos: u64) -> Result<()> {
        if pos >= self.size {
            return Ok(());
        }
        let file = self.file.get()?;
        file.set_len(pos)?;
        file.sync_all()?;
        self.size = pos;
        self.index.retain_below(pos as u32);
        self.time_index
            .retain_up_to(self.index.last_relative_offset());
        self.next_offset = self.base_offset;
        self.bytes_since_index = 0;
        (self.max_timestamp, self.offset_of_max_timestamp) = match self.time_index.last() {
            Some((ts, relative)) => (ts, self.base_offset + relative as i64),
            None => (-1, self.base_offset),
        };
        let from = self.index.lookup(u32::MAX) as u64;
        self.rebuild_from(from, u64::MAX)?;
        self.write_index_files()
    }

    fn truncate_tail(&mut self, file: &File, pos: u64) -> Result<()> {
        crate::note_corruption();
        warn!(
            segment = %self.log_path().display(),
            valid_bytes = pos,
            dropped_bytes = self.size - pos,
            "truncating torn or corrupt tail"
        );
        file.set_len(pos)?;
        file.sync_all()?;
        self.size = pos;
        // Index files are later overwritten in place: replace the ones on disk, which may
        // describe the dropped tail, before new batches reuse its space.
        self.write_index_files()
    }

    fn write_index_files(&self) -> Result<()> {
        crate::index::write_file_synced(&self.index_path(), &self.index.to_bytes())?;
        crate::index::write_file_synced(&self.time_index_path(), &self.time_index.to_bytes())?;
        Ok(())
    }

    /// Rewrites the segment without the byte ranges `damaged` (synced copy, then rename).
    fn cut_out(&mut self, damaged: &[(u64, u64)]) -> Result<()> {
        let path = self.log_path();
        let tmp = path.with_extension("log.tmp");
        let source = self.file.get()?;
        let mut out = File::create(&tmp)?;
        let mut keep_from = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        for &(start, end) in damaged
            .iter()
            .chain(std::iter::once(&(self.size, self.size)))
        {
            let mut at = keep_from;
            while at < start {
                let n = ((start - at) as usize).min(buf.len());
                source.read_exact_at(&mut buf[..n], at)?;
                out.write_all(&buf[..n])?;
                at += n as u64;
            }
            keep_from = end;
        }
        out.sync_all()?;
        let new_size = out.metadata()?.len();
        drop(out);
        std::fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        self.file.close(); // the old handle is the replaced file
        self.size = new_size;
        Ok(())
    }

    /// Updates end offset, indexes and timestamps for a batch written at `position`.
    fn track_batch(&mut self, position: u64, header: &BatchHeader) {
        let relative = (header.base_offset - self.base_offset) as u32;
        if self.bytes_since_index >= self.index_interval_bytes {
            self.index.push(relative, position as u32);
            self.time_index.push(
                self.max_timestamp,
                (self.offset_of_max_timestamp - self.base_offset) as u32,
            );
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.size() as u64;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        self.next_offset = header.last_offset() + 1;
    }

    /// Plans an append of batches whose offsets start at `base_offset`: where they go and
    /// their headers as stored. Nothing is written; see `SegmentWrite`.
    pub fn prepare_append(
        &self,
        batches: &[u8],
        base_offset: i64,
        leader_epoch: i32,
        assigned: bool,
    ) -> Result<SegmentWrite> {
        let mut headers = Vec::new();
        let mut pos = 0;
        let mut next = base_offset;
        while pos < batches.len() {
            let mut header = BatchHeader::parse(&batches[pos..]);
            if !assigned {
                header.base_offset = next;
            }
            headers.push((pos, header));
            next = header.last_offset() + 1;
            pos += header.size();
        }
        Ok(SegmentWrite {
            file: self.file.get()?,
            start: self.size,
            len: batches.len() as u64,
            headers,
            leader_epoch,
            assigned,
        })
    }

    /// Records a finished write (indexes, end offset, size), or cuts a failed one so the
    /// next append starts on a batch boundary.
    pub fn commit_append(&mut self, write: &SegmentWrite, written: io::Result<()>) -> Result<()> {
        if let Err(e) = written {
            let _ = write.file.set_len(write.start);
            return Err(e.into());
        }
        for (pos, header) in &write.headers {
            self.track_batch(write.start + *pos as u64, header);
        }
        self.size += write.len;
        Ok(())
    }

    /// Finds the batch that contains `offset` (or the first batch after it), scanning batch
    /// headers from the nearest index entry, never past `end_position`.
    pub fn find_batch(&self, offset: i64, end_position: u64) -> Result<Option<BatchLocation>> {
        let relative = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        let start = self.index.lookup(relative) as u64;
        self.scan(start, end_position, |h| h.last_offset() >= offset)
    }

    /// The last offset of the last batch that ends at or before `cut`, looking from `from`
    /// (a batch start): the whole batches of a read cut at `cut`. Reads the headers from the
    /// last index entry before the cut (at most an index interval of them).
    pub fn last_whole_before(&self, from: u64, cut: u64) -> Result<Option<i64>> {
        // An indexed batch starting before the cut (one starting at it is not in the read).
        let before = cut.saturating_sub(1).min(u32::MAX as u64) as u32;
        let mut pos = match self.index.at_or_before_position(before) {
            Some((_, p)) if p as u64 > from => p as u64,
            _ => from,
        };
        let end = cut.min(self.size);
        let file = self.file.get()?;
        let mut buf = [0u8; HEADER_SIZE];
        let mut last = None;
        // Headers are read whole even where the cut falls inside one (the file has it).
        while pos < end && pos + HEADER_SIZE as u64 <= self.size {
            file.read_exact_at(&mut buf, pos)?;
            let header = BatchHeader::parse(&buf);
            let size = header.size() as u64;
            if size < HEADER_SIZE as u64 || pos + size > end {
                // The batch the cut falls in: the whole ones end just before it.
                if last.is_none() && pos > from {
                    last = Some(header.base_offset - 1);
                }
                break;
            }
            last = Some(header.last_offset());
            pos += size;
        }
        Ok(last)
    }

    /// First batch from `start` whose header satisfies `pred`.
    fn scan(
        &self,
        mut pos: u64,
        end_position: u64,
        pred: impl Fn(&BatchHeader) -> bool,
    ) -> Result<Option<BatchLocation>> {
        let mut buf = [0u8; HEADER_SIZE];
        let end = end_position.min(self.size);
        if pos + WALK_HEADER as u64 > end {
            return Ok(None);
        }
        let file = self.file.get()?;
        while pos + WALK_HEADER as u64 <= end {
            let n = ((end - pos) as usize).min(HEADER_SIZE);
            file.read_exact_at(&mut buf[..n], pos)?;
            if n < HEADER_SIZE {
                buf[n..].fill(0);
            }
            let header = BatchHeader::parse(&buf);
            if pred(&header) {
                return Ok(Some(BatchLocation {
                    position: pos,
                    header,
                }));
            }
            pos += header.size().max(LOG_OVERHEAD) as u64;
        }
        Ok(None)
    }

    /// Calls `f` with the header of every batch holding offsets at or after `from_offset`.
    pub fn for_each_header(
        &self,
        from_offset: i64,
        mut f: impl FnMut(&BatchHeader, u64, Option<Marker>),
    ) -> Result<()> {
        let Some(first) = self.find_batch(from_offset, self.size)? else {
            return Ok(());
        };
        let mut pos = first.position;
        let mut buf = [0u8; HEADER_SIZE];
        let mut control = Vec::new();
        let file = self.file.get()?;
        while pos + HEADER_SIZE as u64 <= self.size {
            file.read_exact_at(&mut buf, pos)?;
            let header = BatchHeader::parse(&buf);
            // A marker's kind is in its one record: read the (small) batch.
            let marker = if header.is_control()
                && header.size() <= txn::MAX_MARKER_BATCH
                && pos + header.size() as u64 <= self.size
            {
                control.resize(header.size(), 0);
                file.read_exact_at(&mut control, pos)?;
                txn::parse_marker(&control)
            } else {
                None
            };
            f(&header, pos, marker);
            pos += header.size().max(LOG_OVERHEAD) as u64;
        }
        Ok(())
    }

    /// First batch whose max timestamp is at least `ts`.
    pub fn find_timestamp(&self, ts: i64, end_position: u64) -> Result<Option<BatchLocation>> {
        let start_rel = self.time_index.scan_start(ts);
        let start = self.index.lookup(start_rel) as u64;
        self.scan(start, end_position, |h| h.max_timestamp >= ts)
    }

    /// The segment's file, opened if it was closed.
    pub fn file(&self) -> Result<Arc<File>> {
        Ok(self.file.get()?)
    }

    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The segment's files: log, offset index, time index, aborted-transactions index.
    pub fn file_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.log_path(), self.index_path(), self.time_index_path()];
        let txn_path = self.txn_index_path();
        if !self.aborted.is_empty() || txn_path.exists() {
            paths.push(txn_path);
        }
        paths
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.log", file_stem(self.base_offset)))
    }
    fn index_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.index", file_stem(self.base_offset)))
    }
    fn time_index_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.timeindex", file_stem(self.base_offset)))
    }
    fn txn_index_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.txnindex", file_stem(self.base_offset)))
    }

    /// Copies of the indexes with their file paths, to be written outside the lock.
    pub fn index_snapshot(&self) -> (PathBuf, OffsetIndex, PathBuf, TimeIndex) {
        (
            self.index_path(),
            self.index.clone(),
            self.time_index_path(),
            self.time_index.clone(),
        )
    }

    /// Writes the indexes to disk (on roll and clean close), with a final time-index entry.
    pub fn save_indexes(&mut self) -> Result<()> {
        for (path, bytes) in self.final_indexes() {
            crate::index::write_file_synced(&path, &bytes)?;
        }
        Ok(())
    }

    /// Writes the aborted-transactions index (recovery rebuilt it).
    pub fn save_txn_index(&self) -> Result<()> {
        crate::index::write_file_synced(&self.txn_index_path(), &self.aborted.to_bytes())?;
        Ok(())
    }

    /// The index files' paths and contents, with a final time-index entry; the
    /// aborted-transactions index when it has entries or had a file.
    pub fn final_indexes(&mut self) -> Vec<(PathBuf, Vec<u8>)> {
        if self.max_timestamp >= 0 {
            self.time_index.push(
                self.max_timestamp,
                (self.offset_of_max_timestamp - self.base_offset) as u32,
            );
        }
        let mut files = vec![
            (self.index_path(), self.index.to_bytes()),
            (self.time_index_path(), self.time_index.to_bytes()),
        ];
        let txn_path = self.txn_index_path();
        if !self.aborted.is_empty() || txn_path.exists() {
            files.push((txn_path, self.aborted.to_bytes()));
        }
        files
    }
}

/// What a batch's header and bytes say at a position.
enum BatchCheck {
    Intact(BatchHeader),
    /// Framing and offsets plausible, CRC wrong: the batch's bytes are damaged but its
    /// length can be trusted to find the next one.
    Damaged(BatchHeader),
    /// The header itself cannot be trusted.
    Unreadable,
}

/// Reads the batch at `pos` (of a file of `size` bytes) of the segment starting at
/// `segment_base`, where the next offset is at least `expected_min_offset`; checks its CRC
/// if `check_crc`.
fn read_batch(
    file: &File,
    (pos, size): (u64, u64),
    (segment_base, expected_min_offset): (i64, i64),
    check_crc: bool,
) -> io::Result<BatchCheck> {
    if size - pos < HEADER_SIZE as u64 {
        return Ok(BatchCheck::Unreadable);
    }
    let mut header_buf = [0u8; HEADER_SIZE];
    file.read_exact_at(&mut header_buf, pos)?;
    let header = BatchHeader::parse(&header_buf);
    let len = header.size() as u64;
    if header.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32
        || len > size - pos
        || header.magic != 2
        || header.base_offset < expected_min_offset
        || header.last_offset_delta < 0
        || header.last_offset() - segment_base > u32::MAX as i64
    {
        return Ok(BatchCheck::Unreadable);
    }
    if check_crc {
        let mut batch = vec![0u8; len as usize];
        file.read_exact_at(&mut batch, pos)?;
        if !batch::stored_batch_is_intact(&batch) {
            return Ok(BatchCheck::Damaged(header));
        }
    }
    Ok(BatchCheck::Intact(header))
}

/// An append planned under the log's lock and written without it: the segment's only writer
/// is the one holding this, and readers never look past the committed size.
pub struct SegmentWrite {
    file: Arc<File>,
    start: u64,
    len: u64,
    headers: Vec<(usize, BatchHeader)>,
    leader_epoch: i32,
    /// The batches already carry their offsets (LogAppendTime rewrote a copy).
    assigned: bool,
}

impl SegmentWrite {
    /// Where in the segment the write starts.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Writes the batches at the end of the segment. Unless they already carry their offsets,
    /// the base offsets and leader epoch go through a vectored write, so the caller's buffer
    /// is neither copied nor modified.
    pub fn write(&self, batches: &[u8]) -> io::Result<()> {
        if self.assigned {
            return write_all_vectored(&self.file, &mut [IoSlice::new(batches)]);
        }
        let epoch = self.leader_epoch.to_be_bytes();
        let offsets: Vec<[u8; 8]> = self
            .headers
            .iter()
            .map(|(_, h)| h.base_offset.to_be_bytes())
            .collect();
        let mut slices = Vec::with_capacity(self.headers.len() * 4);
        for ((pos, header), offset) in self.headers.iter().zip(&offsets) {
            let b = &batches[*pos..*pos + header.size()];
            slices.push(IoSlice::new(offset));
            slices.push(IoSlice::new(&b[8..12]));
            slices.push(IoSlice::new(&epoch));
            slices.push(IoSlice::new(&b[16..]));
        }
        write_all_vectored(&self.file, &mut slices)
    }
}

fn write_all_vectored(mut file: &File, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "short segment write",
                ))
            }
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

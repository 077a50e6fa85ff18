//! Opening a log: its segments, indexes, leader epochs and producer state loaded, and after a
//! crash the active segment recovered (batches checked from the recovery point on, a torn
//! tail cut) and the producer state and aborted-transaction index rebuilt.

use super::flush::RecoveryPoint;
use super::*;

/// Warns of offsets that no segment holds (a segment file lost or removed by hand). Compacted
/// logs are skipped: cleaning may legitimately empty the end of a segment.
fn report_gaps(dir: &Path, segments: &BTreeMap<i64, Segment>) {
    let mut previous: Option<&Segment> = None;
    for seg in segments.values() {
        if let Some(prev) = previous.filter(|p| !p.is_empty()) {
            if prev.next_offset() < seg.base_offset {
                crate::note_corruption();
                tracing::warn!(
                    dir = %dir.display(),
                    missing = %format!("{}..{}", prev.next_offset(), seg.base_offset),
                    "offsets missing between segments (a segment file is gone); consumers skip them"
                );
            }
        }
        previous = Some(seg);
    }
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering the active segment after a crash.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log> {
        fs::create_dir_all(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let (epochs, epochs_found) = LeaderEpochCache::open(dir);
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".cleaned") || name.ends_with(".tmp") {
                // Left by a compaction or an index write that a crash interrupted.
                fs::remove_file(entry.path())?;
                continue;
            }
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        // After a crash, check what may not have reached the disk: everything from the
        // recovery point on (every segment when there is none).
        let recovery_point = if clean {
            None
        } else {
            RecoveryPoint::read(dir)
        };
        let mut segments = BTreeMap::new();
        for base in &bases {
            let verify_from = match (clean, recovery_point) {
                (true, _) => None,
                (false, Some(rp)) if *base < rp.segment_base => None,
                (false, Some(rp)) if *base == rp.segment_base => Some(rp.position),
                _ => Some(0),
            };
            let seg = Segment::open(dir, *base, config.index_interval_bytes, verify_from, now_ms)?;
            segments.insert(*base, seg);
        }
        if segments.is_empty() {
            segments.insert(
                0,
                Segment::create(dir, 0, config.index_interval_bytes, now_ms)?,
            );
        }
        if clean {
            fs::remove_file(&marker)?;
        }
        if !config.compacted {
            report_gaps(dir, &segments);
        }
        let first_base = *segments.keys().next().expect("one segment");
        let end_offset = segments
            .values()
            .next_back()
            .map_or(first_base, |s| s.next_offset());
        let checkpoint = fs::read_to_string(dir.join(LOG_START_FILE))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok());
        let log_start_offset = checkpoint
            .unwrap_or(first_base)
            .clamp(first_base, end_offset.max(first_base));
        let active = segments.values().next_back().expect("one segment");
        let end = LogPosition {
            offset: active.next_offset(),
            segment_base: active.base_offset,
            position: active.size(),
        };
        debug!(dir = %dir.display(), segments = segments.len(), log_end = end.offset, clean, "opened log");
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            flushed: end,
            high_watermark: end,
            closed: false,
            write_in_progress: false,
            producers: ProducerState::default(),
            checkpointed_offset: None,
            epochs,
        };
        log.rebuild_producer_state()?;
        log.reconcile_epochs(epochs_found)?;
        Ok(log)
    }

    /// Makes the leader-epoch cache agree with the log: rebuilt from the batch headers if its
    /// file was missing or unreadable, cut to the log's start and end (recovery may have
    /// removed a torn tail after the cache was saved).
    fn reconcile_epochs(&mut self, found: bool) -> Result<()> {
        let mut changed = false;
        if !found {
            let start = self.log_start_offset;
            let mut rebuilt = Vec::new();
            for seg in self.segments.values() {
                seg.for_each_header(start, |h, _, _| {
                    if rebuilt
                        .last()
                        .is_none_or(|&(e, _)| h.partition_leader_epoch > e)
                    {
                        rebuilt.push((h.partition_leader_epoch, h.base_offset));
                    }
                })?;
            }
            for (epoch, offset) in rebuilt {
                changed |= self.epochs.assign(epoch, offset);
            }
        }
        changed |= self.epochs.truncate_from_end(self.log_end_offset());
        changed |= self.epochs.truncate_from_start(self.log_start_offset);
        if changed {
            self.epochs.save()?;
        }
        Ok(())
    }

    /// Loads the producer snapshot (if sound and not beyond the log end) and replays the
    /// batch headers after it: producers' sequences, open transactions and, from the markers,
    /// the aborted-transactions indexes (their entries from the replay's start are rebuilt).
    pub(super) fn rebuild_producer_state(&mut self) -> Result<()> {
        let path = self.dir.join(PRODUCER_SNAPSHOT_FILE);
        let (mut state, from) = match ProducerState::read_snapshot(&path) {
            Some((state, offset))
                if offset <= self.log_end_offset() && offset >= self.log_start_offset =>
            {
                (state, offset)
            }
            _ => (ProducerState::default(), self.log_start_offset),
        };
        let floor = self
            .segments
            .range(..=from)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(self.log_start_offset);
        let mut aborted: Vec<(i64, AbortedTxn)> = Vec::new();
        for (base, seg) in self.segments.range(floor..) {
            seg.for_each_header(from, |h, position, marker| {
                if h.base_offset < from {
                    return;
                }
                if !h.is_control() {
                    state.record(h, Some((*base, position)));
                    return;
                }
                let Some(marker) = marker else { return };
                if let Some(first) = state.complete(h, marker) {
                    if marker.kind == MarkerKind::Abort {
                        let entry = AbortedTxn {
                            producer_id: h.producer_id,
                            first_offset: first,
                            last_offset: h.base_offset,
                            last_stable_offset: state.stable_after(h.base_offset),
                        };
                        aborted.push((*base, entry));
                    }
                }
            })?;
        }
        let active = self.active().base_offset;
        for (base, seg) in self.segments.range_mut(floor..) {
            let before = seg.aborted.clone();
            seg.aborted.retain_markers_below(from);
            for (_, entry) in aborted.iter().filter(|(b, _)| b == base) {
                seg.aborted.push(*entry);
            }
            // The active segment's index is saved on roll and close; an older one is final.
            if seg.aborted != before && *base != active {
                seg.save_txn_index()?;
            }
        }
        for first in state.unplaced() {
            if let Some(p) = self.position_at_or_below(first)? {
                state.place(first, (p.segment_base, p.position));
            }
        }
        state.note_high_watermark(self.high_watermark.offset);
        self.producers = state;
        Ok(())
    }
}

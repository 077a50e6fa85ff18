//! The log's start moving: retention by time and size, DeleteRecords, and installing the
//! segments the cleaner compacted.

use super::*;

impl Log {
    /// Moves the log start offset forward (DeleteRecords), durably, and drops the segments
    /// wholly below it. Returns the files to remove, to be unlinked outside the lock.
    pub fn advance_log_start(&mut self, offset: i64) -> Result<Vec<PathBuf>> {
        if offset <= self.log_start_offset {
            return Ok(Vec::new());
        }
        if offset > self.high_watermark.offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.high_watermark.offset,
            });
        }
        crate::index::write_file_synced(
            &self.dir.join(LOG_START_FILE),
            offset.to_string().as_bytes(),
        )?;
        self.log_start_offset = offset;
        self.forget_epochs_below_start();
        let doomed: Vec<i64> = self
            .segments
            .iter()
            .filter(|(base, seg)| {
                **base != self.active().base_offset && seg.next_offset() <= offset
            })
            .map(|(b, _)| *b)
            .collect();
        Ok(self.drop_segments(&doomed))
    }

    /// Deletes whole non-active segments past `retention_ms` (by their largest timestamp)
    /// or beyond `retention_bytes` (oldest first); -1 disables either. Returns the files to
    /// remove, to be unlinked outside the lock.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> Vec<PathBuf> {
        let active = self.active().base_offset;
        let mut total = self.size_bytes();
        let mut doomed = Vec::new();
        for (base, seg) in &self.segments {
            if *base == active {
                break;
            }
            let too_old = retention_ms >= 0
                && seg.max_timestamp() >= 0
                && seg.max_timestamp() < now_ms.saturating_sub(retention_ms);
            let too_big = retention_bytes >= 0 && total > retention_bytes as u64;
            if !(too_old || too_big) {
                break; // deletion keeps the log contiguous: stop at the first segment to keep
            }
            total -= seg.size();
            doomed.push(*base);
        }
        self.drop_segments(&doomed)
    }

    fn drop_segments(&mut self, bases: &[i64]) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for base in bases {
            if let Some(seg) = self.segments.remove(base) {
                files.extend(seg.file_paths());
            }
        }
        if let Some(first) = self.segments.keys().next() {
            self.log_start_offset = self.log_start_offset.max(*first);
        }
        if !bases.is_empty() {
            self.producers.drop_below(self.log_start_offset);
            info!(dir = %self.dir.display(), segments = bases.len(), log_start = self.log_start_offset, "deleted old segments");
        }
        self.forget_epochs_below_start();
        files
    }

    /// Cuts the leader-epoch cache to the log start (retention or DeleteRecords moved it). A
    /// cache that cannot be saved is rebuilt from the batches at the next start.
    fn forget_epochs_below_start(&mut self) {
        if self.epochs.truncate_from_start(self.log_start_offset) {
            if let Err(e) = self.epochs.save() {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not save the leader-epoch cache");
            }
        }
    }

    /// The segments a compaction pass should work on, or `None` when the log is not dirty
    /// enough (see `cleaner`).
    pub fn plan_cleaning(&self, now_ms: i64, config: &CleanerConfig) -> Option<CleanPlan> {
        let active = self.active().base_offset;
        let clean_upto = fs::read_to_string(self.dir.join(CLEANER_CHECKPOINT_FILE))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let lag_horizon = now_ms.saturating_sub(config.min_compaction_lag_ms);
        // Nothing at or past an undecided transaction is cleaned (Kafka's first uncleanable
        // offset): whether its records stay depends on its marker.
        let unstable = self.producers.first_unstable().map(|(o, _)| o);
        let cleanable: Vec<&Segment> = self
            .segments
            .values()
            .take_while(|s| {
                s.base_offset != active
                    && s.max_timestamp() <= lag_horizon
                    && unstable.is_none_or(|o| s.next_offset() <= o)
            })
            .collect();
        let dirty: Vec<&&Segment> = cleanable
            .iter()
            .filter(|s| s.next_offset() > clean_upto)
            .collect();
        if dirty.is_empty() {
            return None;
        }
        let total: u64 = cleanable.iter().map(|s| s.size()).sum();
        let dirty_bytes: u64 = dirty.iter().map(|s| s.size()).sum();
        let overdue = dirty
            .iter()
            .any(|s| s.max_timestamp() < now_ms.saturating_sub(config.max_compaction_lag_ms));
        if (dirty_bytes as f64) < config.min_cleanable_dirty_ratio * total as f64 && !overdue {
            return None;
        }
        let segments: Result<Vec<PlannedSegment>> = cleanable
            .iter()
            .map(|s| {
                Ok(PlannedSegment {
                    base_offset: s.base_offset,
                    file: s.file()?,
                    size: s.size(),
                    path: s.log_path(),
                })
            })
            .collect();
        // Aborted transactions with records in the cleanable segments (their markers may be
        // in later ones): their records are dropped.
        let upto = cleanable.last().map_or(0, |s| s.next_offset());
        let aborted = self
            .segments
            .values()
            .flat_map(|s| s.aborted.entries())
            .filter(|a| a.first_offset < upto)
            .copied()
            .collect();
        match segments {
            Ok(segments) => Some(CleanPlan { segments, aborted }),
            Err(e) => {
                debug!(dir = %self.dir.display(), error = %e, "cannot open segments to clean");
                None
            }
        }
    }

    /// Swaps cleaned copies in for their segments (skipping any segment that retention
    /// removed meanwhile) and records how far the log is clean.
    pub fn install_cleaned(&mut self, cleaned: Vec<CleanedSegment>, now_ms: i64) -> Result<()> {
        let mut clean_upto = None;
        for c in cleaned {
            let current = self
                .segments
                .get(&c.base_offset)
                .map(|s| (s.size(), s.next_offset(), s.log_path()));
            match current {
                Some((size, next, path)) if size == c.original_size => {
                    fs::rename(&c.cleaned_path, &path)?;
                    // Offsets never change in cleaning: the aborted-transactions index stays.
                    let mut seg = Segment::open(
                        &self.dir,
                        c.base_offset,
                        self.config.index_interval_bytes,
                        Some(0),
                        now_ms,
                    )?;
                    seg.save_indexes()?; // the old index files describe the old layout
                    self.segments.insert(c.base_offset, seg);
                    clean_upto = Some(next);
                }
                _ => {
                    let _ = fs::remove_file(&c.cleaned_path);
                }
            }
        }
        if let Some(upto) = clean_upto {
            crate::index::write_file_synced(
                &self.dir.join(CLEANER_CHECKPOINT_FILE),
                upto.to_string().as_bytes(),
            )?;
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

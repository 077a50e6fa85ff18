//! The logs' periodic upkeep: retention, compaction, recovery-point checkpoints, flushes
//! under a relaxed policy, DeleteRecords, and closing every log at shutdown.

use tracing::{info, warn};

use super::partition::Partition;
use super::{remove_files, ReplicaManager};
use crate::config::FlushPolicy;
use crate::error::{BrokerError, Result};

impl ReplicaManager {
    /// Deletes segments past their topic's retention (cleanup.policy with `delete`).
    pub fn apply_retention(&self) {
        let now = crate::now_ms();
        for topic in self.topics() {
            let Some((ms, bytes)) = topic.settings.retention(&self.config) else {
                continue;
            };
            for p in &topic.partitions {
                let files = p.log().apply_retention(now, ms, bytes);
                remove_files(&files);
            }
        }
    }

    /// Saves each partition's recovery point (taken under its lock, written outside it).
    /// Saves every partition's recovery point: every file written in place, then one
    /// filesystem sync (a sync per partition would be thousands of journal commits).
    pub fn checkpoint_recovery_points(&self) {
        let closed = self.logs_closed.lock();
        if *closed {
            return;
        }
        let mut written = 0;
        for topic in self.topics() {
            for p in &topic.partitions {
                let checkpoint = p.log().recovery_checkpoint();
                match checkpoint.map(|c| c.write_unsynced()) {
                    Some(Ok(())) => written += 1,
                    Some(Err(e)) => {
                        warn!(topic = %topic.name, partition = p.index, error = %e, "could not save the recovery point")
                    }
                    None => {}
                }
            }
        }
        if written > 0 {
            if let Err(e) = sluice_log::sync_filesystem(&self.config.data_dir) {
                warn!(error = %e, "could not sync the recovery points");
            }
        }
    }

    /// One compaction pass over every partition of compacted topics, a partition at a time,
    /// the heavy work outside the partition's lock.
    pub fn compact_all(&self) {
        for topic in self.topics() {
            let Some(config) = topic.settings.cleaner(&self.config) else {
                continue;
            };
            for p in &topic.partitions {
                let now = crate::now_ms();
                let Some(plan) = p.log().plan_cleaning(now, &config) else {
                    continue;
                };
                let started = std::time::Instant::now();
                match sluice_log::cleaner::clean(&plan, &config, now) {
                    Ok(cleaned) => {
                        let (before, after, skipped): (u64, u64, u64) =
                            cleaned.iter().fold((0, 0, 0), |(b, a, s), c| {
                                (
                                    b + c.records_before,
                                    a + c.records_after,
                                    s + c.skipped_batches,
                                )
                            });
                        let bytes: u64 = plan.segments.iter().map(|s| s.size).sum();
                        if let Err(e) = p.log().install_cleaned(cleaned, now) {
                            warn!(topic = %topic.name, partition = p.index, error = %e, "could not install cleaned segments");
                            continue;
                        }
                        info!(
                            topic = %topic.name, partition = p.index, records_before = before, records_after = after, skipped_batches = skipped,
                            mb_per_s = bytes as f64 / 1e6 / started.elapsed().as_secs_f64().max(1e-6),
                            "compacted"
                        );
                    }
                    Err(e) => {
                        warn!(topic = %topic.name, partition = p.index, error = %e, "compaction failed")
                    }
                }
            }
        }
    }

    /// DeleteRecords: moves a partition's log start to `offset` (-1: the high watermark).
    /// Returns the new low watermark.
    pub fn delete_records(&self, partition: &Partition, offset: i64) -> Result<i64> {
        if crate::replica::topic::is_internal_topic(&partition.topic) {
            return Err(BrokerError::InvalidTopic(format!(
                "cannot delete records of internal topic {}",
                partition.topic
            )));
        }
        let (files, low) = {
            let mut log = partition.log();
            let target = if offset == -1 {
                log.high_watermark()
            } else {
                offset
            };
            let files = log.advance_log_start(target)?;
            (files, log.log_start_offset())
        };
        remove_files(&files);
        Ok(low)
    }

    /// Requests flushes of partitions whose relaxed policy's `flush.ms` has passed.
    pub(crate) fn flush_due_partitions(&self) {
        let now = crate::now_ms();
        for topic in self.topics() {
            for p in &topic.partitions {
                if let FlushPolicy::Interval { ms, .. } = p.flush_policy() {
                    let end = p.log().end();
                    if end.offset > p.log().flushed_offset() && p.ms_since_flush(now) >= ms {
                        p.flush_requested(now);
                        self.flusher.request(p.clone(), end, None);
                    }
                }
            }
        }
    }

    /// Syncs and closes every log, leaving clean-shutdown markers.
    pub(crate) fn close_logs(&self) {
        // Appends already accepted reach their logs before the logs close, and no checkpoint
        // runs while they close.
        self.appender.drain();
        let mut closed = self.logs_closed.lock();
        *closed = true;
        // Closing log by log would sync several files each: with 10,000 partitions, minutes
        // of journal commits. Instead every log stages its files, one filesystem sync makes
        // them all durable, and a second one the clean-shutdown markers.
        let mut staged = Vec::new();
        for topic in self.topics() {
            for p in &topic.partitions {
                match p.log().close_staged() {
                    Ok(s) => staged.push(s),
                    Err(e) => {
                        warn!(topic = %topic.name, partition = p.index, error = %e, "closing log")
                    }
                }
            }
        }
        let data_dir = &self.config.data_dir;
        if let Err(e) = sluice_log::sync_filesystem(data_dir) {
            warn!(error = %e, "sync at shutdown failed: logs will be recovered at the next start");
            return;
        }
        let mut closed = 0;
        for s in staged {
            match s.finish() {
                Ok(()) => closed += 1,
                Err(e) => warn!(error = %e, "marking a log clean"),
            }
        }
        if let Err(e) = sluice_log::sync_filesystem(data_dir) {
            warn!(error = %e, "sync at shutdown failed");
        }
        info!(partitions = closed, "logs closed");
    }
}

//! One partition: its log behind a mutex, and a watch channel that wakes long-polling fetches.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_log::{Log, LogPosition, ReadBound, ReadSlice};
use tokio::sync::watch;

use crate::config::FlushPolicy;
use crate::error::Result;

pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    /// Held for in-memory work: appends are planned and committed under it but written
    /// without it (appender.rs), and data fsyncs and record reads happen outside it. Small
    /// metadata I/O stays under it where it must be ordered with appends: batch-header reads
    /// of a lookup, a roll's directory fsync, DeleteRecords' `log-start-offset` write.
    log: Mutex<Log>,
    flush_policy: Mutex<FlushPolicy>,
    /// Offsets appended since the last flush was requested (relaxed flush policy only).
    unflushed_messages: AtomicU64,
    /// Last time a flush of this partition was requested, in ms since the Unix epoch.
    last_flush_ms: AtomicU64,
    high_watermark: watch::Sender<i64>,
    /// The leader epoch this replica was last told (stamped on the batches it appends).
    leader_epoch: AtomicI32,
    /// While this replica leads: each follower's log end as its last fetch said, and when
    /// that fetch was (ms since the Unix epoch).
    followers: Mutex<BTreeMap<i32, FollowerPosition>>,
}

/// Where a follower's log ends, as the leader last heard from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerPosition {
    pub log_end_offset: i64,
    pub fetched_ms: i64,
}

/// What a fetch needs to know about a partition besides its data.
#[derive(Debug, Clone, Copy)]
pub struct PartitionOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
}

impl Partition {
    pub fn new(topic: Arc<str>, index: i32, log: Log, flush_policy: FlushPolicy) -> Partition {
        let hw = log.high_watermark();
        Partition {
            topic,
            index,
            log: Mutex::new(log),
            flush_policy: Mutex::new(flush_policy),
            unflushed_messages: AtomicU64::new(0),
            last_flush_ms: AtomicU64::new(crate::now_ms() as u64),
            high_watermark: watch::channel(hw).0,
            leader_epoch: AtomicI32::new(0),
            followers: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn log(&self) -> parking_lot::MutexGuard<'_, Log> {
        self.log.lock()
    }

    /// Notes a follower's fetch from `offset`: its log ends there.
    pub fn note_follower_fetch(&self, follower: i32, offset: i64, now_ms: i64) {
        self.followers.lock().insert(
            follower,
            FollowerPosition {
                log_end_offset: offset,
                fetched_ms: now_ms,
            },
        );
    }

    /// The followers' positions as this leader last heard them.
    pub fn followers(&self) -> BTreeMap<i32, FollowerPosition> {
        self.followers.lock().clone()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Relaxed)
    }

    pub fn set_leader_epoch(&self, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::Relaxed);
    }

    pub fn flush_policy(&self) -> FlushPolicy {
        *self.flush_policy.lock()
    }

    pub fn reconfigure(&self, config: sluice_log::LogConfig, policy: FlushPolicy) {
        self.log.lock().set_config(config);
        *self.flush_policy.lock() = policy;
    }

    pub fn offsets(&self) -> PartitionOffsets {
        let log = self.log.lock();
        PartitionOffsets {
            log_start_offset: log.log_start_offset(),
            high_watermark: log.high_watermark(),
            log_end_offset: log.log_end_offset(),
        }
    }

    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        bound: ReadBound,
    ) -> Result<(Option<ReadSlice>, PartitionOffsets)> {
        let log = self.log.lock();
        let slice = log.read_bounded(offset, max_bytes, bound)?;
        let offsets = PartitionOffsets {
            log_start_offset: log.log_start_offset(),
            high_watermark: log.high_watermark(),
            log_end_offset: log.log_end_offset(),
        };
        Ok((slice, offsets))
    }

    /// Makes everything up to `upto` visible to consumers and wakes waiting fetches.
    pub fn publish(&self, upto: LogPosition) {
        let hw = {
            let mut log = self.log.lock();
            log.advance_high_watermark(upto);
            log.high_watermark()
        };
        self.high_watermark.send_if_modified(|cur| {
            let changed = *cur != hw;
            *cur = hw;
            changed
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Counts appended offsets under a relaxed policy; true when a flush is due by count.
    pub fn note_unflushed(&self, offsets: u64, threshold: u64) -> bool {
        let n = self
            .unflushed_messages
            .fetch_add(offsets, Ordering::Relaxed)
            + offsets;
        n >= threshold
    }

    pub fn flush_requested(&self, now_ms: i64) {
        self.unflushed_messages.store(0, Ordering::Relaxed);
        self.last_flush_ms.store(now_ms as u64, Ordering::Relaxed);
    }

    pub fn ms_since_flush(&self, now_ms: i64) -> u64 {
        (now_ms as u64).saturating_sub(self.last_flush_ms.load(Ordering::Relaxed))
    }
}

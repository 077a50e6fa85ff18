//! Group commit: one thread fsyncs on behalf of every partition and connection.
//!
//! Appends hand the flusher a job (partition, log position, optional waiter). The thread
//! takes every job queued while it was busy, syncs each dirty partition once up to the
//! highest position asked for, publishes the new high watermark and answers all waiters.
//! While one fsync runs, new writes queue up and share the next one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use sluice_log::{AppendInfo, LogPosition};
use tokio::sync::oneshot;
use tracing::error;

use crate::config::FlushPolicy;
use crate::error::BrokerError;
use crate::replica::partition::Partition;

/// An acknowledgement waiting for its append to be durable, answered with the append's outcome.
pub type FlushDone = (AppendInfo, oneshot::Sender<Result<AppendInfo, BrokerError>>);

struct FlushJob {
    partition: Arc<Partition>,
    upto: LogPosition,
    done: Option<FlushDone>,
}

#[derive(Clone)]
pub struct Flusher {
    tx: mpsc::Sender<FlushJob>,
    stats: Arc<FlushStats>,
}

/// Counters of the flusher's work: how many flush requests were covered by how many fsyncs.
#[derive(Debug, Default)]
pub struct FlushStats {
    pub requests: AtomicU64,
    pub fsyncs: AtomicU64,
}

impl Flusher {
    pub fn start() -> Flusher {
        let (tx, rx) = mpsc::channel::<FlushJob>();
        let stats = Arc::new(FlushStats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("sluice-flusher".into())
            .spawn(move || run(rx, &thread_stats))
            .expect("spawn flusher thread");
        Flusher { tx, stats }
    }

    pub fn stats(&self) -> &FlushStats {
        &self.stats
    }

    /// The flush policy, applied to an append that reached `partition`'s log (the leader's
    /// or a follower's alike): under `EveryWrite` the append is synced and `done` answered
    /// once it is; under `Interval` it is visible at once (`done` answered now) and a sync is
    /// asked for when `flush.messages` appended records are waiting for one.
    pub fn after_append(
        &self,
        partition: Arc<Partition>,
        info: AppendInfo,
        offset_count: u64,
        done: Option<oneshot::Sender<Result<AppendInfo, BrokerError>>>,
    ) {
        partition.note_log_end(info.end.offset);
        match partition.flush_policy() {
            FlushPolicy::EveryWrite => {
                self.request(partition, info.end, done.map(|tx| (info, tx)));
            }
            FlushPolicy::Interval { messages, .. } => {
                partition.publish(info.end);
                if partition.note_unflushed(offset_count, messages) {
                    partition.flush_requested(crate::now_ms());
                    self.request(partition, info.end, None);
                }
                if let Some(done) = done {
                    let _ = done.send(Ok(info));
                }
            }
        }
    }

    /// Asks for `partition` to be synced up to `upto`; `done` is answered once it is.
    pub fn request(&self, partition: Arc<Partition>, upto: LogPosition, done: Option<FlushDone>) {
        let job = FlushJob {
            partition,
            upto,
            done,
        };
        if let Err(mpsc::SendError(job)) = self.tx.send(job) {
            if let Some((_, done)) = job.done {
                let _ = done.send(Err(BrokerError::Storage("flusher stopped".into())));
            }
        }
    }
}

fn run(rx: mpsc::Receiver<FlushJob>, stats: &FlushStats) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        stats
            .requests
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        // Highest position per partition, keyed by the partition's address.
        let mut targets: HashMap<*const Partition, (Arc<Partition>, LogPosition)> = HashMap::new();
        for job in &jobs {
            let entry = targets
                .entry(Arc::as_ptr(&job.partition))
                .or_insert_with(|| (job.partition.clone(), job.upto));
            if job.upto.offset > entry.1.offset {
                entry.1 = job.upto;
            }
        }
        let mut failed: HashMap<*const Partition, BrokerError> = HashMap::new();
        for (key, (partition, upto)) in targets {
            let files = partition.log().files_to_flush(upto);
            let started = std::time::Instant::now();
            let result = files.map_err(std::io::Error::other).and_then(|files| {
                stats
                    .fsyncs
                    .fetch_add(files.len() as u64, Ordering::Relaxed);
                files.iter().try_for_each(|f| f.sync_data())
            });
            crate::metrics::fsync_done(started.elapsed());
            match result {
                Ok(()) => {
                    partition.log().mark_flushed(upto);
                    partition.publish(upto);
                }
                Err(e) => {
                    error!(topic = %partition.topic, partition = partition.index, error = %e, "fsync failed");
                    failed.insert(key, BrokerError::Storage(e.to_string()));
                }
            }
        }
        for job in jobs {
            if let Some((info, done)) = job.done {
                let result = match failed.get(&Arc::as_ptr(&job.partition)) {
                    Some(e) => Err(e.clone()),
                    None => Ok(info),
                };
                let _ = done.send(result);
            }
        }
    }
}

//! The append stage: one thread copies validated batches into their partitions' logs (the
//! page-cache write, the costliest step of a produce, done outside the partition's lock)
//! and passes them to the flusher.
//!
//! Connections only check batches (framing, CRC) and queue them here, so a connection's
//! reader receives and checks its next request while this thread writes the previous one and
//! the flusher syncs the one before: three stages on separate threads. Jobs are taken in
//! queue order, so appends to a partition happen in the order the requests arrived.

use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;
use sluice_log::batch::BatchSetSummary;
use sluice_log::{AppendInfo, PreparedAppend};
use tokio::sync::oneshot;

use crate::error::{BrokerError, Result};
use crate::replica::flusher::Flusher;
use crate::replica::partition::Partition;

pub type AppendDone = oneshot::Sender<Result<AppendInfo>>;

pub struct AppendJob {
    pub partition: Arc<Partition>,
    pub records: Bytes,
    pub summary: BatchSetSummary,
    /// Validation saw Sluice's own headers: the partition's marks were told it is writing
    /// and are told where the records ended (`HeaderMarks`).
    pub sluice_headers: bool,
    /// Answered once the append is as durable as the partition's flush policy asks;
    /// `None` for acks=0.
    pub done: Option<AppendDone>,
}

enum Job {
    Append(AppendJob),
    /// Answered once every job queued before it is done.
    Barrier(mpsc::Sender<()>),
}

#[derive(Clone)]
pub struct Appender {
    tx: mpsc::Sender<Job>,
}

impl Appender {
    pub fn start(flusher: Flusher) -> Appender {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sluice-appender".into())
            .spawn(move || run(rx, &flusher))
            .expect("spawn appender thread");
        Appender { tx }
    }

    pub fn submit(&self, job: AppendJob) {
        if let Err(mpsc::SendError(Job::Append(job))) = self.tx.send(Job::Append(job)) {
            if let Some(done) = job.done {
                let _ = done.send(Err(BrokerError::Storage("appender stopped".into())));
            }
        }
    }

    /// Waits until every append submitted so far has been written.
    pub fn drain(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Job::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

fn run(rx: mpsc::Receiver<Job>, flusher: &Flusher) {
    while let Ok(job) = rx.recv() {
        let job = match job {
            Job::Append(job) => job,
            Job::Barrier(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let AppendJob {
            partition,
            records,
            summary,
            sluice_headers,
            done,
        } = job;
        // Plan under the lock, write the page cache without it (readers never look past the
        // committed end), commit under it again.
        let prepared = partition.log().prepare_append(
            &records,
            &summary,
            partition.leader_epoch(),
            crate::now_ms(),
        );
        let appended = match prepared {
            Ok(PreparedAppend::Duplicate(info)) => Ok(info),
            Ok(PreparedAppend::Write(pending)) => {
                let written = pending.write(&records);
                partition.log().commit_append(pending, written)
            }
            Err(e) => Err(e),
        };
        if sluice_headers {
            partition
                .header_marks
                .written(partition.log().end().offset - 1);
        }
        match appended {
            Ok(info) => flusher.after_append(partition, info, summary.offset_count, done),
            Err(e) => {
                if let Some(done) = done {
                    let _ = done.send(Err(e.into()));
                }
            }
        }
    }
}

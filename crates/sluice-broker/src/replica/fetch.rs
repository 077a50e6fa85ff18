//! The fetch path: collect byte ranges under each partition's lock and wait for data without
//! polling (watch channels on the high watermark). The ranges are returned unread: the
//! connection sends them from the page cache to the socket (sendfile), outside any lock.

use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use sluice_log::{ReadBound, ReadSlice};

use crate::error::Result;
use crate::replica::partition::{Partition, PartitionOffsets};

pub struct FetchTarget {
    pub partition: Arc<Partition>,
    pub offset: i64,
    pub max_bytes: usize,
    /// Consumers read to the high watermark, followers to the log end.
    pub bound: ReadBound,
}

pub struct FetchedPartition {
    /// The records to send (whole batches, up to the high watermark), and the offsets.
    pub result: Result<(Option<ReadSlice>, PartitionOffsets)>,
}

/// Fetches from `targets`: returns once `min_bytes` are available, or after `max_wait`.
/// `max_bytes` caps the whole response, except that the first batch found is always whole.
pub async fn fetch(
    targets: &[FetchTarget],
    min_bytes: usize,
    max_bytes: usize,
    max_wait: Duration,
) -> Vec<FetchedPartition> {
    let deadline = tokio::time::Instant::now() + max_wait;
    let mut watches: Vec<_> = targets
        .iter()
        .map(|t| t.partition.subscribe_to(t.bound))
        .collect();
    loop {
        for w in watches.iter_mut() {
            w.borrow_and_update();
        }
        let (slices, total, errors) = collect(targets, max_bytes);
        let done = total >= min_bytes.max(1) || errors || tokio::time::Instant::now() >= deadline;
        if done || targets.is_empty() {
            return into_fetched(targets, slices);
        }
        // Wake on the first change of any partition's bound, or at the deadline.
        let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            let (slices, _, _) = collect(targets, max_bytes);
            return into_fetched(targets, slices);
        }
    }
}

type Collected = Vec<Result<(Option<ReadSlice>, PartitionOffsets)>>;

fn collect(targets: &[FetchTarget], max_bytes: usize) -> (Collected, usize, bool) {
    let mut total = 0usize;
    let mut errors = false;
    let slices = targets
        .iter()
        .map(|t| {
            let remaining = max_bytes.saturating_sub(total);
            let limit = t.max_bytes.min(remaining);
            if limit == 0 && total > 0 {
                return Ok((None, t.partition.offsets()));
            }
            let r = t.partition.read(t.offset, limit.max(1), t.bound);
            match &r {
                Ok((Some(s), _)) => total += s.len,
                Ok((None, _)) => {}
                Err(_) => errors = true,
            }
            r
        })
        .collect();
    (slices, total, errors)
}

/// The answer, each partition's bytes counted as sent (`metrics`).
fn into_fetched(targets: &[FetchTarget], slices: Collected) -> Vec<FetchedPartition> {
    slices
        .into_iter()
        .zip(targets)
        .map(|(result, t)| {
            if let Ok((Some(s), _)) = &result {
                let records = s
                    .whole_through
                    .map_or(0, |last| (last - t.offset + 1).max(0) as u64);
                t.partition.traffic.sent(records, s.len);
            }
            FetchedPartition { result }
        })
        .collect()
}

//! One consumer fetch loop: one Fetch in flight to one leader for a set of partitions, as a
//! Kafka consumer does, counting records by batch header (and, end-to-end, reading each
//! record's send time).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::bail;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};

use crate::args::BenchArgs;
use crate::cluster::Layout;
use crate::records::walk;
use crate::stats::Stats;
use sluice_client::Conn;

/// When consumers stop.
pub struct ConsumeTarget {
    /// Per partition, the offset to stop at (consume mode), or none (end-to-end).
    pub ends: Option<Vec<i64>>,
    /// Stop once this many records were read by all consumers together (`u64::MAX`: not
    /// known yet).
    pub expected: AtomicU64,
    pub consumed: AtomicU64,
    /// Share mode: records delivered for the first time, by all members together.
    pub acquired: AtomicU64,
}

impl ConsumeTarget {
    fn reached(&self) -> bool {
        self.consumed.load(Ordering::Relaxed) >= self.expected.load(Ordering::Relaxed)
    }
}

pub struct FetchLoop {
    pub conn: Arc<Conn>,
    /// (partition, next offset to fetch)
    pub partitions: Vec<(i32, i64)>,
    pub measure_latency: bool,
}

pub async fn run_fetch_loop(
    mut fetch: FetchLoop,
    layout: Arc<Layout>,
    args: Arc<BenchArgs>,
    target: Arc<ConsumeTarget>,
    stats: Arc<Stats>,
) -> anyhow::Result<()> {
    let mut latencies = Vec::new();
    loop {
        if target.reached() {
            return Ok(());
        }
        let open: Vec<FetchPartition> = fetch
            .partitions
            .iter()
            .filter(|(p, offset)| {
                target
                    .ends
                    .as_ref()
                    .is_none_or(|e| *offset < e[*p as usize])
            })
            .map(|&(p, offset)| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(offset)
                    .with_current_leader_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(args.partition_max_bytes)
            })
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(args.fetch_max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(args.fetch_max_bytes)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(layout.topic.clone())
                .with_partitions(open)]);
        let response: FetchResponse = fetch.conn.call(ApiKey::Fetch, &request).await?;
        if response.error_code != 0 {
            bail!("fetch failed: error code {}", response.error_code);
        }
        for data in response.responses.iter().flat_map(|t| &t.partitions) {
            if data.error_code != 0 {
                bail!(
                    "fetch from partition {} failed: error code {}",
                    data.partition_index,
                    data.error_code
                );
            }
            let Some(slot) = fetch
                .partitions
                .iter_mut()
                .find(|(p, _)| *p == data.partition_index)
            else {
                continue;
            };
            let Some(records) = data.records.as_ref() else {
                continue;
            };
            latencies.clear();
            let walked = walk(
                records,
                slot.1,
                fetch.measure_latency.then_some(&mut latencies),
            )?;
            slot.1 = walked.next_offset;
            stats.add(walked.records, walked.bytes);
            target.consumed.fetch_add(walked.records, Ordering::Relaxed);
            if !latencies.is_empty() {
                stats.record_latencies(latencies.drain(..));
            }
        }
    }
}

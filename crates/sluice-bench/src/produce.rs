//! One producer: fills a batch for one partition at a time (like a sticky partitioner),
//! sends each as soon as it is full or has lingered, and keeps up to `max_in_flight`
//! requests outstanding.
//!
//! With a target rate the run is open-loop: record i is due at `start + i / rate` whether or
//! not the broker has kept up, and its latency counts from that moment, so a slow broker shows
//! as latency rather than as a quietly lower send rate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use crate::args::BenchArgs;
use crate::cluster::Layout;
use crate::records::{wall_clock_ns, BatchBuilder, RECORD_OVERHEAD};
use crate::stats::Stats;
use crate::ticker::Ticker;
use sluice_client::{decode, Conn};

/// What one producer sends.
pub struct ProducePlan {
    /// Records to send; `None` runs until `deadline`.
    pub records: Option<u64>,
    /// This producer's share of the target rate (records/s).
    pub rate: Option<f64>,
    pub deadline: Option<Instant>,
    pub start: Instant,
    pub first_partition: i32,
    pub seed: u64,
}

/// A sent batch awaiting its acknowledgement.
pub(crate) struct InFlight {
    pub first_record: u64,
    pub records: u64,
    pub sent: Instant,
    /// The Produce version the request went out with, to decode its response.
    pub version: i16,
}

pub(crate) type Acked = Pin<Box<dyn Future<Output = (InFlight, Option<Bytes>, Instant)> + Send>>;

pub async fn run_producer(
    layout: Layout,
    args: Arc<BenchArgs>,
    plan: ProducePlan,
    stats: Arc<Stats>,
) -> anyhow::Result<()> {
    let per_batch = (args.batch_size / (args.record_size + RECORD_OVERHEAD))
        .clamp(1, args.batch_records) as u64;
    let limit = plan.records.unwrap_or(u64::MAX);
    let linger = args.linger();
    let due = |i: u64| {
        plan.rate
            .map(|rate| plan.start + Duration::from_secs_f64(i as f64 / rate))
    };
    let mut builder = BatchBuilder::new(args.record_size, args.compression.codec(), plan.seed);
    let partitions = layout.partitions();
    let mut partition = plan.first_partition % partitions;
    let mut in_flight: FuturesUnordered<Acked> = FuturesUnordered::new();
    let mut produced = 0u64;
    let ticker = Ticker::start();
    loop {
        let now = Instant::now();
        if produced >= limit || plan.deadline.is_some_and(|d| now >= d) {
            break;
        }
        let due_now = match plan.rate {
            Some(rate) => (((now - plan.start).as_secs_f64() * rate) as u64 + 1).min(limit),
            None => limit,
        };
        let n = due_now.saturating_sub(produced).min(per_batch);
        let lingered = due(produced).is_some_and(|first| now >= first + linger);
        let ready = n == per_batch || (n > 0 && (lingered || produced + n == limit));
        if ready && in_flight.len() < args.max_in_flight {
            let conn = layout.leaders[partition as usize].clone();
            // Each value carries the wall-clock time its record was due.
            let wall = wall_clock_ns();
            let batch = builder.build(n as usize, |i| match due(produced + i as u64) {
                Some(at) => {
                    wall.saturating_sub(now.saturating_duration_since(at).as_nanos() as u64)
                }
                None => wall,
            })?;
            let info = InFlight {
                first_record: produced,
                records: n,
                sent: now,
                version: conn.version(ApiKey::Produce),
            };
            let acked = send(&conn, &layout, &args, partition, batch, info).await?;
            in_flight.push(acked);
            produced += n;
            partition = (partition + 1) % partitions;
            continue;
        }
        if ready || in_flight.len() >= args.max_in_flight {
            let acked = in_flight.next().await.expect("requests in flight");
            handle_ack(&args, &stats, acked, &due)?;
            continue;
        }
        // Nothing to send yet: sleep until the batch could be full or has lingered.
        let wake = match due(produced) {
            Some(first) => (first + linger).min(due(produced + per_batch - 1).unwrap()),
            None => now + linger,
        };
        ticker.wake_at(wake);
        tokio::select! {
            Some(acked) = in_flight.next(), if !in_flight.is_empty() => {
                handle_ack(&args, &stats, acked, &due)?;
            }
            _ = ticker.fired.notified() => {}
        }
    }
    while let Some(acked) = in_flight.next().await {
        handle_ack(&args, &stats, acked, &due)?;
    }
    Ok(())
}

pub(crate) async fn send(
    conn: &Arc<Conn>,
    layout: &Layout,
    args: &BenchArgs,
    partition: i32,
    batch: Bytes,
    info: InFlight,
) -> anyhow::Result<Acked> {
    send_as(conn, layout, args, partition, batch, info, None).await
}

/// `send`, naming the producer's transactional id when it has one.
pub(crate) async fn send_as(
    conn: &Arc<Conn>,
    layout: &Layout,
    args: &BenchArgs,
    partition: i32,
    batch: Bytes,
    info: InFlight,
    transactional_id: Option<&str>,
) -> anyhow::Result<Acked> {
    let request = ProduceRequest::default()
        .with_transactional_id(transactional_id.map(|t| {
            kafka_protocol::messages::TransactionalId(
                kafka_protocol::protocol::StrBytes::from_string(t.to_string()),
            )
        }))
        .with_acks(args.acks)
        .with_timeout_ms(args.request_timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(layout.topic.clone())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    if args.acks == 0 {
        conn.send_unanswered(ApiKey::Produce, &request).await?;
        return Ok(Box::pin(async move { (info, None, Instant::now()) }));
    }
    let reply = conn.send(ApiKey::Produce, &request).await?;
    Ok(Box::pin(async move {
        let frame = reply.await.ok();
        (info, frame, Instant::now())
    }))
}

pub(crate) fn handle_ack(
    args: &BenchArgs,
    stats: &Stats,
    (info, frame, acked_at): (InFlight, Option<Bytes>, Instant),
    due: &impl Fn(u64) -> Option<Instant>,
) -> anyhow::Result<()> {
    if args.acks != 0 {
        let frame =
            frame.ok_or_else(|| anyhow!("connection closed with produce requests in flight"))?;
        let response: ProduceResponse = decode(ApiKey::Produce, info.version, frame)?;
        for p in response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
        {
            if p.error_code != 0 {
                stats
                    .errors
                    .fetch_add(info.records, std::sync::atomic::Ordering::Relaxed);
                eprintln!(
                    "produce to partition {} failed: error code {} {}",
                    p.index,
                    p.error_code,
                    p.error_message.as_ref().map_or("", |m| m.as_str())
                );
                return Ok(());
            }
        }
    }
    stats.add(info.records, info.records * args.record_size as u64);
    if args.acks == 0 {
        return Ok(());
    }
    match due(info.first_record) {
        None => stats.record_latencies(std::iter::once((acked_at - info.sent, info.records))),
        Some(_) => stats.record_latencies(
            (info.first_record..info.first_record + info.records)
                .map(|i| (acked_at.saturating_duration_since(due(i).unwrap()), 1)),
        ),
    }
    Ok(())
}

//! `sluice bench`: a load generator that speaks the Kafka protocol to any Kafka-compatible
//! broker. Its own producer and consumer (on the kafka-protocol crate) build each batch once
//! and count fetched records by batch header, so the figures measure the broker, not the
//! client. See docs/benchmarks.md.

mod args;
mod cluster;
mod connect;
mod consume;
mod produce;
mod records;
mod security_args;
mod share;
mod stats;
mod ticker;
mod txn_produce;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use clap::ValueEnum;
use serde_json::json;
use tokio::task::JoinSet;

pub use args::{BenchArgs, Compression, Mode, Output};
use cluster::Layout;
use consume::{ConsumeTarget, FetchLoop};
use produce::ProducePlan;
pub use security_args::SecurityArgs;
use stats::{Stats, Summary};

/// How long consumers may lag behind the last acknowledged record before the run fails.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(mut args: BenchArgs) -> anyhow::Result<()> {
    args.check().map_err(|e| anyhow!(e))?;
    args.client_security = args.security.client_security()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let args = Arc::new(args);
    let summaries = runtime.block_on(run_mode(args.clone()))?;
    report(&args, &summaries);
    let errors: u64 = summaries.iter().map(|s| s.errors).sum();
    if errors > 0 {
        anyhow::bail!("{errors} records failed");
    }
    Ok(())
}

async fn run_mode(args: Arc<BenchArgs>) -> anyhow::Result<Vec<Summary>> {
    let (stop_progress, stop_rx) = tokio::sync::watch::channel(false);
    let produce_stats = Arc::new(Stats::new("produce"));
    let consume_stats = Arc::new(Stats::new("consume"));
    if args.mode == Mode::Connect {
        let stats = Stats::new("connect");
        let start = Instant::now();
        connect::run(&args, &stats).await?;
        return Ok(vec![stats.summary(start)]);
    }
    let shown = match args.mode {
        Mode::Connect => unreachable!("measured above"),
        Mode::Produce => vec![produce_stats.clone()],
        Mode::Consume | Mode::Share => vec![consume_stats.clone()],
        Mode::EndToEnd => vec![produce_stats.clone(), consume_stats.clone()],
    };
    if args.progress_interval > 0.0 {
        let interval = Duration::from_secs_f64(args.progress_interval);
        tokio::spawn(stats::progress(shown, interval, stop_rx));
    }
    let connections = match args.mode {
        Mode::Connect => unreachable!("measured above"),
        Mode::Produce => args.producers,
        Mode::Consume | Mode::Share => args.consumers,
        Mode::EndToEnd => args.producers + args.consumers,
    };
    let mut layouts = cluster::discover(
        &args.bootstrap,
        &args.client_security,
        &args.topic,
        args.partitions,
        args.replication_factor,
        connections,
    )
    .await?;
    let result = match args.mode {
        Mode::Connect => unreachable!("measured above"),
        Mode::Produce => {
            let start = Instant::now();
            produce_all(&args, layouts, start, produce_stats.clone()).await?;
            Ok(vec![produce_stats.summary(start)])
        }
        Mode::Consume => {
            let ranges = cluster::offset_range(&layouts[0]).await?;
            let target = Arc::new(ConsumeTarget {
                ends: Some(ranges.iter().map(|r| r.1).collect()),
                expected: AtomicU64::new(args.records.unwrap_or(u64::MAX)),
                consumed: AtomicU64::new(0),
                acquired: AtomicU64::new(0),
            });
            let starts = ranges.iter().map(|r| r.0).collect::<Vec<_>>();
            let start = Instant::now();
            let mut consumers = spawn_consumers(&args, layouts, &starts, target, &consume_stats);
            join_all(&mut consumers).await?;
            Ok(vec![consume_stats.summary(start)])
        }
        Mode::Share => {
            let ranges = cluster::offset_range(&layouts[0]).await?;
            let total: i64 = ranges.iter().map(|r| r.1 - r.0).sum();
            let target = Arc::new(ConsumeTarget {
                ends: None,
                expected: AtomicU64::new(args.records.unwrap_or(total.max(0) as u64)),
                consumed: AtomicU64::new(0),
                acquired: AtomicU64::new(0),
            });
            let group = share::new_group(&layouts[0].leaders[0]).await?;
            let start = Instant::now();
            let mut members = JoinSet::new();
            for layout in layouts {
                let layout = Arc::new(layout);
                // Every member fetches every partition: one session per leader.
                let mut by_leader: Vec<(Arc<sluice_client::Conn>, Vec<i32>)> = Vec::new();
                for (p, conn) in layout.leaders.iter().enumerate() {
                    match by_leader.iter_mut().find(|(c, _)| Arc::ptr_eq(c, conn)) {
                        Some((_, ps)) => ps.push(p as i32),
                        None => by_leader.push((conn.clone(), vec![p as i32])),
                    }
                }
                for (conn, partitions) in by_leader {
                    members.spawn(share::run_member(
                        conn,
                        layout.clone(),
                        partitions,
                        group.clone(),
                        args.clone(),
                        target.clone(),
                        consume_stats.clone(),
                    ));
                }
            }
            join_all(&mut members).await?;
            Ok(vec![consume_stats.summary(start)])
        }
        Mode::EndToEnd => {
            let consumer_layouts = layouts.split_off(args.producers);
            let ranges = cluster::offset_range(&consumer_layouts[0]).await?;
            let target = Arc::new(ConsumeTarget {
                ends: None,
                expected: AtomicU64::new(u64::MAX),
                consumed: AtomicU64::new(0),
                acquired: AtomicU64::new(0),
            });
            let starts = ranges.iter().map(|r| r.1).collect::<Vec<_>>();
            let start = Instant::now();
            let mut consumers = spawn_consumers(
                &args,
                consumer_layouts,
                &starts,
                target.clone(),
                &consume_stats,
            );
            let produced = produce_all(&args, layouts, start, produce_stats.clone()).await;
            // Consumers stop once they have read every acknowledged record.
            let acked = produce_stats.records.load(Ordering::Relaxed);
            target.expected.store(acked, Ordering::Relaxed);
            let drained = tokio::time::timeout(DRAIN_TIMEOUT, join_all(&mut consumers)).await;
            produced?;
            drained.map_err(|_| {
                anyhow!(
                    "consumers read {} of {acked} acknowledged records within {DRAIN_TIMEOUT:?}",
                    target.consumed.load(Ordering::Relaxed)
                )
            })??;
            Ok(vec![
                produce_stats.summary(start),
                consume_stats.summary(start),
            ])
        }
    };
    let _ = stop_progress.send(true);
    result
}

async fn produce_all(
    args: &Arc<BenchArgs>,
    layouts: Vec<Layout>,
    start: Instant,
    stats: Arc<Stats>,
) -> anyhow::Result<()> {
    let producers = args.producers as u64;
    let total = args.records_to_produce();
    // A duration bounds the run only when it does not already fix the record count.
    let deadline = match total {
        Some(_) => None,
        None => args.duration.map(|d| start + Duration::from_secs_f64(d)),
    };
    let mut tasks = JoinSet::new();
    for (i, layout) in layouts.into_iter().enumerate() {
        let i = i as u64;
        // Split the records (and the rate) evenly, the remainder to the first producers.
        let records = total.map(|t| t / producers + u64::from(i < t % producers));
        let plan = ProducePlan {
            records,
            rate: args.rate.map(|r| r / producers as f64),
            deadline,
            start,
            first_partition: i as i32,
            seed: 0x9e37_79b9_7f4a_7c15 ^ i,
        };
        if args.transaction_records.is_some() {
            tasks.spawn(txn_produce::run_transactional_producer(
                layout,
                args.clone(),
                plan,
                stats.clone(),
            ));
        } else {
            tasks.spawn(produce::run_producer(
                layout,
                args.clone(),
                plan,
                stats.clone(),
            ));
        }
    }
    join_all(&mut tasks).await
}

/// Divides the partitions among the consumers; each consumer runs one fetch loop per leader.
fn spawn_consumers(
    args: &Arc<BenchArgs>,
    layouts: Vec<Layout>,
    starts: &[i64],
    target: Arc<ConsumeTarget>,
    stats: &Arc<Stats>,
) -> JoinSet<anyhow::Result<()>> {
    let mut tasks = JoinSet::new();
    let consumers = layouts.len();
    for (c, layout) in layouts.into_iter().enumerate() {
        let layout = Arc::new(layout);
        let mut loops: Vec<FetchLoop> = Vec::new();
        for p in (c..layout.leaders.len()).step_by(consumers) {
            let conn = &layout.leaders[p];
            let fetch_loop = match loops.iter_mut().find(|l| Arc::ptr_eq(&l.conn, conn)) {
                Some(l) => l,
                None => {
                    loops.push(FetchLoop {
                        conn: conn.clone(),
                        partitions: Vec::new(),
                        measure_latency: args.mode == Mode::EndToEnd,
                    });
                    loops.last_mut().unwrap()
                }
            };
            fetch_loop.partitions.push((p as i32, starts[p]));
        }
        for fetch_loop in loops {
            tasks.spawn(consume::run_fetch_loop(
                fetch_loop,
                layout.clone(),
                args.clone(),
                target.clone(),
                stats.clone(),
            ));
        }
    }
    tasks
}

async fn join_all(tasks: &mut JoinSet<anyhow::Result<()>>) -> anyhow::Result<()> {
    while let Some(done) = tasks.join_next().await {
        done.context("bench task panicked")??;
    }
    Ok(())
}

/// Prints the summary. A closed stdout (`| head`) is not an error worth a panic.
fn report(args: &BenchArgs, summaries: &[Summary]) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match args.output {
        Output::Text => {
            for s in summaries {
                let _ = writeln!(stdout, "{}", s.text());
            }
        }
        Output::Json => {
            let mut out = json!({
                "mode": args.mode.to_possible_value().map(|v| v.get_name().to_string()),
                "bootstrap": args.bootstrap,
                "topic": args.topic,
                "partitions": args.partitions,
                "record_size": args.record_size,
                "acks": args.acks,
                "compression": format!("{:?}", args.compression).to_lowercase(),
                "batch_size": args.batch_size,
                "linger_ms": args.linger_ms,
                "producers": args.producers,
                "consumers": args.consumers,
                "target_rate": args.rate,
            });
            for s in summaries {
                out[s.name] = s.json();
            }
            let _ = writeln!(stdout, "{out}");
        }
    }
}

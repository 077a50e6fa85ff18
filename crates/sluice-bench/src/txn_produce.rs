//! A transactional producer (`--transaction-records N`): like `produce.rs`'s, but every N
//! records are one transaction: the partitions it will write are added first
//! (AddPartitionsToTxn), its batches carry the producer's id, epoch and sequences with the
//! transactional bit, and it ends with EndTxn (commit) once every batch is acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use futures::stream::{FuturesUnordered, StreamExt};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use sluice_log::batch;

use crate::args::BenchArgs;
use crate::cluster::Layout;
use crate::produce::{handle_ack, send_as, Acked, InFlight, ProducePlan};
use crate::records::{BatchBuilder, RECORD_OVERHEAD};
use crate::stats::Stats;
use sluice_client::{ClientSecurity, Conn};

/// Errors a coordinator answers while it gets ready or finishes the previous transaction:
/// asked again after a pause.
const RETRIABLE: [i16; 3] = [14, 15, 51]; // load in progress, not available, concurrent

pub async fn run_transactional_producer(
    layout: Layout,
    args: Arc<BenchArgs>,
    plan: ProducePlan,
    stats: Arc<Stats>,
) -> anyhow::Result<()> {
    let per_txn = args.transaction_records.unwrap_or(u64::MAX);
    let per_batch = (args.batch_size / (args.record_size + RECORD_OVERHEAD))
        .clamp(1, args.batch_records) as u64;
    let limit = plan.records.unwrap_or(u64::MAX);
    let id = format!("sluice-bench-{}-{:x}", std::process::id(), plan.seed);
    let txn_id = TransactionalId(StrBytes::from_string(id.clone()));
    let coordinator = find_coordinator(&args.bootstrap, &args.client_security, &id).await?;
    let init_request = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id.clone()))
        .with_transaction_timeout_ms(60_000);
    let init: InitProducerIdResponse = retry(
        || coordinator.call_at(ApiKey::InitProducerId, 3, &init_request),
        |r: &InitProducerIdResponse| r.error_code,
    )
    .await?;
    let (pid, epoch) = (init.producer_id, init.producer_epoch);
    let partitions = layout.partitions();
    let mut sequences = vec![0i32; partitions as usize];
    let mut builder = BatchBuilder::new(args.record_size, args.compression.codec(), plan.seed);
    let mut partition = plan.first_partition % partitions;
    let mut produced = 0u64;
    let no_rate = |_: u64| None;
    while produced < limit && plan.deadline.is_none_or(|d| Instant::now() < d) {
        let in_txn = per_txn.min(limit - produced);
        // The partitions this transaction's batches go to (one batch each, in turn).
        let batches = in_txn.div_ceil(per_batch);
        let touched: Vec<i32> = (0..batches.min(partitions as u64))
            .map(|b| (partition + b as i32) % partitions)
            .collect();
        let add = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn_id.clone())
            .with_v3_and_below_producer_id(pid)
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(layout.topic.clone())
                .with_partitions(touched)]);
        let added: AddPartitionsToTxnResponse = retry(
            || coordinator.call_at(ApiKey::AddPartitionsToTxn, 3, &add),
            |r: &AddPartitionsToTxnResponse| {
                r.results_by_topic_v3_and_below
                    .iter()
                    .flat_map(|t| &t.results_by_partition)
                    .map(|p| p.partition_error_code)
                    .find(|c| *c != 0)
                    .unwrap_or(0)
            },
        )
        .await?;
        drop(added);
        let mut in_flight: FuturesUnordered<Acked> = FuturesUnordered::new();
        let mut sent = 0u64;
        while sent < in_txn {
            if in_flight.len() >= args.max_in_flight {
                let acked = in_flight.next().await.expect("requests in flight");
                handle_ack(&args, &stats, acked, &no_rate)?;
                continue;
            }
            let n = per_batch.min(in_txn - sent);
            let conn = layout.leaders[partition as usize].clone();
            let built = builder.build(n as usize, |_| crate::records::wall_clock_ns())?;
            let mut bytes = built.to_vec();
            let seq = &mut sequences[partition as usize];
            batch::set_transactional(&mut bytes, pid.0, epoch, *seq);
            *seq = seq.wrapping_add(n as i32);
            let info = InFlight {
                first_record: produced + sent,
                records: n,
                sent: Instant::now(),
                version: conn.version(ApiKey::Produce),
            };
            let acked = send_as(
                &conn,
                &layout,
                &args,
                partition,
                bytes.into(),
                info,
                Some(&id),
            )
            .await?;
            in_flight.push(acked);
            sent += n;
            partition = (partition + 1) % partitions;
        }
        while let Some(acked) = in_flight.next().await {
            handle_ack(&args, &stats, acked, &no_rate)?;
        }
        let end = EndTxnRequest::default()
            .with_transactional_id(txn_id.clone())
            .with_producer_id(pid)
            .with_producer_epoch(epoch)
            .with_committed(true);
        retry(
            || coordinator.call_at(ApiKey::EndTxn, 3, &end),
            |r: &EndTxnResponse| r.error_code,
        )
        .await?;
        produced += in_txn;
    }
    Ok(())
}

/// Calls until the answer's error is not a retriable coordinator error; fails on others.
async fn retry<T, F, Fut>(mut call: F, code: impl Fn(&T) -> i16) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = call().await?;
        match code(&r) {
            0 => return Ok(r),
            c if RETRIABLE.contains(&c) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            c => bail!("the transaction coordinator answered error {c}"),
        }
    }
}

/// A connection to the transaction coordinator of `id`.
async fn find_coordinator(
    bootstrap: &str,
    security: &ClientSecurity,
    id: &str,
) -> anyhow::Result<Arc<Conn>> {
    let boot = Conn::connect_with(bootstrap, security).await?;
    let request = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_key(StrBytes::from_string(id.to_string()));
    let found: FindCoordinatorResponse = retry(
        || boot.call_at(ApiKey::FindCoordinator, 3, &request),
        |r: &FindCoordinatorResponse| r.error_code,
    )
    .await?;
    Conn::connect_with(&format!("{}:{}", found.host.as_str(), found.port), security)
        .await
        .map_err(|e| anyhow!("cannot reach the transaction coordinator: {e}"))
}

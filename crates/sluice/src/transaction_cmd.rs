//! `sluice transaction list|describe|producers|abort`: the transactions the cluster's
//! coordinators know, the producers a partition's leader knows (with the first offset of
//! their open transaction), and aborting a hanging one at a partition, as Kafka's
//! `kafka-transactions.sh` does (a WriteTxnMarkers to the partition's leader).

use anyhow::{anyhow, bail};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TransactionalId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use serde::Serialize;

use crate::admin_client::{AdminClient, KEY_TYPE_TRANSACTION};
use crate::cli::{self, s, Common, Output, Status, Target};

#[derive(clap::Subcommand, Debug)]
pub enum TransactionCommand {
    /// List the transactional ids every coordinator knows.
    List(ListArgs),
    /// Show one transactional id: its state, producer, timeout and partitions.
    Describe(DescribeArgs),
    /// Show the producers a partition's leader knows and their open transactions.
    Producers(ProducersArgs),
    /// Abort a hanging transaction at one partition: its leader writes the abort marker.
    Abort(AbortArgs),
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: Common,
    /// Only these states (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
    /// CompleteAbort).
    #[arg(long = "state")]
    pub states: Vec<String>,
    /// Only transactions open at least this long (ms).
    #[arg(long)]
    pub min_duration_ms: Option<i64>,
}

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    #[command(flatten)]
    pub common: Common,
    pub transactional_id: String,
}

#[derive(clap::Args, Debug)]
pub struct ProducersArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub topic: String,
    /// One partition (default: all).
    #[arg(long)]
    pub partition: Option<i32>,
}

#[derive(clap::Args, Debug)]
pub struct AbortArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub partition: i32,
    /// The producer whose open transaction is aborted (see `sluice transaction producers`).
    #[arg(long)]
    pub producer_id: i64,
}

pub fn run(command: TransactionCommand) -> anyhow::Result<Status> {
    cli::block_on(async move {
        match command {
            TransactionCommand::List(a) => list(&a).await,
            TransactionCommand::Describe(a) => describe(&a).await,
            TransactionCommand::Producers(a) => producers(&a).await,
            TransactionCommand::Abort(a) => abort(&a).await,
        }
    })
}

/// A transactional id as a coordinator lists it.
#[derive(Serialize)]
pub(crate) struct Listed {
    pub transactional_id: String,
    pub coordinator: i32,
    pub producer_id: i64,
    pub state: String,
}

/// Every coordinator's transactional ids (sorted), filtered by state names and minimum
/// duration; Err((broker, code)) when a broker refuses.
pub(crate) async fn transaction_rows(
    target: &Target,
    states: &[String],
    min_duration_ms: Option<i64>,
) -> anyhow::Result<Result<Vec<Listed>, (i32, i16)>> {
    let AdminClient {
        metadata, brokers, ..
    } = AdminClient::connect(target).await?;
    let request = ListTransactionsRequest::default()
        .with_state_filters(states.iter().map(|st| s(st)).collect())
        .with_duration_filter(min_duration_ms.unwrap_or(-1));
    let mut rows = Vec::new();
    for b in &metadata.brokers {
        let conn = brokers.conn(b.node_id.0).await?;
        let r: ListTransactionsResponse =
            conn.call_at(ApiKey::ListTransactions, 1, &request).await?;
        if r.error_code != 0 {
            return Ok(Err((b.node_id.0, r.error_code)));
        }
        if let Some(unknown) = r.unknown_state_filters.first() {
            bail!("{unknown:?} is not a transaction state");
        }
        rows.extend(r.transaction_states.iter().map(|t| Listed {
            transactional_id: t.transactional_id.to_string(),
            coordinator: b.node_id.0,
            producer_id: t.producer_id.0,
            state: t.transaction_state.to_string(),
        }));
    }
    rows.sort_by(|x, y| x.transactional_id.cmp(&y.transactional_id));
    Ok(Ok(rows))
}

async fn list(a: &ListArgs) -> anyhow::Result<Status> {
    let rows = match transaction_rows(&a.common.target()?, &a.states, a.min_duration_ms).await? {
        Ok(rows) => rows,
        Err((broker, code)) => {
            return Ok(cli::refused(
                &format!("listing at broker {broker}"),
                code,
                None,
            ))
        }
    };
    if a.common.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.transactional_id.clone(),
                r.coordinator.to_string(),
                r.producer_id.to_string(),
                r.state.clone(),
            ]
        })
        .collect();
    cli::print_table(
        &["TRANSACTIONAL_ID", "COORDINATOR", "PRODUCER_ID", "STATE"],
        &table,
    );
    Ok(0)
}

async fn describe(a: &DescribeArgs) -> anyhow::Result<Status> {
    let AdminClient { via, brokers, .. } = AdminClient::connect(&a.common.target()?).await?;
    let coordinator = brokers
        .find(&via, KEY_TYPE_TRANSACTION, &a.transactional_id)
        .await?;
    let r: DescribeTransactionsResponse = coordinator
        .call_at(
            ApiKey::DescribeTransactions,
            0,
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s(&a.transactional_id))]),
        )
        .await?;
    let t = r
        .transaction_states
        .first()
        .ok_or_else(|| anyhow!("the coordinator described nothing"))?;
    if t.error_code != 0 {
        return Ok(cli::refused(
            &format!("describing {:?}", a.transactional_id),
            t.error_code,
            None,
        ));
    }
    let partitions: Vec<String> = t
        .topics
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |p| format!("{}-{p}", tp.topic.as_str()))
        })
        .collect();
    if a.common.output == Output::Json {
        let out = serde_json::json!({
            "transactional_id": a.transactional_id,
            "state": t.transaction_state.as_str(),
            "producer_id": t.producer_id.0,
            "producer_epoch": t.producer_epoch,
            "timeout_ms": t.transaction_timeout_ms,
            "start_time_ms": t.transaction_start_time_ms,
            "partitions": partitions,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    println!("transactional id: {}", a.transactional_id);
    println!("state:            {}", t.transaction_state.as_str());
    println!(
        "producer:         {} (epoch {})",
        t.producer_id.0, t.producer_epoch
    );
    println!("timeout:          {} ms", t.transaction_timeout_ms);
    if t.transaction_start_time_ms >= 0 {
        println!("started at:       {} ms", t.transaction_start_time_ms);
    }
    println!("partitions:       {}", partitions.join(", "));
    Ok(0)
}

#[derive(Serialize)]
struct ProducerRow {
    partition: i32,
    producer_id: i64,
    producer_epoch: i32,
    last_sequence: i32,
    last_timestamp: i64,
    coordinator_epoch: i32,
    /// The first offset of its open transaction (-1: none).
    current_txn_start_offset: i64,
}

/// The producers each wanted partition's leader knows.
async fn producer_rows(
    target: &Target,
    topic: &str,
    partition: Option<i32>,
) -> anyhow::Result<Result<Vec<ProducerRow>, (String, i16)>> {
    let AdminClient {
        metadata, brokers, ..
    } = AdminClient::connect(target).await?;
    let t = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .ok_or_else(|| anyhow!("no topic {topic:?}"))?;
    let mut rows = Vec::new();
    for p in &t.partitions {
        if partition.is_some_and(|want| want != p.partition_index) {
            continue;
        }
        let conn = brokers.conn(p.leader_id.0).await?;
        let r: DescribeProducersResponse = conn
            .call_at(
                ApiKey::DescribeProducers,
                0,
                &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_indexes(vec![p.partition_index])]),
            )
            .await?;
        let answer = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| anyhow!("the leader described nothing"))?;
        if answer.error_code != 0 {
            return Ok(Err((
                format!("producers of {topic}-{}", p.partition_index),
                answer.error_code,
            )));
        }
        rows.extend(answer.active_producers.iter().map(|a| ProducerRow {
            partition: p.partition_index,
            producer_id: a.producer_id.0,
            producer_epoch: a.producer_epoch,
            last_sequence: a.last_sequence,
            last_timestamp: a.last_timestamp,
            coordinator_epoch: a.coordinator_epoch,
            current_txn_start_offset: a.current_txn_start_offset,
        }));
    }
    if let Some(want) = partition {
        if !t.partitions.iter().any(|p| p.partition_index == want) {
            bail!("{topic} has no partition {want}");
        }
    }
    Ok(Ok(rows))
}

async fn producers(a: &ProducersArgs) -> anyhow::Result<Status> {
    let rows = match producer_rows(&a.common.target()?, &a.topic, a.partition).await? {
        Ok(rows) => rows,
        Err((what, code)) => return Ok(cli::refused(&what, code, None)),
    };
    if a.common.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.partition.to_string(),
                r.producer_id.to_string(),
                r.producer_epoch.to_string(),
                r.last_sequence.to_string(),
                r.coordinator_epoch.to_string(),
                match r.current_txn_start_offset {
                    -1 => "-".to_string(),
                    o => o.to_string(),
                },
            ]
        })
        .collect();
    cli::print_table(
        &[
            "PARTITION",
            "PRODUCER_ID",
            "EPOCH",
            "LAST_SEQUENCE",
            "COORDINATOR_EPOCH",
            "OPEN_TXN_START",
        ],
        &table,
    );
    Ok(0)
}

async fn abort(a: &AbortArgs) -> anyhow::Result<Status> {
    let rows = match producer_rows(&a.common.target()?, &a.topic, Some(a.partition)).await? {
        Ok(rows) => rows,
        Err((what, code)) => return Ok(cli::refused(&what, code, None)),
    };
    let Some(p) = rows.iter().find(|r| r.producer_id == a.producer_id) else {
        eprintln!(
            "sluice: producer {} is not known at {}-{}",
            a.producer_id, a.topic, a.partition
        );
        return Ok(1);
    };
    if p.current_txn_start_offset < 0 {
        eprintln!(
            "sluice: producer {} has no open transaction at {}-{}",
            a.producer_id, a.topic, a.partition
        );
        return Ok(1);
    }
    let AdminClient {
        metadata, brokers, ..
    } = AdminClient::connect(&a.common.target()?).await?;
    let leader = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == a.topic))
        .and_then(|t| {
            t.partitions
                .iter()
                .find(|x| x.partition_index == a.partition)
        })
        .map(|x| x.leader_id.0)
        .ok_or_else(|| anyhow!("{}-{} has no leader", a.topic, a.partition))?;
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(p.producer_id))
            .with_producer_epoch(p.producer_epoch as i16)
            .with_transaction_result(false)
            .with_coordinator_epoch(p.coordinator_epoch.max(0))
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(s(&a.topic)))
                .with_partition_indexes(vec![a.partition])])]);
    let r: WriteTxnMarkersResponse = brokers
        .conn(leader)
        .await?
        .call_at(ApiKey::WriteTxnMarkers, 1, &request)
        .await?;
    let code = r
        .markers
        .first()
        .and_then(|m| m.topics.first())
        .and_then(|t| t.partitions.first())
        .map_or(-1, |x| x.error_code);
    if code != 0 {
        return Ok(cli::refused("writing the abort marker", code, None));
    }
    if a.common.output == Output::Json {
        let out = serde_json::json!({
            "topic": a.topic,
            "partition": a.partition,
            "producer_id": p.producer_id,
            "aborted_from_offset": p.current_txn_start_offset,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "aborted producer {}'s transaction at {}-{} (open since offset {})",
            p.producer_id, a.topic, a.partition, p.current_txn_start_offset
        );
    }
    Ok(0)
}

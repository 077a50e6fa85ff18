//! The REST API on the HTTP listener, after Confluent REST Proxy v3 where it has the
//! operation (so its tooling works): clusters, topics (list, create, describe, delete),
//! producing records, consumer groups and their lag; and reading records of a partition by
//! offset, which v3 lacks (a path of Sluice's own under the same tree). `docs/openapi.json`
//! describes every path and body; errors are `{"error_code": N, "message": "..."}` with
//! Confluent's codes (HTTP status × 100 + a number).
//!
//! The handlers are Kafka clients of the cluster, through this broker's own listener: what
//! a broker forwards (to the controller) or routes (to a partition's leader) is done as for
//! any client.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_broker::Broker;

use crate::cli::{self, s, Brokers};
use crate::{group_cmd, queue_cmd, topic_cmd, transaction_cmd};

/// What the REST handlers share: the broker (for its cluster id and address).
#[derive(Clone)]
pub struct Rest {
    pub broker: Arc<Broker>,
}

impl Rest {
    /// This broker's Kafka listener, which the handlers are clients of.
    fn bootstrap(&self) -> String {
        let info = self.broker.config.broker_info();
        format!("{}:{}", info.host, info.port)
    }

    fn cluster_id(&self) -> String {
        self.broker.image().cluster_id.clone()
    }
}

pub fn routes() -> Router<Rest> {
    Router::new()
        .route("/v3/clusters", get(clusters))
        .route("/v3/clusters/{cluster}", get(cluster))
        .route(
            "/v3/clusters/{cluster}/topics",
            get(topics).post(create_topic),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}",
            get(topic).delete(delete_topic),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/records",
            axum::routing::post(produce),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/partitions/{partition}/records",
            get(read_records),
        )
        .route("/v3/clusters/{cluster}/brokers", get(brokers))
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/partitions",
            get(partitions),
        )
        .route("/v3/clusters/{cluster}/share-groups", get(share_groups))
        .route(
            "/v3/clusters/{cluster}/share-groups/{group}",
            get(share_group),
        )
        .route("/v3/clusters/{cluster}/transactions", get(transactions))
        .route("/v3/clusters/{cluster}/consumer-groups", get(groups))
        .route(
            "/v3/clusters/{cluster}/consumer-groups/{group}/lags",
            get(lags),
        )
        .route(
            "/v3/clusters/{cluster}/consumer-groups/{group}/consumers",
            get(consumers),
        )
}

/// An error answer: HTTP status and Confluent's error code.
struct Failure(StatusCode, u32, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({ "error_code": self.1, "message": self.2 })),
        )
            .into_response()
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure(StatusCode::INTERNAL_SERVER_ERROR, 50001, format!("{e:#}"))
    }
}

type Answer = Result<Response, Failure>;

/// A Kafka error as an HTTP failure.
fn refused(code: i16, message: Option<&str>) -> Failure {
    let text = match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{}: {m}", cli::error_name(code)),
        None => cli::error_name(code),
    };
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const GROUP_ID_NOT_FOUND: i16 = 69;
    match code {
        UNKNOWN_TOPIC_OR_PARTITION => Failure(StatusCode::NOT_FOUND, 40403, text),
        GROUP_ID_NOT_FOUND => Failure(StatusCode::NOT_FOUND, 40404, text),
        _ => Failure(StatusCode::BAD_REQUEST, 40002, text),
    }
}

fn check_cluster(rest: &Rest, cluster: &str) -> Result<(), Failure> {
    if cluster == rest.cluster_id() {
        return Ok(());
    }
    Err(Failure(
        StatusCode::NOT_FOUND,
        40401,
        format!("no cluster {cluster:?} (this one is {})", rest.cluster_id()),
    ))
}

fn related(path: &str) -> Value {
    json!({ "related": path })
}

fn cluster_data(rest: &Rest) -> Value {
    let id = rest.cluster_id();
    let base = format!("/v3/clusters/{id}");
    json!({
        "kind": "KafkaCluster",
        "metadata": { "self": base, "resource_name": format!("crn:///kafka={id}") },
        "cluster_id": id,
        "controller": related(&format!("{base}/brokers/{}", rest.broker.image().controller_id)),
        "brokers": related(&format!("{base}/brokers")),
        "topics": related(&format!("{base}/topics")),
        "consumer_groups": related(&format!("{base}/consumer-groups")),
    })
}

async fn clusters(State(rest): State<Rest>) -> Json<Value> {
    Json(json!({
        "kind": "KafkaClusterList",
        "metadata": { "self": "/v3/clusters", "next": null },
        "data": [cluster_data(&rest)],
    }))
}

async fn cluster(State(rest): State<Rest>, Path(cluster): Path<String>) -> Answer {
    check_cluster(&rest, &cluster)?;
    Ok(Json(cluster_data(&rest)).into_response())
}

fn topic_data(cluster: &str, name: &str, internal: bool, rf: usize, partitions: usize) -> Value {
    let base = format!("/v3/clusters/{cluster}/topics/{name}");
    json!({
        "kind": "KafkaTopic",
        "metadata": {
            "self": base,
            "resource_name": format!("crn:///kafka={cluster}/topic={name}"),
        },
        "cluster_id": cluster,
        "topic_name": name,
        "is_internal": internal,
        "replication_factor": rf,
        "partitions_count": partitions,
        "partitions": related(&format!("{base}/partitions")),
        "configs": related(&format!("{base}/configs")),
    })
}

async fn topics(State(rest): State<Rest>, Path(cluster): Path<String>) -> Answer {
    check_cluster(&rest, &cluster)?;
    let rows = topic_cmd::topic_rows(&rest.bootstrap()).await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|t| {
            topic_data(
                &cluster,
                &t.name,
                t.internal,
                t.replication_factor,
                t.partitions,
            )
        })
        .collect();
    Ok(Json(json!({
        "kind": "KafkaTopicList",
        "metadata": { "self": format!("/v3/clusters/{cluster}/topics"), "next": null },
        "data": data,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct NewTopic {
    topic_name: String,
    partitions_count: Option<i32>,
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: Vec<NewConfig>,
}

#[derive(Deserialize)]
struct NewConfig {
    name: String,
    value: String,
}

/// A JSON body, or a 400 naming what is wrong with it.
fn body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(raw).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            40001,
            format!("bad request body: {e}"),
        )
    })
}

async fn create_topic(
    State(rest): State<Rest>,
    Path(cluster): Path<String>,
    raw: axum::body::Bytes,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let t: NewTopic = body(&raw)?;
    let configs: Vec<(String, String)> = t.configs.into_iter().map(|c| (c.name, c.value)).collect();
    let created = topic_cmd::create_topic(
        &rest.bootstrap(),
        &t.topic_name,
        t.partitions_count.unwrap_or(-1),
        t.replication_factor.unwrap_or(-1),
        &configs,
    )
    .await?;
    if let Err((code, message)) = created {
        return Err(refused(code, message.as_deref()));
    }
    let described = describe(&rest, &cluster, &t.topic_name).await?;
    Ok((StatusCode::CREATED, Json(described)).into_response())
}

async fn describe(rest: &Rest, cluster: &str, name: &str) -> Result<Value, Failure> {
    let found = topic_cmd::describe_topics(&rest.bootstrap(), &[name.to_string()]).await?;
    match found.into_iter().next() {
        Some((_, Ok(d))) => {
            let rf = d.partitions.first().map_or(0, |p| p.replicas.len());
            Ok(topic_data(
                cluster,
                &d.name,
                d.internal,
                rf,
                d.partitions.len(),
            ))
        }
        Some((_, Err(code))) => Err(refused(code, None)),
        None => Err(refused(3, None)),
    }
}

async fn topic(State(rest): State<Rest>, Path((cluster, name)): Path<(String, String)>) -> Answer {
    check_cluster(&rest, &cluster)?;
    Ok(Json(describe(&rest, &cluster, &name).await?).into_response())
}

async fn delete_topic(
    State(rest): State<Rest>,
    Path((cluster, name)): Path<(String, String)>,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let outcome = topic_cmd::delete_topics(&rest.bootstrap(), std::slice::from_ref(&name)).await?;
    match outcome.into_iter().next() {
        Some((_, Ok(()))) => Ok(StatusCode::NO_CONTENT.into_response()),
        Some((_, Err((code, message)))) => Err(refused(code, message.as_deref())),
        None => Err(refused(3, None)),
    }
}

/// A key or value of a produce request (Confluent's types: STRING, JSON, BINARY base64).
#[derive(Deserialize)]
struct Data {
    #[serde(rename = "type", default = "json_type")]
    kind: String,
    data: Value,
}

fn json_type() -> String {
    "JSON".into()
}

impl Data {
    fn bytes(&self) -> Result<Vec<u8>, Failure> {
        let bad = |why: String| Failure(StatusCode::BAD_REQUEST, 40001, why);
        match self.kind.as_str() {
            "JSON" => Ok(serde_json::to_vec(&self.data).unwrap_or_default()),
            "STRING" => match &self.data {
                Value::String(s) => Ok(s.as_bytes().to_vec()),
                other => Err(bad(format!("a STRING needs a string, not {other}"))),
            },
            "BINARY" => match &self.data {
                Value::String(s) => base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| bad(format!("BINARY data is not base64: {e}"))),
                other => Err(bad(format!(
                    "BINARY data must be a base64 string, not {other}"
                ))),
            },
            other => Err(bad(format!(
                "unknown data type {other:?} (JSON, STRING or BINARY)"
            ))),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    name: String,
    /// Base64, as Confluent's API has it; null for a header without a value.
    value: Option<String>,
}

#[derive(Deserialize)]
struct ProduceBody {
    partition_id: Option<i32>,
    #[serde(default)]
    headers: Vec<Header>,
    key: Option<Data>,
    value: Option<Data>,
    /// Epoch ms (default: now).
    timestamp: Option<i64>,
}

static NEXT_PARTITION: AtomicU32 = AtomicU32::new(0);

/// Kafka's default partitioner for a keyed record: murmur2 of the key, made positive, modulo
/// the partition count (so records land where Java and librdkafka's murmur2 partitioner put
/// them).
fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) as i32 % partitions
}

fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in chunks.by_ref() {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

async fn metadata_of(
    rest: &Rest,
    topic: &str,
) -> Result<(MetadataResponse, Vec<(i32, i32)>), Failure> {
    let conn = cli::connect(&rest.bootstrap()).await?;
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(s(topic)))),
        ]));
    let m: MetadataResponse = conn
        .call(ApiKey::Metadata, &request)
        .await
        .map_err(Failure::from)?;
    let t = m.topics.first().ok_or_else(|| refused(3, None))?;
    if t.error_code != 0 {
        return Err(refused(t.error_code, None));
    }
    let mut leaders: Vec<(i32, i32)> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    leaders.sort();
    Ok((m, leaders))
}

async fn produce(
    State(rest): State<Rest>,
    Path((cluster, topic)): Path<(String, String)>,
    raw: axum::body::Bytes,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let b: ProduceBody = body(&raw)?;
    let key = b.key.as_ref().map(Data::bytes).transpose()?;
    let value = b.value.as_ref().map(Data::bytes).transpose()?;
    let headers: Vec<(String, Option<Vec<u8>>)> = b
        .headers
        .iter()
        .map(|h| {
            let v = h
                .value
                .as_ref()
                .map(|v| base64::engine::general_purpose::STANDARD.decode(v))
                .transpose()
                .map_err(|e| {
                    Failure(
                        StatusCode::BAD_REQUEST,
                        40001,
                        format!("header {}: {e}", h.name),
                    )
                })?;
            Ok((h.name.clone(), v))
        })
        .collect::<Result<_, Failure>>()?;
    let (metadata, leaders) = metadata_of(&rest, &topic).await?;
    let count = leaders.len() as i32;
    let partition = match (b.partition_id, &key) {
        (Some(p), _) if !(0..count).contains(&p) => return Err(refused(3, None)),
        (Some(p), _) => p,
        (None, Some(k)) => partition_for_key(k, count),
        // Unkeyed records go round the partitions.
        (None, None) => {
            (NEXT_PARTITION.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff) as i32 % count
        }
    };
    let leader = leaders
        .iter()
        .find(|(p, _)| *p == partition)
        .map_or(-1, |l| l.1);
    let timestamp = b.timestamp.unwrap_or_else(now_ms);
    let mut batch = vec![0u8; sluice_log::batch::HEADER_SIZE];
    let header_refs: Vec<(&[u8], Option<&[u8]>)> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_deref()))
        .collect();
    sluice_log::batch::put_record_with_headers(
        &mut batch,
        0,
        0,
        key.as_deref(),
        value.as_deref(),
        &header_refs,
    );
    sluice_log::batch::seal_batch(&mut batch, 1, timestamp, 0);
    let brokers = Brokers::from(&metadata);
    let conn = brokers.conn(leader).await?;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(&topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch.into()))])]);
    let r: ProduceResponse = conn.call(ApiKey::Produce, &request).await?;
    let p = r
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .ok_or_else(|| Failure::from(anyhow::anyhow!("Produce answered nothing")))?;
    if p.error_code != 0 {
        return Err(refused(p.error_code, p.error_message.as_deref()));
    }
    let size = |d: &Option<Vec<u8>>, spec: &Option<Data>| {
        spec.as_ref()
            .map(|s| json!({ "type": s.kind, "size": d.as_ref().map_or(0, Vec::len) }))
    };
    Ok(Json(json!({
        "error_code": 200,
        "cluster_id": cluster,
        "topic_name": topic,
        "partition_id": partition,
        "offset": p.base_offset,
        "timestamp": timestamp,
        "key": size(&key, &b.key),
        "value": size(&value, &b.value),
    }))
    .into_response())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Deserialize)]
struct ReadQuery {
    offset: Option<i64>,
    max_records: Option<usize>,
}

/// Most records one read answers with.
const MAX_READ_RECORDS: usize = 1000;
/// Bytes fetched for one read.
const READ_BYTES: i32 = 4 << 20;

/// A record's key or value: text when it is UTF-8, else base64.
fn data_of(b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => json!({ "type": "STRING", "data": text }),
            Err(_) => json!({
                "type": "BINARY",
                "data": base64::engine::general_purpose::STANDARD.encode(b),
            }),
        },
    }
}

async fn read_records(
    State(rest): State<Rest>,
    Path((cluster, topic, partition)): Path<(String, String, i32)>,
    Query(q): Query<ReadQuery>,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let (metadata, leaders) = metadata_of(&rest, &topic).await?;
    let Some(&(_, leader)) = leaders.iter().find(|(p, _)| *p == partition) else {
        return Err(refused(3, None));
    };
    let brokers = Brokers::from(&metadata);
    let offset = match q.offset {
        Some(o) => o,
        None => {
            brokers
                .offset(leader, &topic, partition, cli::EARLIEST)
                .await?
        }
    };
    let max = q.max_records.unwrap_or(100).clamp(1, MAX_READ_RECORDS);
    let conn = brokers.conn(leader).await?;
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(READ_BYTES)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(&topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(READ_BYTES)])]);
    let r: FetchResponse = conn.call(ApiKey::Fetch, &request).await?;
    let p = r
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| Failure::from(anyhow::anyhow!("Fetch answered nothing")))?;
    if p.error_code != 0 {
        return Err(refused(p.error_code, None));
    }
    let mut records = Vec::new();
    let mut next = offset;
    let bytes = p.records.clone().unwrap_or_default();
    let mut pos = 0;
    'batches: while pos + sluice_log::batch::HEADER_SIZE <= bytes.len() {
        let header = sluice_log::batch::BatchHeader::parse(&bytes[pos..]);
        let end = pos + header.size();
        if end > bytes.len() || header.size() < sluice_log::batch::HEADER_SIZE {
            break; // a partial batch at the end of the fetch
        }
        let batch = &bytes[pos..end];
        pos = end;
        if header.is_control() {
            next = next.max(header.last_offset() + 1);
            continue;
        }
        let mut it = sluice_log::records::BatchRecords::open(batch, 64 << 20)
            .map_err(|e| Failure::from(anyhow::anyhow!("record batch: {e}")))?;
        while let Ok(Some(rec)) = it.next_record() {
            if rec.offset < offset {
                continue;
            }
            if records.len() >= max {
                break 'batches;
            }
            let headers: Vec<Value> = rec
                .headers()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    json!({
                        "name": String::from_utf8_lossy(k),
                        "value": v.map(|v| base64::engine::general_purpose::STANDARD.encode(v)),
                    })
                })
                .collect();
            records.push(json!({
                "partition_id": partition,
                "offset": rec.offset,
                "timestamp": rec.timestamp,
                "key": data_of(rec.key),
                "value": data_of(rec.value),
                "headers": headers,
            }));
            next = rec.offset + 1;
        }
    }
    Ok(Json(json!({
        "kind": "SluiceRecordList",
        "cluster_id": cluster,
        "topic_name": topic,
        "partition_id": partition,
        "next_offset": next,
        "data": records,
    }))
    .into_response())
}

async fn brokers(State(rest): State<Rest>, Path(cluster): Path<String>) -> Answer {
    check_cluster(&rest, &cluster)?;
    let conn = cli::connect(&rest.bootstrap()).await?;
    let m: MetadataResponse = conn
        .call(
            ApiKey::Metadata,
            &MetadataRequest::default().with_topics(Some(vec![])),
        )
        .await?;
    let base = format!("/v3/clusters/{cluster}/brokers");
    let mut data: Vec<Value> = m
        .brokers
        .iter()
        .map(|b| {
            json!({
                "kind": "KafkaBroker",
                "metadata": { "self": format!("{base}/{}", b.node_id.0) },
                "cluster_id": cluster,
                "broker_id": b.node_id.0,
                "host": b.host.as_str(),
                "port": b.port,
                "rack": b.rack.as_ref().map(|r| r.as_str()),
                "is_controller": b.node_id.0 == m.controller_id.0,
            })
        })
        .collect();
    data.sort_by_key(|b| b["broker_id"].as_i64());
    Ok(Json(json!({
        "kind": "KafkaBrokerList",
        "metadata": { "self": base, "next": null },
        "data": data,
    }))
    .into_response())
}

async fn partitions(
    State(rest): State<Rest>,
    Path((cluster, topic)): Path<(String, String)>,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let found = topic_cmd::describe_topics(&rest.bootstrap(), std::slice::from_ref(&topic)).await?;
    let d = match found.into_iter().next() {
        Some((_, Ok(d))) => d,
        Some((_, Err(code))) => return Err(refused(code, None)),
        None => return Err(refused(3, None)),
    };
    let base = format!("/v3/clusters/{cluster}/topics/{topic}/partitions");
    let data: Vec<Value> = d
        .partitions
        .iter()
        .map(|p| {
            json!({
                "kind": "KafkaPartition",
                "metadata": { "self": format!("{base}/{}", p.partition) },
                "cluster_id": cluster,
                "topic_name": topic,
                "partition_id": p.partition,
                "leader": related(&format!("/v3/clusters/{cluster}/brokers/{}", p.leader)),
                "leader_id": p.leader,
                "replicas": p.replicas,
                "isr": p.isr,
                "start_offset": p.start_offset,
                "end_offset": p.end_offset,
                "size_bytes": local_size(&rest, &topic, p.partition),
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": "KafkaPartitionList",
        "metadata": { "self": base, "next": null },
        "configs": d.configs,
        "data": data,
    }))
    .into_response())
}

async fn share_groups(State(rest): State<Rest>, Path(cluster): Path<String>) -> Answer {
    check_cluster(&rest, &cluster)?;
    let rows = match group_cmd::group_rows(&rest.bootstrap()).await? {
        Ok(rows) => rows,
        Err(code) => return Err(refused(code, None)),
    };
    let base = format!("/v3/clusters/{cluster}/share-groups");
    let data: Vec<Value> = rows
        .iter()
        .filter(|g| g.group_type.eq_ignore_ascii_case("share"))
        .map(|g| {
            json!({
                "kind": "KafkaShareGroup",
                "metadata": { "self": format!("{base}/{}", g.group) },
                "cluster_id": cluster,
                "share_group_id": g.group,
                "state": g.state.to_uppercase(),
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": "KafkaShareGroupList",
        "metadata": { "self": base, "next": null },
        "data": data,
    }))
    .into_response())
}

/// A queue: its members, and per partition its progress and in-flight records (as
/// `sluice queue describe` shows them).
async fn share_group(
    State(rest): State<Rest>,
    Path((cluster, group)): Path<(String, String)>,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let Some(q) = queue_cmd::describe_queue(&rest.bootstrap(), &group, &[]).await? else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            40404,
            format!("no share group {group:?}"),
        ));
    };
    Ok(Json(json!({
        "kind": "SluiceShareGroup",
        "cluster_id": cluster,
        "share_group_id": group,
        "state": q.state.to_uppercase(),
        "members": q.members,
        "partitions": q.partitions,
    }))
    .into_response())
}

/// Bytes of a partition's replica on this broker (none when it has no replica here).
fn local_size(rest: &Rest, topic: &str, partition: i32) -> Option<u64> {
    let t = rest.broker.topic(topic)?;
    let p = t.partition(partition)?.clone();
    let size = p.log().size_bytes();
    Some(size)
}

/// Every coordinator's transactional ids (Sluice's own path; what `sluice transaction list`
/// shows).
async fn transactions(State(rest): State<Rest>, Path(cluster): Path<String>) -> Answer {
    check_cluster(&rest, &cluster)?;
    let rows = match transaction_cmd::transaction_rows(&rest.bootstrap(), &[], None).await? {
        Ok(rows) => rows,
        Err((_, code)) => return Err(refused(code, None)),
    };
    let data: Vec<Value> = rows
        .iter()
        .map(|t| {
            json!({
                "kind": "SluiceTransaction",
                "transactional_id": t.transactional_id,
                "coordinator_id": t.coordinator,
                "producer_id": t.producer_id,
                "state": t.state,
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": "SluiceTransactionList",
        "metadata": { "self": format!("/v3/clusters/{cluster}/transactions"), "next": null },
        "data": data,
    }))
    .into_response())
}

async fn groups(State(rest): State<Rest>, Path(cluster): Path<String>) -> Answer {
    check_cluster(&rest, &cluster)?;
    let rows = match group_cmd::group_rows(&rest.bootstrap()).await? {
        Ok(rows) => rows,
        Err(code) => return Err(refused(code, None)),
    };
    let base = format!("/v3/clusters/{cluster}/consumer-groups");
    let data: Vec<Value> = rows
        .iter()
        // Share groups have their own path.
        .filter(|g| !g.group_type.eq_ignore_ascii_case("share"))
        .map(|g| {
            json!({
                "kind": "KafkaConsumerGroup",
                "metadata": { "self": format!("{base}/{}", g.group) },
                "cluster_id": cluster,
                "consumer_group_id": g.group,
                "is_simple": g.protocol_type.is_empty(),
                "state": g.state.to_uppercase(),
                "type": g.group_type,
                "lags": related(&format!("{base}/{}/lags", g.group)),
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": "KafkaConsumerGroupList",
        "metadata": { "self": base, "next": null },
        "data": data,
    }))
    .into_response())
}

/// A consumer group described, or the failure to answer with.
async fn described_group(rest: &Rest, group: &str) -> Result<group_cmd::Description, Failure> {
    match group_cmd::describe_group(&rest.bootstrap(), group).await? {
        Ok(d) => Ok(d),
        Err(group_cmd::NotDescribed::Refused(code, message)) => {
            Err(refused(code, message.as_deref()))
        }
        Err(group_cmd::NotDescribed::NoSuchGroup) => Err(Failure(
            StatusCode::NOT_FOUND,
            40404,
            format!("no consumer group {group:?}"),
        )),
    }
}

async fn consumers(
    State(rest): State<Rest>,
    Path((cluster, group)): Path<(String, String)>,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let d = described_group(&rest, &group).await?;
    let base = format!("/v3/clusters/{cluster}/consumer-groups/{group}/consumers");
    let data: Vec<Value> = d
        .members
        .iter()
        .map(|m| {
            let assigned: Vec<Value> = m
                .assignment
                .iter()
                .filter_map(|tp| tp.rsplit_once('-'))
                .map(|(t, p)| {
                    json!({ "topic_name": t, "partition_id": p.parse::<i32>().unwrap_or(-1) })
                })
                .collect();
            json!({
                "kind": "KafkaConsumer",
                "metadata": { "self": format!("{base}/{}", m.member_id) },
                "cluster_id": cluster,
                "consumer_group_id": group,
                "consumer_id": m.member_id,
                "client_id": m.client_id,
                "host": m.host,
                "assigned_partitions": assigned,
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": "KafkaConsumerList",
        "metadata": { "self": base, "next": null },
        "data": data,
    }))
    .into_response())
}

async fn lags(State(rest): State<Rest>, Path((cluster, group)): Path<(String, String)>) -> Answer {
    check_cluster(&rest, &cluster)?;
    let d = described_group(&rest, &group).await?;
    let data: Vec<Value> = d
        .partitions
        .iter()
        .map(|p| {
            json!({
                "kind": "KafkaConsumerLag",
                "cluster_id": cluster,
                "consumer_group_id": group,
                "topic_name": p.topic,
                "partition_id": p.partition,
                "current_offset": p.committed,
                "log_end_offset": p.end_offset,
                "lag": p.lag,
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": "KafkaConsumerLagList",
        "metadata": { "self": format!("/v3/clusters/{cluster}/consumer-groups/{group}/lags"), "next": null },
        "data": data,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_land_where_kafkas_default_partitioner_puts_them() {
        // Kafka's own vectors (UtilsTest.testMurmur2 in the Java client).
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (key, hash) in cases {
            assert_eq!(super::murmur2(key), hash as u32, "{key:?}");
        }
    }
}

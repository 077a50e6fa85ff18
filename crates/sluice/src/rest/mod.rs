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

mod brokers;
mod clusters;
mod consumer_groups;
mod partitions;
mod produce;
mod read_records;
mod share_groups;
mod topics;
mod transactions;

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

use crate::admin_client::Brokers;
use crate::cli::{self, s, Target};
use crate::{group_cmd, queue_cmd, topic_cmd, transaction_cmd};

/// What the REST handlers share: the broker (for its cluster id and address).
#[derive(Clone)]
pub struct Rest {
    pub broker: Arc<Broker>,
}

impl Rest {
    /// This broker's inter-broker listener, which the handlers are clients of (as the
    /// broker connects to others: its TLS settings and login).
    fn target(&self) -> Target {
        let info = self.broker.config.broker_info();
        Target {
            bootstrap: format!("{}:{}", info.host, info.port),
            security: self.broker.config.inter_broker_security.clone(),
        }
    }

    fn cluster_id(&self) -> String {
        self.broker.replicas.image().cluster_id.clone()
    }
}

pub fn routes() -> Router<Rest> {
    Router::new()
        .route("/v3/clusters", get(clusters::clusters))
        .route("/v3/clusters/{cluster}", get(clusters::cluster))
        .route(
            "/v3/clusters/{cluster}/topics",
            get(topics::topics).post(topics::create_topic),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}",
            get(topics::topic).delete(topics::delete_topic),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/records",
            axum::routing::post(produce::produce),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/partitions/{partition}/records",
            get(read_records::read_records),
        )
        .route("/v3/clusters/{cluster}/brokers", get(brokers::brokers))
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/partitions",
            get(partitions::partitions),
        )
        .route(
            "/v3/clusters/{cluster}/share-groups",
            get(share_groups::share_groups),
        )
        .route(
            "/v3/clusters/{cluster}/share-groups/{group}",
            get(share_groups::share_group),
        )
        .route(
            "/v3/clusters/{cluster}/transactions",
            get(transactions::transactions),
        )
        .route(
            "/v3/clusters/{cluster}/consumer-groups",
            get(consumer_groups::groups),
        )
        .route(
            "/v3/clusters/{cluster}/consumer-groups/{group}/lags",
            get(consumer_groups::lags),
        )
        .route(
            "/v3/clusters/{cluster}/consumer-groups/{group}/consumers",
            get(consumer_groups::consumers),
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

/// A topic's metadata, with its partitions' leaders by partition.
async fn metadata_of(
    rest: &Rest,
    topic: &str,
) -> Result<(MetadataResponse, Vec<(i32, i32)>), Failure> {
    let conn = cli::connect(&rest.target()).await?;
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

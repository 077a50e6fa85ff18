//! What the client subcommands (`topic`, `group`, `queue`, `cluster`) share: reaching a
//! broker, naming Kafka error codes, and printing tables or JSON.
//!
//! Exit status: 0 done; 1 the broker refused (the Kafka error is named); 2 the broker could
//! not be asked (unreachable, timed out) or the arguments are wrong.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context as _};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_client::Conn;

/// ListOffsets' timestamps for the first and the next offset.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// How long a command waits for a broker.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The exit status a command chose (1: refused by the broker).
pub type Status = i32;

/// Runs a command's future on a runtime of its own, bounded by `TIMEOUT`.
pub fn block_on<F: std::future::Future<Output = anyhow::Result<Status>>>(
    what: F,
) -> anyhow::Result<Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::time::timeout(TIMEOUT, what)
            .await
            .map_err(|_| anyhow::anyhow!("the broker did not answer within {TIMEOUT:?}"))?
    })
}

pub async fn connect(bootstrap: &str) -> anyhow::Result<Arc<Conn>> {
    Conn::connect(bootstrap)
        .await
        .with_context(|| format!("cannot reach a broker at {bootstrap}"))
}

/// A `name=value` argument.
pub fn name_value(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{v:?} is not name=value")),
    }
}

/// A Kafka error code by its name: `TOPIC_ALREADY_EXISTS (36)`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => format!("error {code}"),
        Some(e) => format!("{} ({code})", screaming(&format!("{e:?}"))),
    }
}

/// `TopicAlreadyExists` -> `TOPIC_ALREADY_EXISTS`, as Kafka's documentation names errors.
fn screaming(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Prints a refusal (`sluice: what: ERROR (code): message`) and returns its exit status.
pub fn refused(what: &str, code: i16, message: Option<&str>) -> Status {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => eprintln!("sluice: {what}: {}: {m}", error_name(code)),
        None => eprintln!("sluice: {what}: {}", error_name(code)),
    }
    1
}

/// Prints rows under a header, each column as wide as its widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The cluster's brokers by id (from a Metadata answer), connected to as needed.
pub struct Brokers {
    addresses: BTreeMap<i32, String>,
    open: tokio::sync::Mutex<BTreeMap<i32, Arc<Conn>>>,
}

impl Brokers {
    pub fn from(metadata: &MetadataResponse) -> Brokers {
        Brokers {
            addresses: metadata
                .brokers
                .iter()
                .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
                .collect(),
            open: Default::default(),
        }
    }

    pub async fn conn(&self, node: i32) -> anyhow::Result<Arc<Conn>> {
        let mut open = self.open.lock().await;
        if let Some(c) = open.get(&node) {
            return Ok(c.clone());
        }
        let addr = self
            .addresses
            .get(&node)
            .ok_or_else(|| anyhow!("broker {node} is not in the cluster's metadata"))?;
        let c = Conn::connect(addr).await?;
        open.insert(node, c.clone());
        Ok(c)
    }

    /// The coordinator of `key` (a group, or a share-partition's state), connected.
    pub async fn find(&self, via: &Conn, key_type: i8, key: &str) -> anyhow::Result<Arc<Conn>> {
        let request = FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![s(key)]);
        let r: FindCoordinatorResponse = via.call_at(ApiKey::FindCoordinator, 4, &request).await?;
        let c = r
            .coordinators
            .first()
            .ok_or_else(|| anyhow!("FindCoordinator answered nothing"))?;
        if c.error_code != 0 {
            bail!(
                "no coordinator for {key:?}: error {} {}",
                c.error_code,
                c.error_message.as_deref().unwrap_or("")
            );
        }
        self.conn(c.node_id.0).await
    }

    /// The offset ListOffsets gives at `leader` for `timestamp` (`EARLIEST`, `LATEST`, or
    /// epoch ms); -1 when there is no leader.
    pub async fn offset(
        &self,
        leader: i32,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> anyhow::Result<i64> {
        if leader < 0 {
            return Ok(-1);
        }
        let conn = self.conn(leader).await?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)])]);
        let r: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, &request).await?;
        let p = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| anyhow!("ListOffsets answered nothing for {topic}/{partition}"))?;
        if p.error_code != 0 {
            bail!(
                "offsets of {topic}/{partition}: {}",
                error_name(p.error_code)
            );
        }
        Ok(p.offset)
    }
}

/// The options every client subcommand takes.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// Any broker of the cluster (host:port).
    #[arg(long, env = "SLUICE_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

/// `text` for people, `json` for scripts.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_are_named_as_kafka_names_them() {
        assert_eq!(super::error_name(36), "TOPIC_ALREADY_EXISTS (36)");
        assert_eq!(super::error_name(3), "UNKNOWN_TOPIC_OR_PARTITION (3)");
        assert_eq!(super::error_name(-9999), "error -9999");
    }
}

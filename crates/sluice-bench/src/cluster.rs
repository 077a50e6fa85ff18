//! Where the bench topic's partitions live: topic creation, leaders from Metadata, one
//! connection per leader, and the offsets a consumer starts and stops at.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use sluice_client::{ClientSecurity, Conn};

const TOPIC_ALREADY_EXISTS: i16 = 36;
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

pub struct Layout {
    pub topic: TopicName,
    pub topic_id: uuid::Uuid,
    /// Partition index -> the connection to its leader.
    pub leaders: Vec<Arc<Conn>>,
}

impl Layout {
    pub fn partitions(&self) -> i32 {
        self.leaders.len() as i32
    }
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Creates the topic if it does not exist and connects to every partition's leader.
/// `connections` opens that many independent connections per leader (one per producer or
/// consumer), so that their requests do not queue behind each other.
pub async fn discover(
    bootstrap: &str,
    security: &ClientSecurity,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    connections: usize,
) -> anyhow::Result<Vec<Layout>> {
    let boot = Conn::connect_with(bootstrap, security).await?;
    let name = topic_name(topic);
    create_topic(&boot, &name, partitions, replication_factor).await?;
    let metadata = wait_for_leaders(&boot, &name).await?;
    let addresses: HashMap<BrokerId, String> = metadata
        .brokers
        .iter()
        .map(|b| (b.node_id, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let topic_meta = &metadata.topics[0];
    let mut by_index: Vec<_> = topic_meta.partitions.iter().collect();
    by_index.sort_by_key(|p| p.partition_index);
    let mut layouts = Vec::new();
    for _ in 0..connections {
        let mut conns: HashMap<BrokerId, Arc<Conn>> = HashMap::new();
        let mut leaders = Vec::new();
        for p in &by_index {
            let conn = match conns.get(&p.leader_id) {
                Some(c) => c.clone(),
                None => {
                    let addr = addresses
                        .get(&p.leader_id)
                        .ok_or_else(|| anyhow!("leader {} is not in Metadata", p.leader_id.0))?;
                    let c = Conn::connect_with(addr, security).await?;
                    conns.insert(p.leader_id, c.clone());
                    c
                }
            };
            leaders.push(conn);
        }
        // In a cluster a new topic reaches each broker a moment after the controller: wait
        // until every leader knows it, so the first requests are not refused.
        for conn in conns.values() {
            wait_for_leaders(conn, &name).await?;
        }
        layouts.push(Layout {
            topic: name.clone(),
            topic_id: topic_meta.topic_id,
            leaders,
        });
    }
    Ok(layouts)
}

async fn create_topic(
    conn: &Conn,
    name: &TopicName,
    partitions: i32,
    replication_factor: i16,
) -> anyhow::Result<()> {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name.clone())
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)])
        .with_timeout_ms(30_000);
    let response: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, &request).await?;
    for t in &response.topics {
        if t.error_code != 0 && t.error_code != TOPIC_ALREADY_EXISTS {
            bail!(
                "creating topic {}: error code {} {}",
                name.as_str(),
                t.error_code,
                t.error_message.as_ref().map_or("", |m| m.as_str())
            );
        }
    }
    Ok(())
}

/// Metadata for the topic once every partition has a leader (a new topic may need a moment).
async fn wait_for_leaders(conn: &Conn, name: &TopicName) -> anyhow::Result<MetadataResponse> {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name.clone())),
    ]));
    let mut last_error = String::new();
    for _ in 0..100 {
        let response: MetadataResponse = conn.call(ApiKey::Metadata, &request).await?;
        match response.topics.first() {
            Some(t) if t.error_code != 0 => last_error = format!("error code {}", t.error_code),
            Some(t) if t.partitions.is_empty() => last_error = "no partitions".into(),
            Some(t)
                if t.partitions
                    .iter()
                    .any(|p| p.error_code != 0 || p.leader_id.0 < 0) =>
            {
                last_error = "a partition has no leader".into()
            }
            Some(_) => return Ok(response),
            None => last_error = "topic missing from Metadata".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("topic {} not ready: {last_error}", name.as_str())
}

/// The earliest and the next (end) offset of each partition.
pub async fn offset_range(layout: &Layout) -> anyhow::Result<Vec<(i64, i64)>> {
    let mut ranges = Vec::new();
    for p in 0..layout.partitions() {
        let conn = &layout.leaders[p as usize];
        let earliest = list_offset(conn, &layout.topic, p, EARLIEST).await?;
        let latest = list_offset(conn, &layout.topic, p, LATEST).await?;
        ranges.push((earliest, latest));
    }
    Ok(ranges)
}

async fn list_offset(
    conn: &Conn,
    topic: &TopicName,
    partition: i32,
    at: i64,
) -> anyhow::Result<i64> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic.clone())
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(at)])]);
    let response: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, &request).await?;
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| anyhow!("ListOffsets answered no partition"))?;
    if p.error_code != 0 {
        bail!(
            "ListOffsets for partition {partition}: error code {}",
            p.error_code
        );
    }
    Ok(p.offset)
}

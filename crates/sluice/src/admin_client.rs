//! The one admin client of the CLI and the REST API: the cluster as a bootstrap broker
//! describes it, a connection to any broker by id (opened once), a key's coordinator (group,
//! transactional id, share-partition state), and partitions' offsets at their leaders.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use sluice_client::{ClientSecurity, Conn};

use crate::cli::{self, error_name, s, Target};

/// FindCoordinator's key types.
pub const KEY_TYPE_GROUP: i8 = 0;
pub const KEY_TYPE_TRANSACTION: i8 = 1;
pub const KEY_TYPE_SHARE: i8 = 2;

/// A cluster reached through one of its brokers.
pub struct AdminClient {
    /// The bootstrap broker.
    pub via: Arc<Conn>,
    /// Every broker and topic, as the bootstrap broker knew them.
    pub metadata: MetadataResponse,
    /// The brokers of `metadata`, connected to as needed.
    pub brokers: Brokers,
}

impl AdminClient {
    pub async fn connect(target: &Target) -> anyhow::Result<AdminClient> {
        let via = cli::connect(target).await?;
        let metadata: MetadataResponse = via
            .call(
                ApiKey::Metadata,
                &MetadataRequest::default().with_topics(None),
            )
            .await?;
        let brokers = Brokers::from(&metadata, target.security.clone());
        Ok(AdminClient {
            via,
            metadata,
            brokers,
        })
    }
}

/// The cluster's brokers by id (from a Metadata answer), connected to as needed.
pub struct Brokers {
    addresses: BTreeMap<i32, String>,
    security: Arc<ClientSecurity>,
    open: tokio::sync::Mutex<BTreeMap<i32, Arc<Conn>>>,
}

impl Brokers {
    pub fn from(metadata: &MetadataResponse, security: Arc<ClientSecurity>) -> Brokers {
        Brokers {
            security,
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
        let c = Conn::connect_with(addr, &self.security).await?;
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

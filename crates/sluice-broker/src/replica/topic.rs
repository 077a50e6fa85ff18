//! A topic as this broker hosts it: its settings and the replicas placed here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

use crate::config::TopicSettings;
use crate::error::{BrokerError, Result};
use crate::replica::partition::Partition;

pub struct Topic {
    pub name: Arc<str>,
    pub id: Uuid,
    pub settings: TopicSettings,
    /// How many partitions the topic has, cluster-wide.
    pub partition_count: i32,
    /// The replicas this broker hosts, by partition index (all of them on a single node).
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// The hosted replica of partition `index`, if this broker has one.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        self.partitions
            .binary_search_by_key(&index, |p| p.index)
            .ok()
            .map(|i| &self.partitions[i])
    }

    pub fn is_internal(&self) -> bool {
        is_internal_topic(&self.name)
    }
}

/// Topics the broker owns (Kafka's list): only the broker creates them, with its own settings,
/// and writes to them; clients may read them but not create, delete, alter, repartition or
/// truncate them.
pub const INTERNAL_TOPICS: &[&str] = &[OFFSETS_TOPIC, TXN_TOPIC, SHARE_STATE_TOPIC];

/// The group coordinator's topic: groups and their committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The transaction coordinator's topic.
pub const TXN_TOPIC: &str = "__transaction_state";
/// The share coordinator's topic: share-partitions' state.
pub const SHARE_STATE_TOPIC: &str = "__share_group_state";

pub fn is_internal_topic(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// The error a client's change to an internal topic gets (`what` names the change).
pub fn refuse_internal(name: &str, what: &str) -> Result<()> {
    if is_internal_topic(name) {
        return Err(BrokerError::InvalidRequest(format!(
            "{what} of internal topic {name} is prohibited: the broker manages it"
        )));
    }
    Ok(())
}

/// Kafka's rule: 1 to 249 characters of [a-zA-Z0-9._-], and not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<()> {
    sluice_cluster::validate::topic_name(name).map_err(BrokerError::InvalidTopic)
}

pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_eu-west").is_ok());
        for bad in ["", ".", "..", "a b", "naïve", "x/y", &"a".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }
}

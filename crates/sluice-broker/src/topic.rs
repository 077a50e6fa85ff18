//! Topics: their partitions and settings, and the metadata file that makes them durable.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::TopicSettings;
use crate::error::{BrokerError, Result};
use crate::partition::Partition;

pub struct Topic {
    pub name: Arc<str>,
    pub id: Uuid,
    pub settings: TopicSettings,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    pub fn is_internal(&self) -> bool {
        is_internal_topic(&self.name)
    }

    pub fn record(&self) -> TopicRecord {
        TopicRecord {
            name: self.name.to_string(),
            id: self.id,
            partitions: self.partitions.len() as i32,
            configs: self.settings.overrides.clone(),
        }
    }
}

/// Topics the broker owns (Kafka's list): only the broker creates them, with its own settings,
/// and writes to them; clients may read them but not create, delete, alter, repartition or
/// truncate them.
pub const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

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
    let legal = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if name.is_empty() || name.len() > 249 || !legal || name == "." || name == ".." {
        return Err(BrokerError::InvalidTopic(format!(
            "{name:?}: a topic name is 1 to 249 characters of ASCII letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(())
}

pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// What the metadata file keeps of a topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// The single-node metadata: cluster identity and topics, in `<data-dir>/meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataFile {
    pub cluster_id: String,
    pub node_id: i32,
    pub topics: Vec<TopicRecord>,
    /// Producer ids below this may have been handed out; allocation continues from here
    /// after a restart, so no id is ever given twice.
    #[serde(default)]
    pub producer_id_block_end: i64,
    /// Group configs by group id (GROUP config resources), overrides only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl MetadataFile {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("meta.json")
    }

    pub fn load(data_dir: &Path) -> std::io::Result<Option<MetadataFile>> {
        match fs::read(Self::path(data_dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("meta.json: {e}"))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes through a temporary file and a rename, both synced, so a crash leaves either
    /// the old or the new file.
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let path = Self::path(data_dir);
        let tmp = path.with_extension("json.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).expect("metadata serializes"))?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(data_dir)?.sync_all()
    }
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

//! The metadata image: an immutable snapshot of the cluster that handlers read. A change makes
//! a new image; nobody edits one in place.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a broker's listener is reached, as clients of that listener are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

/// A live broker, as it registered itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// The addresses of the broker's machine (its interfaces'): a connection from one of
    /// them, with no authentication configured, is this broker's (its requests to other
    /// brokers leave from whichever interface faces them, not always the advertised one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<std::net::IpAddr>,
    /// Every listener's advertised endpoint (empty in registrations made before listeners:
    /// `host` and `port` then serve every client).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// Which registration this is (etcd: the registration's create revision; 0 embedded):
    /// a broker that restarted registers anew, so the controller can tell it from the
    /// process it elected. Not part of what the broker registers.
    #[serde(skip)]
    pub incarnation: i64,
}

/// Where one partition lives and who leads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The brokers that hold a replica, the preferred leader first.
    pub replicas: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// Bumped by every change of this partition's replicas, leader or ISR (Kafka's
    /// partition epoch), so a write based on an old view can be refused.
    #[serde(default)]
    pub partition_epoch: i32,
    /// The leader's registration (`BrokerInfo::incarnation`) when it was elected (0:
    /// unknown). A leader that restarted since is elected again, with a new leader epoch,
    /// rather than carrying on as if it had not.
    #[serde(default)]
    pub leader_incarnation: i64,
}

impl PartitionMeta {
    /// A new partition on `replicas` (live brokers), led by the first.
    pub fn new(replicas: Vec<i32>) -> PartitionMeta {
        let leader = replicas.first().copied().unwrap_or(-1);
        // Every replica of a new partition holds its (empty) log: all are in sync, as in Kafka.
        let mut isr = replicas.clone();
        isr.sort_unstable();
        PartitionMeta {
            leader,
            leader_epoch: 0,
            isr,
            replicas,
            partition_epoch: 0,
            leader_incarnation: 0,
        }
    }
}

/// What a topic is, cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    /// Topic-level setting overrides by their Kafka names.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionMeta>,
    /// The coordinator's revision of this record (etcd's mod revision); a change based on it
    /// is refused if the record moved on meanwhile. Not stored.
    #[serde(skip)]
    pub revision: i64,
}

impl TopicMeta {
    pub fn partition(&self, index: i32) -> Option<&PartitionMeta> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    pub fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }
}

/// The cluster as one broker sees it at one revision.
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    pub cluster_id: String,
    /// The controller's node id, or -1 while there is none.
    pub controller_id: i32,
    /// Live brokers by node id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// Group configs (GROUP resources) by group id: overrides only.
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// SCRAM credentials by user name, then mechanism (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
    pub scram_users: BTreeMap<String, ScramUser>,
    /// The coordinator's revision this image reflects; images only move forward.
    pub revision: i64,
}

impl BrokerInfo {
    /// Where clients of `listener` reach this broker: that listener's endpoint, or the
    /// registered host and port for a registration without endpoints. None when the broker
    /// has no such listener (Kafka leaves it out of what that listener's clients are told).
    pub fn endpoint(&self, listener: &str) -> Option<(&str, u16)> {
        if self.endpoints.is_empty() {
            return Some((self.host.as_str(), self.port));
        }
        self.endpoints
            .iter()
            .find(|e| e.listener == listener)
            .map(|e| (e.host.as_str(), e.port))
    }
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicMeta>> {
        self.topics.values().find(|t| t.id == id)
    }

    /// Whether `node` leads `p` now: it is the elected leader and has not restarted since it
    /// was elected (then it waits for the controller to elect it again, in a new epoch). A
    /// broker missing from the image (etcd unreachable) keeps what it leads.
    pub fn leads(&self, p: &PartitionMeta, node: i32) -> bool {
        p.leader == node
            && (p.leader_incarnation == 0
                || self
                    .brokers
                    .get(&node)
                    .is_none_or(|b| b.incarnation == 0 || b.incarnation == p.leader_incarnation))
    }

    /// A new partition on `replicas` (live brokers), with its leader's registration noted.
    pub fn new_partition(&self, replicas: Vec<i32>) -> PartitionMeta {
        let mut p = PartitionMeta::new(replicas);
        p.leader_incarnation = self.brokers.get(&p.leader).map_or(0, |b| b.incarnation);
        p
    }

    pub fn broker(&self, node_id: i32) -> Option<&BrokerInfo> {
        self.brokers.get(&node_id)
    }

    /// The partition's leader if it is alive (an offline partition has none).
    pub fn live_leader(&self, topic: &str, partition: i32) -> Option<&BrokerInfo> {
        let p = self.topic(topic)?.partition(partition)?;
        self.brokers.get(&p.leader)
    }

    /// Partitions led by each live broker, and the offline ones (leader not alive).
    pub fn leader_counts(&self) -> (BTreeMap<i32, usize>, usize) {
        let mut counts: BTreeMap<i32, usize> = self.brokers.keys().map(|&id| (id, 0)).collect();
        let mut offline = 0;
        for p in self.topics.values().flat_map(|t| &t.partitions) {
            match counts.get_mut(&p.leader) {
                Some(n) => *n += 1,
                None => offline += 1,
            }
        }
        (counts, offline)
    }

    /// This image with `change` applied (the coordinator's revision is set by the caller).
    pub fn with_change(&self, change: &MetadataChange) -> MetadataImage {
        let mut next = self.clone();
        match change {
            MetadataChange::CreateTopic(t) | MetadataChange::UpdateTopic(t) => {
                next.topics.insert(t.name.clone(), Arc::new(t.clone()));
            }
            MetadataChange::DeleteTopic(name) => {
                next.topics.remove(name);
            }
            MetadataChange::SetGroupConfigs(group, configs) => {
                if configs.is_empty() {
                    next.group_configs.remove(group);
                } else {
                    next.group_configs.insert(group.clone(), configs.clone());
                }
            }
            MetadataChange::SetScramUser(user, credentials) => {
                if credentials.is_empty() {
                    next.scram_users.remove(user);
                } else {
                    next.scram_users.insert(user.clone(), credentials.clone());
                }
            }
        }
        next
    }
}

/// A user's SCRAM credentials by mechanism name.
pub type ScramUser = BTreeMap<String, ScramCredential>;

/// What the broker keeps of a SCRAM password (RFC 5802): never the password, only the salt,
/// the iteration count and the keys derived from them (base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: String,
    pub stored_key: String,
    pub server_key: String,
    pub iterations: u32,
}

/// A change only the controller makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataChange {
    /// A new topic: refused if one of that name exists.
    CreateTopic(TopicMeta),
    /// A topic's new settings or partitions: refused if the topic changed since `revision`.
    UpdateTopic(TopicMeta),
    DeleteTopic(String),
    /// A group's config overrides (empty: none left).
    SetGroupConfigs(String, BTreeMap<String, String>),
    /// A user's SCRAM credentials (empty: the user is gone).
    SetScramUser(String, ScramUser),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32) -> BrokerInfo {
        BrokerInfo {
            node_id: id,
            host: "localhost".into(),
            port: 9000 + id as u16,
            rack: None,
            addresses: Vec::new(),
            endpoints: Vec::new(),
            incarnation: 0,
        }
    }

    #[test]
    fn offline_partitions_are_those_whose_leader_is_gone() {
        let mut image = MetadataImage {
            brokers: [(1, broker(1)), (2, broker(2))].into(),
            ..Default::default()
        };
        let topic = TopicMeta {
            name: "t".into(),
            id: Uuid::new_v4(),
            configs: BTreeMap::new(),
            partitions: vec![
                PartitionMeta::new(vec![1]),
                PartitionMeta::new(vec![3]),
                PartitionMeta::new(vec![1]),
            ],
            revision: 0,
        };
        image = image.with_change(&MetadataChange::CreateTopic(topic));
        let (counts, offline) = image.leader_counts();
        assert_eq!(counts, [(1, 2), (2, 0)].into());
        assert_eq!(offline, 1);
        assert_eq!(image.live_leader("t", 0).map(|b| b.node_id), Some(1));
        assert!(image.live_leader("t", 1).is_none());
        let image = image.with_change(&MetadataChange::DeleteTopic("t".into()));
        assert!(image.topic("t").is_none());
    }
}

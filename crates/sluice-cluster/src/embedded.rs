//! The embedded coordinator: a single node that is its own controller, with its metadata in
//! `<data-dir>/meta.json` (written through a temporary file and a rename, both synced).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::coordinator::{Coordinator, CoordinatorError, CoordinatorStatus};
use crate::image::{BrokerInfo, MetadataChange, MetadataImage, PartitionMeta, TopicMeta};

/// What the metadata file keeps of a topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// A data directory's identity (cluster and node), and for a single node its metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataFile {
    pub cluster_id: String,
    pub node_id: i32,
    #[serde(default)]
    pub topics: Vec<TopicRecord>,
    /// Producer ids below this may have been handed out; allocation continues from here
    /// after a restart, so no id is ever given twice.
    #[serde(default)]
    pub producer_id_block_end: i64,
    /// Group configs by group id (GROUP config resources), overrides only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// SCRAM credentials by user (salted and hashed, never passwords).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scram_users: BTreeMap<String, crate::image::ScramUser>,
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
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        f.write_all(&text)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(data_dir)?.sync_all()
    }

    /// The directory's identity, created on first use; refused if it belongs to another node
    /// (or, when `cluster_id` is given, another cluster).
    pub fn identity(
        data_dir: &Path,
        node_id: i32,
        cluster_id: Option<&str>,
    ) -> Result<MetadataFile, String> {
        let found = Self::load(data_dir).map_err(|e| e.to_string())?;
        if let Some(meta) = found {
            if meta.node_id != node_id {
                return Err(format!(
                    "data directory {} belongs to node {}, not node {node_id}",
                    data_dir.display(),
                    meta.node_id
                ));
            }
            if let Some(cluster) = cluster_id {
                if meta.cluster_id != cluster {
                    return Err(format!(
                        "data directory {} belongs to cluster {}, not cluster {cluster}",
                        data_dir.display(),
                        meta.cluster_id
                    ));
                }
            }
            return Ok(meta);
        }
        let meta = MetadataFile {
            cluster_id: cluster_id.map(String::from).unwrap_or_else(new_cluster_id),
            node_id,
            topics: Vec::new(),
            producer_id_block_end: 0,
            group_configs: BTreeMap::new(),
            scram_users: BTreeMap::new(),
        };
        meta.save(data_dir).map_err(|e| e.to_string())?;
        Ok(meta)
    }
}

/// A new cluster id: 22 characters, as Kafka's (base64 of a UUID there, hex here).
pub fn new_cluster_id() -> String {
    Uuid::new_v4().simple().to_string()[..22].to_string()
}

pub struct EmbeddedCoordinator {
    data_dir: PathBuf,
    node_id: i32,
    /// The file's content; changed under this lock, which also orders the writes.
    file: Mutex<MetadataFile>,
    image: watch::Sender<Arc<MetadataImage>>,
}

impl EmbeddedCoordinator {
    /// Opens (or starts) the metadata of the single node `me` in `data_dir`.
    pub fn open(data_dir: &Path, me: BrokerInfo) -> Result<EmbeddedCoordinator, String> {
        fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
        let file = MetadataFile::identity(data_dir, me.node_id, None)?;
        let image = image_of(&file, &me);
        Ok(EmbeddedCoordinator {
            data_dir: data_dir.to_path_buf(),
            node_id: me.node_id,
            file: Mutex::new(file),
            image: watch::channel(Arc::new(image)).0,
        })
    }

    fn apply(&self, changes: &[MetadataChange]) -> Result<Arc<MetadataImage>, CoordinatorError> {
        let mut file = self.file.lock();
        let mut image = (**self.image.borrow()).clone();
        let revision = image.revision + 1;
        for change in changes {
            check(&image, change)?;
            image = image.with_change(change);
            if let MetadataChange::CreateTopic(t) | MetadataChange::UpdateTopic(t) = change {
                let mut t = t.clone();
                t.revision = revision;
                image.topics.insert(t.name.clone(), Arc::new(t));
            }
        }
        image.revision = revision;
        let mut next = file.clone();
        next.topics = image
            .topics
            .values()
            .map(|t| TopicRecord {
                name: t.name.clone(),
                id: t.id,
                partitions: t.partition_count(),
                configs: t.configs.clone(),
            })
            .collect();
        next.group_configs = image.group_configs.clone();
        next.scram_users = image.scram_users.clone();
        next.save(&self.data_dir)
            .map_err(|e| CoordinatorError::Storage(format!("writing meta.json: {e}")))?;
        *file = next;
        let image = Arc::new(image);
        self.image.send_replace(image.clone());
        Ok(image)
    }
}

/// Refuses a create of an existing topic and an update of a topic that moved on.
fn check(image: &MetadataImage, change: &MetadataChange) -> Result<(), CoordinatorError> {
    let current = |name: &str| image.topics.get(name);
    match change {
        MetadataChange::CreateTopic(t) if current(&t.name).is_some() => Err(
            CoordinatorError::Conflict(format!("topic {} already exists", t.name)),
        ),
        MetadataChange::UpdateTopic(t)
            if current(&t.name).is_none_or(|cur| cur.revision != t.revision) =>
        {
            Err(CoordinatorError::Conflict(format!(
                "topic {} changed meanwhile",
                t.name
            )))
        }
        _ => Ok(()),
    }
}

/// The single node's image: it leads every partition.
fn image_of(file: &MetadataFile, me: &BrokerInfo) -> MetadataImage {
    let topics = file
        .topics
        .iter()
        .map(|r| {
            let meta = TopicMeta {
                name: r.name.clone(),
                id: r.id,
                configs: r.configs.clone(),
                partitions: (0..r.partitions)
                    .map(|_| PartitionMeta::new(vec![me.node_id]))
                    .collect(),
                revision: 0,
            };
            (r.name.clone(), Arc::new(meta))
        })
        .collect();
    MetadataImage {
        cluster_id: file.cluster_id.clone(),
        controller_id: me.node_id,
        brokers: [(me.node_id, me.clone())].into(),
        topics,
        group_configs: file.group_configs.clone(),
        scram_users: file.scram_users.clone(),
        revision: 1,
    }
}

impl Coordinator for EmbeddedCoordinator {
    fn node_id(&self) -> i32 {
        self.node_id
    }

    fn watch(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.subscribe()
    }

    fn is_controller(&self) -> bool {
        true
    }

    fn commit(
        &self,
        changes: Vec<MetadataChange>,
    ) -> BoxFuture<'_, Result<Arc<MetadataImage>, CoordinatorError>> {
        let result = self.apply(&changes);
        Box::pin(std::future::ready(result))
    }

    fn allocate_producer_ids(&self, count: i64) -> BoxFuture<'_, Result<i64, CoordinatorError>> {
        let result = (|| {
            let mut file = self.file.lock();
            let start = file.producer_id_block_end;
            let mut next = file.clone();
            next.producer_id_block_end = start + count;
            next.save(&self.data_dir)
                .map_err(|e| CoordinatorError::Storage(format!("writing meta.json: {e}")))?;
            *file = next;
            Ok(start)
        })();
        Box::pin(std::future::ready(result))
    }

    fn status(&self) -> CoordinatorStatus {
        CoordinatorStatus {
            kind: "embedded",
            connected: true,
            last_error: None,
            skipped_records: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> BrokerInfo {
        BrokerInfo {
            node_id: 1,
            host: "localhost".into(),
            port: 9092,
            rack: None,
            addresses: Vec::new(),
            endpoints: Vec::new(),
            incarnation: 0,
        }
    }

    fn topic(name: &str, partitions: usize) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            id: Uuid::new_v4(),
            configs: BTreeMap::new(),
            partitions: vec![PartitionMeta::new(vec![1]); partitions],
            revision: 0,
        }
    }

    #[test]
    fn changes_survive_a_reopen_and_ids_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let c = EmbeddedCoordinator::open(dir.path(), me()).unwrap();
        let cluster = c.image().cluster_id.clone();
        let block = futures::executor::block_on(c.allocate_producer_ids(1000)).unwrap();
        futures::executor::block_on(c.commit(vec![MetadataChange::CreateTopic(topic("a", 3))]))
            .unwrap();
        let again =
            futures::executor::block_on(c.commit(vec![MetadataChange::CreateTopic(topic("a", 1))]));
        assert!(matches!(again, Err(CoordinatorError::Conflict(_))));
        drop(c);
        let c = EmbeddedCoordinator::open(dir.path(), me()).unwrap();
        let image = c.image();
        assert_eq!(image.cluster_id, cluster);
        assert_eq!(image.topic("a").unwrap().partition_count(), 3);
        assert_eq!(image.controller_id, 1);
        let next = futures::executor::block_on(c.allocate_producer_ids(1000)).unwrap();
        assert!(next >= block + 1000);
    }

    #[test]
    fn another_nodes_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedCoordinator::open(dir.path(), me()).unwrap());
        let other = BrokerInfo { node_id: 2, ..me() };
        let err = EmbeddedCoordinator::open(dir.path(), other).err().unwrap();
        assert!(err.contains("belongs to node 1"), "{err}");
    }
}

//! Keeping the hosted replicas in step with the metadata image: opening (creating) the
//! partitions placed here, reconfiguring changed topics, deleting the logs of topics gone.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;

use sluice_cluster::{MetadataImage, TopicMeta};
use sluice_log::Log;
use tracing::{info, warn};

use super::partition::Partition;
use super::topic::{partition_dir, Topic};
use super::ReplicaManager;
use crate::config::TopicSettings;
use crate::error::Result;

/// Replicas created ahead of the commit that places them (by the controller, so that a create
/// that cannot make its files changes nothing); the apply that follows takes them over.
pub(crate) type Prepared = HashMap<(Arc<str>, i32), Arc<Partition>>;

impl ReplicaManager {
    pub(crate) fn apply_image_locked(&self, image: Arc<MetadataImage>, prepared: &mut Prepared) {
        if image.revision < self.image.read().revision {
            return;
        }
        let me = self.config.node_id;
        let current = self.topics.read().clone();
        // Gone topics first: a topic deleted and created again reuses its directories.
        for topic in current.values() {
            let kept = image.topic(&topic.name).is_some_and(|t| t.id == topic.id);
            if !kept {
                for p in &topic.partitions {
                    if let Err(e) = p.log().delete() {
                        warn!(topic = %topic.name, partition = p.index, error = %e, "could not delete a partition's log");
                    }
                }
                info!(topic = %topic.name, "deleted topic's replicas");
            }
        }
        let mut next = HashMap::with_capacity(image.topics.len());
        for meta in image.topics.values() {
            // The coordinator checked the names; a path is never built from one unchecked.
            if let Err(e) = crate::replica::topic::validate_topic_name(&meta.name) {
                warn!(error = %e, "not hosting a topic with an invalid name");
                continue;
            }
            let existing = current.get(meta.name.as_str()).filter(|t| t.id == meta.id);
            let topic = self.hosted_topic(&image, meta, existing.map(|t| &**t), prepared, me);
            next.insert(topic.name.clone(), Arc::new(topic));
        }
        prepared.clear();
        *self.topics.write() = next;
        *self.image.write() = image;
    }

    /// The replicas of `meta` this broker hosts: kept, taken from `prepared`, or opened.
    fn hosted_topic(
        &self,
        image: &MetadataImage,
        meta: &TopicMeta,
        existing: Option<&Topic>,
        prepared: &mut Prepared,
        me: i32,
    ) -> Topic {
        let name: Arc<str> = existing
            .map(|t| t.name.clone())
            .unwrap_or_else(|| Arc::from(meta.name.as_str()));
        let settings = TopicSettings {
            overrides: meta.configs.clone(),
        };
        let reconfigure = existing.is_some_and(|t| t.settings.overrides != meta.configs);
        let min_insync = settings.min_insync_replicas(&self.config);
        let now = crate::now_ms();
        let mut partitions = Vec::new();
        for (index, placement) in meta.partitions.iter().enumerate() {
            let index = index as i32;
            if !placement.replicas.contains(&me) {
                continue;
            }
            let hosted = existing
                .and_then(|t| t.partition(index).cloned())
                .or_else(|| prepared.remove(&(name.clone(), index)))
                .map(Ok)
                .unwrap_or_else(|| self.open_partition(&name, index, &settings));
            match hosted {
                Ok(p) => {
                    // A leader that restarted since it was elected leads again only once
                    // re-elected: until then it is nobody's replica.
                    let leader = if placement.leader == me && !image.leads(placement, me) {
                        -1
                    } else {
                        placement.leader
                    };
                    p.set_placement(
                        &crate::replica::partition::Placement {
                            me,
                            leader,
                            leader_epoch: placement.leader_epoch,
                            partition_epoch: placement.partition_epoch,
                            replicas: &placement.replicas,
                            isr: &placement.isr,
                        },
                        now,
                    );
                    p.set_min_insync_replicas(min_insync);
                    if reconfigure {
                        p.reconfigure(
                            settings.log_config(&self.config),
                            settings.flush_policy(&self.config),
                        );
                    }
                    partitions.push(p);
                }
                // Not hosted: clients are told NOT_LEADER_OR_FOLLOWER and the log says why.
                Err(e) => {
                    warn!(topic = %name, partition = index, error = %e, "could not open a partition placed on this broker")
                }
            }
        }
        Topic {
            name,
            id: meta.id,
            settings,
            partition_count: meta.partition_count(),
            partitions,
        }
    }

    /// Creates the logs of new partitions `indexes` of a topic. If one fails, the
    /// directories made so far are removed: a failed create leaves nothing behind.
    pub(crate) fn create_partitions_files(
        &self,
        topic: &Arc<str>,
        indexes: &[i32],
        settings: &TopicSettings,
    ) -> Result<Vec<Arc<Partition>>> {
        let mut created = Vec::with_capacity(indexes.len());
        for (i, &index) in indexes.iter().enumerate() {
            match self.open_partition(topic, index, settings) {
                Ok(p) => created.push(p),
                Err(e) => {
                    drop(created);
                    for &index in &indexes[..=i] {
                        let _ =
                            fs::remove_dir_all(partition_dir(&self.config.data_dir, topic, index));
                    }
                    warn!(%topic, partition = index, error = %e, "could not create a partition; removed the new ones");
                    return Err(e);
                }
            }
        }
        Ok(created)
    }

    pub(crate) fn open_partition(
        &self,
        topic: &Arc<str>,
        index: i32,
        settings: &TopicSettings,
    ) -> Result<Arc<Partition>> {
        let dir = partition_dir(&self.config.data_dir, topic, index);
        let log = Log::open(&dir, settings.log_config(&self.config), crate::now_ms())?;
        Ok(Arc::new(Partition::new(
            topic.clone(),
            index,
            log,
            settings.flush_policy(&self.config),
        )))
    }

    /// Deletes partition directories left by a topic deletion that a crash interrupted.
    pub(crate) fn remove_orphan_dirs(&self) {
        let topics = self.topics.read();
        let Ok(entries) = fs::read_dir(&self.config.data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some((topic, partition)) = name.rsplit_once('-') else {
                continue;
            };
            let Ok(partition) = partition.parse::<i32>() else {
                continue;
            };
            let known = topics
                .get(topic)
                .is_some_and(|t| t.partition(partition).is_some());
            if !known && entry.path().is_dir() {
                warn!(dir = %name, "removing the directory of a deleted topic");
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

//! Topic administration: create, delete, add partitions, describe and alter settings.
//! Every change is written to the metadata file before it is visible.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_cluster::{placement, Coordinator, MetadataChange, PartitionMeta, TopicMeta};
use tracing::{info, warn};
use uuid::Uuid;

use crate::config::{
    topic_config_def, validate_value, BrokerConfig, ConfigSource, ConfigType, TopicSettings,
    TOPIC_CONFIGS,
};
use crate::error::{BrokerError, Result};
use crate::replica::topic::{
    is_internal_topic, refuse_internal, validate_topic_name, Topic, OFFSETS_TOPIC,
    SHARE_STATE_TOPIC, TXN_TOPIC,
};
use crate::replica::ReplicaManager;

/// Largest partition count one request may ask for; bounds what a request can allocate.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = sluice_cluster::validate::MAX_PARTITIONS as i32;

/// An IncrementalAlterConfigs operation.
#[derive(Debug, Clone)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

/// One described setting.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
    pub kind: ConfigType,
    pub doc: &'static str,
}

/// Topic administration, the controller's work: metadata changes committed through the
/// cluster coordinator, then applied to this broker's replicas (`Broker::admin`).
pub struct TopicAdmin {
    pub(crate) config: Arc<BrokerConfig>,
    /// Publishes the metadata image and applies the controller's changes (embedded or etcd).
    pub(crate) coordinator: Arc<dyn Coordinator>,
    pub(crate) replicas: Arc<ReplicaManager>,
    /// Serialises the controller's metadata changes (topic admin, group configs).
    pub(crate) lock: Mutex<()>,
}

/// Partitions of `__share_group_state` (Kafka's `share.coordinator.state.topic.num.partitions`).
pub const SHARE_STATE_PARTITIONS: i32 = 50;

/// How the broker creates one of its internal topics.
struct InternalTopicSettings {
    partitions: i32,
    replication_factor: i16,
    /// Configs besides compaction.
    configs: &'static [(&'static str, &'static str)],
}

/// The settings of the internal topics the broker creates on first use, from its config.
fn internal_topic_settings(name: &str, config: &BrokerConfig) -> Option<InternalTopicSettings> {
    let (partitions, replication_factor, configs): (i32, i16, &'static [_]) = match name {
        OFFSETS_TOPIC => (
            config.offsets_topic_num_partitions(),
            config.offsets_topic_replication_factor(),
            &[
                ("segment.bytes", "104857600"),
                ("max.message.bytes", "104857600"),
            ],
        ),
        TXN_TOPIC => (
            config.transaction_state_num_partitions(),
            config.transaction_state_replication_factor(),
            &[("segment.bytes", "104857600"), ("min.insync.replicas", "1")],
        ),
        SHARE_STATE_TOPIC => (
            SHARE_STATE_PARTITIONS,
            config.share_state_topic_replication_factor(),
            &[("segment.bytes", "104857600")],
        ),
        _ => return None,
    };
    Some(InternalTopicSettings {
        partitions,
        replication_factor,
        configs,
    })
}

/// The settings checks records read from the coordination service must pass.
pub fn metadata_config_checks() -> sluice_cluster::validate::ConfigChecks {
    sluice_cluster::validate::ConfigChecks {
        topic: |c| validate_topic_configs(c).map_err(|e| e.to_string()),
        group: crate::group::configs::validate_group_configs,
    }
}

fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<()> {
    for (name, value) in configs {
        let def = topic_config_def(name)
            .ok_or_else(|| BrokerError::InvalidConfig(format!("unknown topic config {name:?}")))?;
        validate_value(def.kind, def.allowed, name, value)
            .and_then(|_| def.range.check(name, value))
            .map_err(BrokerError::InvalidConfig)?;
    }
    Ok(())
}

impl TopicAdmin {
    /// Creates a topic for a client. `partitions` and `replication_factor` of -1 take the
    /// broker defaults. Internal topics are refused: the broker creates them itself.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>> {
        refuse_internal(name, "Creation")?;
        self.create_topic_as_broker(name, partitions, replication_factor, configs, validate_only)
    }

    /// Creates a topic for a client with the replicas of each partition given.
    pub fn create_topic_assigned(
        &self,
        name: &str,
        assignment: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>> {
        refuse_internal(name, "Creation")?;
        self.create_topic_placed(name, -1, -1, Some(assignment), configs, validate_only)
    }

    /// A coordinator's internal topic (`__consumer_offsets`, `__transaction_state`,
    /// `__share_group_state`), created on first use (compacted, with the broker's settings):
    /// COORDINATOR_NOT_AVAILABLE while another broker must create it (the Kafka front end
    /// asks the controller) or it is being created.
    pub(crate) fn internal_topic(&self, name: &str) -> Result<Arc<Topic>> {
        if let Some(t) = self.replicas.topic(name) {
            return Ok(t);
        }
        let settings = internal_topic_settings(name, &self.config)
            .ok_or_else(|| BrokerError::InvalidTopic(format!("{name} is not an internal topic")))?;
        let mut all = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        all.extend(
            settings
                .configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        match self.create_topic_as_broker(name, settings.partitions, -1, all, false) {
            Ok(t) => Ok(t),
            Err(BrokerError::TopicAlreadyExists(_)) => self
                .replicas
                .topic(name)
                .ok_or(BrokerError::CoordinatorNotAvailable),
            Err(BrokerError::NotController) => Err(BrokerError::CoordinatorNotAvailable),
            Err(e) => Err(e),
        }
    }

    /// Creates any topic, internal ones included (the broker's own path).
    pub(crate) fn create_topic_as_broker(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>> {
        self.create_topic_placed(
            name,
            partitions,
            replication_factor,
            None,
            configs,
            validate_only,
        )
    }

    /// Creates a topic, with the replicas of each partition given (`assignment`) or placed
    /// over the live brokers. The controller's work: others answer NOT_CONTROLLER. The
    /// replicas placed here are made before the metadata is committed, so a create that
    /// cannot make its files changes nothing.
    fn create_topic_placed(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        assignment: Option<Vec<Vec<i32>>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>> {
        validate_topic_name(name)?;
        let partitions = match (&assignment, partitions) {
            (Some(a), -1) => a.len() as i32,
            (_, -1) => self.config.num_partitions(),
            (_, n) => n,
        };
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
            return Err(BrokerError::InvalidPartitions(format!(
                "{partitions}: a topic has 1 to {MAX_PARTITIONS_PER_TOPIC} partitions"
            )));
        }
        validate_topic_configs(&configs)?;
        let _admin = self.lock.lock();
        if !self.coordinator.is_controller() {
            return Err(BrokerError::NotController);
        }
        let image = self.coordinator.image();
        if image.topic(name).is_some() {
            return Err(BrokerError::TopicAlreadyExists(name.to_string()));
        }
        if image
            .topics
            .keys()
            .any(|t| t.replace('.', "_") == name.replace('.', "_"))
        {
            return Err(BrokerError::InvalidTopic(format!(
                "{name:?} collides with an existing topic ('.' and '_' are interchangeable in metric names)"
            )));
        }
        let placed = match assignment {
            Some(a) => {
                placement::check_assignment(&image, &a)
                    .map_err(BrokerError::InvalidReplicaAssignment)?;
                if a.len() as i32 != partitions {
                    return Err(BrokerError::InvalidReplicaAssignment(format!(
                        "{} partitions assigned for {partitions} partitions",
                        a.len()
                    )));
                }
                a
            }
            None => {
                let rf = match replication_factor {
                    -1 => internal_topic_settings(name, &self.config)
                        .map_or(self.config.default_replication_factor(), |s| {
                            s.replication_factor
                        }),
                    n => n,
                };
                if rf < 1 {
                    return Err(BrokerError::InvalidReplicationFactor(format!(
                        "{rf}: the replication factor is at least 1"
                    )));
                }
                placement::place(&image, 0, partitions, rf as usize)
                    .map_err(BrokerError::InvalidReplicationFactor)?
            }
        };
        let mine = self.placed_here(&placed, 0);
        self.check_partition_budget(mine.len() as i32)?;
        let meta = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            configs,
            partitions: placed.into_iter().map(|r| image.new_partition(r)).collect(),
            revision: 0,
        };
        if validate_only {
            return Ok(Arc::new(Topic {
                name: Arc::from(name),
                id: meta.id,
                settings: TopicSettings {
                    overrides: meta.configs,
                },
                partition_count: partitions,
                partitions: Vec::new(),
            }));
        }
        self.commit_with_replicas(&mine, MetadataChange::CreateTopic(meta))?;
        info!(topic = name, partitions, "created topic");
        self.replicas
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)
    }

    /// The indexes of new partitions `first..` (their replica lists in `placed`) that have a
    /// replica on this broker.
    fn placed_here(&self, placed: &[Vec<i32>], first: i32) -> Vec<i32> {
        let me = self.config.node_id;
        (first..)
            .zip(placed)
            .filter(|(_, replicas)| replicas.contains(&me))
            .map(|(index, _)| index)
            .collect()
    }

    /// Makes this broker's new replicas `indexes` of the topic that `change` creates or grows,
    /// commits `change` and applies the image that has it; if the commit fails, the new
    /// replicas are removed.
    fn commit_with_replicas(&self, indexes: &[i32], change: MetadataChange) -> Result<()> {
        let (MetadataChange::CreateTopic(meta) | MetadataChange::UpdateTopic(meta)) = &change
        else {
            return self.commit_change(change);
        };
        let topic: Arc<str> = Arc::from(meta.name.as_str());
        let settings = TopicSettings {
            overrides: meta.configs.clone(),
        };
        let mut prepared = self.replicas.apply.lock();
        let made = self
            .replicas
            .create_partitions_files(&topic, indexes, &settings)?;
        for p in &made {
            prepared.insert((topic.clone(), p.index), p.clone());
        }
        match crate::wait_for(self.coordinator.commit(vec![change])) {
            Ok(image) => {
                self.replicas.apply_image_locked(image, &mut prepared);
                drop(prepared);
                if let Err(e) = self.replicas.tell_leadership_followers() {
                    warn!(error = %e, "following the internal partitions' leadership");
                }
                Ok(())
            }
            Err(e) => {
                prepared.clear();
                for p in &made {
                    let _ = p.log().delete();
                }
                Err(e.into())
            }
        }
    }

    /// Commits a change that makes no replicas here, and applies the image that has it.
    pub(crate) fn commit_change(&self, change: MetadataChange) -> Result<()> {
        if !self.coordinator.is_controller() {
            return Err(BrokerError::NotController);
        }
        let image = crate::wait_for(self.coordinator.commit(vec![change]))?;
        if let Err(e) = self.replicas.apply_image(image) {
            warn!(error = %e, "following the offsets partitions' leadership");
        }
        Ok(())
    }

    /// The topic, created with the broker defaults if it does not exist and auto-creation is on.
    pub fn topic_or_auto_create(&self, name: &str) -> Result<Arc<Topic>> {
        if let Some(t) = self.replicas.topic(name) {
            return Ok(t);
        }
        if name == OFFSETS_TOPIC {
            return self.internal_topic(name); // with the broker's settings, never the defaults
        }
        if is_internal_topic(name) || !self.config.auto_create_topics() {
            return Err(BrokerError::UnknownTopicOrPartition);
        }
        match self.create_topic(name, -1, -1, BTreeMap::new(), false) {
            Ok(t) => Ok(t),
            Err(BrokerError::TopicAlreadyExists(_)) => self
                .replicas
                .topic(name)
                .ok_or(BrokerError::UnknownTopicOrPartition),
            Err(e) => Err(e),
        }
    }

    pub fn delete_topic(&self, name: &str) -> Result<Uuid> {
        if is_internal_topic(name) {
            // What Kafka answers for an internal topic.
            return Err(BrokerError::TopicAuthorizationFailed(format!(
                "internal topic {name} cannot be deleted"
            )));
        }
        let _admin = self.lock.lock();
        let id = self
            .coordinator
            .image()
            .topic(name)
            .map(|t| t.id)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        self.commit_change(MetadataChange::DeleteTopic(name.to_string()))?;
        info!(topic = name, "deleted topic");
        Ok(id)
    }

    /// Grows a topic to `count` partitions (partitions are never removed), placing the new
    /// ones as a create would, with as many replicas as the topic's first partition.
    /// `assignment`, if given, names the replicas of each new partition (as many as the
    /// topic's partitions have).
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignment: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<()> {
        // A group's offsets partition is its id's hash modulo the count: the count never
        // changes under existing groups.
        refuse_internal(name, "Adding partitions")?;
        let _admin = self.lock.lock();
        if !self.coordinator.is_controller() {
            return Err(BrokerError::NotController);
        }
        let image = self.coordinator.image();
        let topic = image
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        let current = topic.partition_count();
        if count <= current {
            return Err(BrokerError::InvalidPartitions(format!(
                "topic currently has {current} partitions, {count} would not be an increase"
            )));
        }
        if count > MAX_PARTITIONS_PER_TOPIC {
            return Err(BrokerError::InvalidPartitions(format!(
                "at most {MAX_PARTITIONS_PER_TOPIC} partitions"
            )));
        }
        let rf = topic.partitions.first().map_or(1, |p| p.replicas.len());
        let placed = match assignment {
            Some(a) => {
                placement::check_assignment(&image, &a)
                    .map_err(BrokerError::InvalidReplicaAssignment)?;
                if a.len() as i32 != count - current {
                    return Err(BrokerError::InvalidReplicaAssignment(format!(
                        "{} assignments for {} new partitions",
                        a.len(),
                        count - current
                    )));
                }
                if a[0].len() != rf {
                    return Err(BrokerError::InvalidReplicaAssignment(format!(
                        "{} replicas per new partition where the topic has {rf}",
                        a[0].len()
                    )));
                }
                a
            }
            None => placement::place(&image, current, count - current, rf)
                .map_err(BrokerError::InvalidReplicationFactor)?,
        };
        if validate_only {
            return Ok(());
        }
        let mine = self.placed_here(&placed, current);
        self.check_partition_budget(mine.len() as i32)?;
        let mut next = (**topic).clone();
        next.partitions
            .extend(placed.into_iter().map(|r| image.new_partition(r)));
        self.commit_with_replicas(&mine, MetadataChange::UpdateTopic(next))?;
        info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// A partition leader's change of its ISR (Kafka's AlterPartition), applied by the
    /// controller if `leader` still leads the partition in `leader_epoch` and the change is
    /// based on the current `partition_epoch`; the new ISR holds the leader and only live
    /// replicas. Answers the partition as it now is.
    pub fn alter_isr(
        &self,
        topic_id: Uuid,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> Result<PartitionMeta> {
        let _admin = self.lock.lock();
        if !self.coordinator.is_controller() {
            return Err(BrokerError::NotController);
        }
        let image = self.coordinator.image();
        let topic = image
            .topic_by_id(topic_id)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        let current = topic
            .partition(partition)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if leader_epoch < current.leader_epoch {
            return Err(BrokerError::FencedLeaderEpoch(leader_epoch));
        }
        if current.leader != leader || leader_epoch > current.leader_epoch {
            return Err(BrokerError::NotLeaderOrFollower {
                leader: current.leader,
                leader_epoch: current.leader_epoch,
            });
        }
        if partition_epoch != current.partition_epoch {
            return Err(BrokerError::InvalidUpdateVersion(format!(
                "partition epoch {partition_epoch} is not the current {}",
                current.partition_epoch
            )));
        }
        let mut isr = new_isr;
        isr.sort_unstable();
        isr.dedup();
        if !isr.contains(&leader) || isr.iter().any(|r| !current.replicas.contains(r)) {
            return Err(BrokerError::InvalidRequest(format!(
                "an ISR holds the leader and only the partition's replicas {:?}",
                current.replicas
            )));
        }
        if let Some(gone) = isr.iter().find(|r| !image.brokers.contains_key(r)) {
            return Err(BrokerError::IneligibleReplica(format!(
                "broker {gone} is not alive"
            )));
        }
        let mut next = (**topic).clone();
        let changed = &mut next.partitions[partition as usize];
        changed.isr = isr;
        changed.partition_epoch += 1;
        let answer = changed.clone();
        let name = next.name.clone();
        self.commit_change(MetadataChange::UpdateTopic(next))?;
        info!(topic = %name, partition, isr = ?answer.isr, partition_epoch = answer.partition_epoch, "ISR changed");
        Ok(answer)
    }

    /// Refuses `more` partitions beyond `max.broker.partitions` (POLICY_VIOLATION).
    fn check_partition_budget(&self, more: i32) -> Result<()> {
        let hosted: usize = self
            .replicas
            .topics()
            .iter()
            .map(|t| t.partitions.len())
            .sum();
        let max = self.config.max_broker_partitions();
        if hosted + more.max(0) as usize > max {
            return Err(BrokerError::PolicyViolation(format!(
                "{more} more partitions would make {} on this broker, above max.broker.partitions ({max})",
                hosted + more as usize
            )));
        }
        Ok(())
    }

    /// Every topic setting with its effective value and source.
    pub fn describe_topic_configs(&self, name: &str) -> Result<Vec<ConfigEntry>> {
        let topic = self
            .replicas
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        Ok(TOPIC_CONFIGS
            .iter()
            .map(|def| {
                let (value, source) = topic.settings.value(&self.config, def);
                ConfigEntry {
                    name: def.name.to_string(),
                    value,
                    source,
                    kind: def.kind,
                    doc: def.doc,
                }
            })
            .collect())
    }

    /// Applies IncrementalAlterConfigs operations to a topic; takes effect at once.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        ops: &[ConfigOp],
        validate_only: bool,
    ) -> Result<()> {
        refuse_internal(name, "Altering the configs")?;
        let _admin = self.lock.lock();
        let topic = self
            .replicas
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        let mut overrides = topic.settings.overrides.clone();
        for op in ops {
            let key = match op {
                ConfigOp::Set(k, _)
                | ConfigOp::Delete(k)
                | ConfigOp::Append(k, _)
                | ConfigOp::Subtract(k, _) => k,
            };
            let def = topic_config_def(key).ok_or_else(|| {
                BrokerError::InvalidConfig(format!("unknown topic config {key:?}"))
            })?;
            match op {
                ConfigOp::Set(k, v) => {
                    overrides.insert(k.clone(), v.clone());
                }
                ConfigOp::Delete(k) => {
                    overrides.remove(k);
                }
                ConfigOp::Append(k, v) | ConfigOp::Subtract(k, v) => {
                    if def.kind != ConfigType::List {
                        return Err(BrokerError::InvalidConfig(format!(
                            "{k} is not a list setting"
                        )));
                    }
                    let current = topic.settings.value(&self.config, def).0;
                    let mut items: Vec<String> = current
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                    if matches!(op, ConfigOp::Append(..)) {
                        if !items.contains(v) {
                            items.push(v.clone());
                        }
                    } else {
                        items.retain(|i| i != v);
                    }
                    overrides.insert(k.clone(), items.join(","));
                }
            }
        }
        self.apply_topic_overrides(&topic, overrides, validate_only)
    }

    /// Replaces all of a topic's overrides (the legacy AlterConfigs semantics).
    pub fn replace_topic_configs(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        refuse_internal(name, "Altering the configs")?;
        let _admin = self.lock.lock();
        let topic = self
            .replicas
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        self.apply_topic_overrides(&topic, overrides, validate_only)
    }

    /// Validates and commits new overrides; the replicas pick them up when the image is
    /// applied, on every broker.
    fn apply_topic_overrides(
        &self,
        topic: &Topic,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        validate_topic_configs(&overrides)?;
        if validate_only {
            return Ok(());
        }
        let mut next = self
            .coordinator
            .image()
            .topic(&topic.name)
            .filter(|t| t.id == topic.id)
            .map(|t| (**t).clone())
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        next.configs = overrides;
        self.commit_change(MetadataChange::UpdateTopic(next))
    }
}

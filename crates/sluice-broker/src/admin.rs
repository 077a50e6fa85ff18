//! Topic administration: create, delete, add partitions, describe and alter settings.
//! Every change is written to the metadata file before it is visible.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::info;
use uuid::Uuid;

use crate::broker::Broker;
use crate::config::{
    topic_config_def, validate_value, ConfigSource, ConfigType, TopicSettings, TOPIC_CONFIGS,
};
use crate::error::{BrokerError, Result};
use crate::topic::{is_internal_topic, refuse_internal, validate_topic_name, Topic, TopicRecord};

/// Largest partition count one request may ask for; bounds what a request can allocate.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 100_000;

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

impl Broker {
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

    /// Creates any topic, internal ones included (the broker's own path).
    pub(crate) fn create_topic_as_broker(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>> {
        validate_topic_name(name)?;
        let partitions = if partitions == -1 {
            self.config.num_partitions()
        } else {
            partitions
        };
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
            return Err(BrokerError::InvalidPartitions(format!(
                "{partitions}: a topic has 1 to {MAX_PARTITIONS_PER_TOPIC} partitions"
            )));
        }
        if replication_factor != -1 && replication_factor != 1 {
            return Err(BrokerError::InvalidReplicationFactor(format!(
                "replication factor {replication_factor} is larger than the 1 available broker"
            )));
        }
        validate_topic_configs(&configs)?;
        let _admin = self.admin.lock();
        if let Some(existing) = self.topic(name) {
            if validate_only {
                return Err(BrokerError::TopicAlreadyExists(name.to_string()));
            }
            return Err(BrokerError::TopicAlreadyExists(existing.name.to_string()));
        }
        if self
            .topics
            .read()
            .keys()
            .any(|t| t.replace('.', "_") == name.replace('.', "_"))
        {
            return Err(BrokerError::InvalidTopic(format!(
                "{name:?} collides with an existing topic ('.' and '_' are interchangeable in metric names)"
            )));
        }
        let record = TopicRecord {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        self.check_partition_budget(partitions)?;
        if validate_only {
            return Ok(Arc::new(Topic {
                name: Arc::from(name),
                id: record.id,
                settings: TopicSettings {
                    overrides: record.configs,
                },
                partitions: Vec::new(),
            }));
        }
        let name: Arc<str> = Arc::from(name);
        let settings = TopicSettings {
            overrides: record.configs.clone(),
        };
        let topic = Arc::new(Topic {
            partitions: self.create_partitions_files(&name, 0, partitions, &settings)?,
            name,
            id: record.id,
            settings,
        });
        let mut next = self.topics.read().clone();
        next.insert(topic.name.clone(), topic.clone());
        if let Err(e) = self.save_metadata(&next) {
            for p in &topic.partitions {
                let _ = p.log().delete();
            }
            return Err(e);
        }
        *self.topics.write() = next;
        info!(topic = %topic.name, partitions, "created topic");
        Ok(topic)
    }

    /// The topic, created with the broker defaults if it does not exist and auto-creation is on.
    pub fn topic_or_auto_create(&self, name: &str) -> Result<Arc<Topic>> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        if name == crate::group::OFFSETS_TOPIC {
            return self.offsets_topic(); // with the broker's settings, never the defaults
        }
        if is_internal_topic(name) || !self.config.auto_create_topics() {
            return Err(BrokerError::UnknownTopicOrPartition);
        }
        match self.create_topic(name, -1, -1, BTreeMap::new(), false) {
            Ok(t) => Ok(t),
            Err(BrokerError::TopicAlreadyExists(_)) => {
                self.topic(name).ok_or(BrokerError::UnknownTopicOrPartition)
            }
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
        let _admin = self.admin.lock();
        let mut next = self.topics.read().clone();
        let topic = next
            .remove(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        self.save_metadata(&next)?;
        *self.topics.write() = next;
        for p in &topic.partitions {
            p.log().delete()?;
        }
        info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    /// Grows a topic to `count` partitions (partitions are never removed).
    pub fn create_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<()> {
        // A group's offsets partition is its id's hash modulo the count: the count never
        // changes under existing groups.
        refuse_internal(name, "Adding partitions")?;
        let _admin = self.admin.lock();
        let topic = self
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        let current = topic.partitions.len() as i32;
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
        if validate_only {
            return Ok(());
        }
        self.check_partition_budget(count - current)?;
        let mut partitions = topic.partitions.clone();
        partitions.extend(self.create_partitions_files(
            &topic.name,
            current,
            count,
            &topic.settings,
        )?);
        self.replace_topic(Topic {
            name: topic.name.clone(),
            id: topic.id,
            settings: topic.settings.clone(),
            partitions,
        })?;
        info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Refuses `more` partitions beyond `max.broker.partitions` (POLICY_VIOLATION).
    fn check_partition_budget(&self, more: i32) -> Result<()> {
        let hosted: usize = self.topics().iter().map(|t| t.partitions.len()).sum();
        let max = self.config.max_broker_partitions();
        if hosted + more.max(0) as usize > max {
            return Err(BrokerError::PolicyViolation(format!(
                "{more} more partitions would make {} on this broker, above max.broker.partitions ({max})",
                hosted + more as usize
            )));
        }
        Ok(())
    }

    fn replace_topic(&self, topic: Topic) -> Result<()> {
        let mut next = self.topics.read().clone();
        next.insert(topic.name.clone(), Arc::new(topic));
        self.save_metadata(&next)?;
        *self.topics.write() = next;
        Ok(())
    }

    /// Every topic setting with its effective value and source.
    pub fn describe_topic_configs(&self, name: &str) -> Result<Vec<ConfigEntry>> {
        let topic = self
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
        let _admin = self.admin.lock();
        let topic = self
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
        let _admin = self.admin.lock();
        let topic = self
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        self.apply_topic_overrides(&topic, overrides, validate_only)
    }

    /// Validates and installs new overrides; partitions pick them up at once.
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
        let settings = TopicSettings { overrides };
        let log_config = settings.log_config(&self.config);
        let policy = settings.flush_policy(&self.config);
        for p in &topic.partitions {
            p.reconfigure(log_config.clone(), policy);
        }
        self.replace_topic(Topic {
            name: topic.name.clone(),
            id: topic.id,
            settings,
            partitions: topic.partitions.clone(),
        })
    }
}

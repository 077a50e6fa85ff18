//! Group configs (Kafka 4's GROUP config resources): per-group overrides of the broker's
//! group settings, described and changed with DescribeConfigs and IncrementalAlterConfigs,
//! kept in meta.json with the cluster's other metadata.

use std::collections::BTreeMap;

use super::GroupCoordinator;
use crate::admin::{ConfigEntry, ConfigOp};
use crate::config::{validate_value, BrokerConfig, ConfigSource, ConfigType, Range};
use crate::error::{BrokerError, Result};
use sluice_cluster::MetadataChange;

/// One group setting: its name, where its default comes from, and its allowed values.
pub struct GroupConfigDef {
    pub name: &'static str,
    /// The broker setting that gives the default, if any; else `default`.
    pub broker_name: Option<&'static str>,
    pub default: &'static str,
    pub kind: ConfigType,
    pub allowed: &'static [&'static str],
    pub range: Range,
    pub doc: &'static str,
}

pub static GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: "consumer.session.timeout.ms",
        broker_name: Some("group.consumer.session.timeout.ms"),
        default: "45000",
        kind: ConfigType::Int,
        allowed: &[],
        range: Range::AtLeast(1),
        doc: "session timeout of the group's KIP-848 members",
    },
    GroupConfigDef {
        name: "consumer.heartbeat.interval.ms",
        broker_name: Some("group.consumer.heartbeat.interval.ms"),
        default: "5000",
        kind: ConfigType::Int,
        allowed: &[],
        range: Range::AtLeast(1),
        doc: "heartbeat interval given to the group's KIP-848 members (below the session timeout)",
    },
    GroupConfigDef {
        name: "share.session.timeout.ms",
        broker_name: Some("group.share.session.timeout.ms"),
        default: "45000",
        kind: ConfigType::Int,
        allowed: &[],
        range: Range::AtLeast(1),
        doc: "session timeout of share group members (queues)",
    },
    GroupConfigDef {
        name: "share.heartbeat.interval.ms",
        broker_name: Some("group.share.heartbeat.interval.ms"),
        default: "5000",
        kind: ConfigType::Int,
        allowed: &[],
        range: Range::AtLeast(1),
        doc: "heartbeat interval of share group members (queues)",
    },
    GroupConfigDef {
        name: "share.record.lock.duration.ms",
        broker_name: Some("group.share.record.lock.duration.ms"),
        default: "30000",
        kind: ConfigType::Int,
        allowed: &[],
        range: Range::Between(1000, 3_600_000),
        doc: "how long a share group member holds a record before it is offered again (queues)",
    },
    GroupConfigDef {
        name: "share.delivery.count.limit",
        broker_name: Some("group.share.delivery.count.limit"),
        default: "5",
        kind: ConfigType::Int,
        allowed: &[],
        range: Range::Between(2, 10),
        doc: "deliveries of a record before it is archived (queues)",
    },
    GroupConfigDef {
        name: "share.partition.max.record.locks",
        broker_name: Some("group.share.partition.max.record.locks"),
        default: "2000",
        kind: ConfigType::Int,
        allowed: &[],
        range: Range::Between(100, 10000),
        doc: "records of one partition a share group may have in flight (queues)",
    },
    GroupConfigDef {
        name: "errors.deadletterqueue.topic.name",
        broker_name: None,
        default: "",
        kind: ConfigType::String,
        allowed: &[],
        range: Range::Any,
        doc: "the topic a share group copies the records it archives to (empty: none)",
    },
    GroupConfigDef {
        name: "share.auto.offset.reset",
        broker_name: None,
        default: "latest",
        kind: ConfigType::String,
        allowed: &["latest", "earliest"],
        range: Range::Any,
        doc: "where a new share group starts (queues)",
    },
    GroupConfigDef {
        name: "share.isolation.level",
        broker_name: None,
        default: "read_uncommitted",
        kind: ConfigType::String,
        allowed: &["read_uncommitted", "read_committed"],
        range: Range::Any,
        doc: "which records a share group reads (queues)",
    },
];

pub fn group_config_def(name: &str) -> Option<&'static GroupConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// The effective value of `def` for a group with `overrides`, and its source.
fn value(
    config: &BrokerConfig,
    overrides: Option<&BTreeMap<String, String>>,
    def: &GroupConfigDef,
) -> (String, ConfigSource) {
    if let Some(v) = overrides.and_then(|o| o.get(def.name)) {
        return (v.clone(), ConfigSource::GroupOverride);
    }
    match def.broker_name {
        Some(name) => config.broker_setting(name),
        None => (def.default.to_string(), ConfigSource::Default),
    }
}

impl GroupCoordinator {
    /// Every group setting of `group` with its effective value and source. Like Kafka, a
    /// group need not exist to have (or be given) configs.
    pub fn describe_group_configs(&self, group: &str) -> Result<Vec<ConfigEntry>> {
        if group.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        let image = self.replicas.image();
        let all = &image.group_configs;
        Ok(GROUP_CONFIGS
            .iter()
            .map(|def| {
                let (value, source) = value(&self.config, all.get(group), def);
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

    /// Applies IncrementalAlterConfigs SET and DELETE operations to a group's settings.
    pub fn alter_group_configs(
        &self,
        group: &str,
        ops: &[ConfigOp],
        validate_only: bool,
    ) -> Result<()> {
        if group.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        let _admin = self.admin.lock.lock();
        let mut overrides = self
            .admin
            .coordinator
            .image()
            .group_configs
            .get(group)
            .cloned()
            .unwrap_or_default();
        for op in ops {
            match op {
                ConfigOp::Set(name, v) => {
                    let def = group_config_def(name).ok_or_else(|| {
                        BrokerError::InvalidConfig(format!("unknown group config {name:?}"))
                    })?;
                    validate_value(def.kind, def.allowed, name, v)
                        .and_then(|_| def.range.check(name, v))
                        .map_err(BrokerError::InvalidConfig)?;
                    overrides.insert(name.clone(), v.clone());
                }
                ConfigOp::Delete(name) => {
                    group_config_def(name).ok_or_else(|| {
                        BrokerError::InvalidConfig(format!("unknown group config {name:?}"))
                    })?;
                    overrides.remove(name);
                }
                ConfigOp::Append(name, _) | ConfigOp::Subtract(name, _) => {
                    return Err(BrokerError::InvalidConfig(format!(
                        "{name} is not a list setting"
                    )));
                }
            }
        }
        let get = |name| {
            value(
                &self.config,
                Some(&overrides),
                group_config_def(name).expect("known"),
            )
            .0
            .parse::<i64>()
            .unwrap_or(0)
        };
        for (heartbeat, session) in [
            (
                "consumer.heartbeat.interval.ms",
                "consumer.session.timeout.ms",
            ),
            ("share.heartbeat.interval.ms", "share.session.timeout.ms"),
        ] {
            if get(heartbeat) >= get(session) {
                return Err(BrokerError::InvalidConfig(format!(
                    "{heartbeat} must be less than {session}"
                )));
            }
        }
        if validate_only {
            return Ok(());
        }
        self.admin.commit_change(MetadataChange::SetGroupConfigs(
            group.to_string(),
            overrides,
        ))
    }

    /// The KIP-848 session timeout and heartbeat interval of `group`, in ms.
    /// The effective value of the group setting `name` for `group`.
    pub(crate) fn group_setting_str(&self, group: &str, name: &str) -> String {
        let image = self.replicas.image();
        let def = group_config_def(name).expect("a known group setting");
        value(&self.config, image.group_configs.get(group), def).0
    }

    /// `group_setting_str` of a numeric setting.
    pub(crate) fn group_setting_for(&self, group: &str, name: &str) -> i64 {
        self.group_setting_str(group, name).parse().unwrap_or(1)
    }

    pub(crate) fn consumer_group_timing(&self, group: &str) -> (u64, i32) {
        let image = self.replicas.image();
        let all = &image.group_configs;
        let get = |name: &str| {
            value(
                &self.config,
                all.get(group),
                group_config_def(name).expect("known"),
            )
            .0
            .parse::<i64>()
            .unwrap_or(1)
            .max(1)
        };
        (
            get("consumer.session.timeout.ms") as u64,
            get("consumer.heartbeat.interval.ms").min(i32::MAX as i64) as i32,
        )
    }
}

/// Checks a group's stored settings: known names, values of their type and range.
pub fn validate_group_configs(
    configs: &BTreeMap<String, String>,
) -> std::result::Result<(), String> {
    for (name, v) in configs {
        let def = group_config_def(name).ok_or_else(|| format!("unknown group config {name:?}"))?;
        validate_value(def.kind, def.allowed, name, v).and_then(|_| def.range.check(name, v))?;
    }
    Ok(())
}

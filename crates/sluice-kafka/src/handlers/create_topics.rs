//! CreateTopics (19).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use sluice_broker::BrokerError;

use super::describe_configs::source_code;
use super::str;
use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (2, 7);

pub fn handle(ctx: &Context, reply: &Reply, req: CreateTopicsRequest) -> Response {
    let broker = &ctx.broker;
    let node = broker.config.node_id;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let mut result = CreatableTopicResult::default().with_name(t.name.clone());
            let created = (|| {
                let mut partitions = t.num_partitions;
                if !t.assignments.is_empty() {
                    if partitions != -1 || t.replication_factor != -1 {
                        return Err(BrokerError::InvalidReplicaAssignment(
                            "give either assignments or partitions and replication factor".into(),
                        ));
                    }
                    let mut seen: Vec<i32> =
                        t.assignments.iter().map(|a| a.partition_index).collect();
                    seen.sort_unstable();
                    if seen != (0..seen.len() as i32).collect::<Vec<_>>()
                        || t.assignments.iter().any(|a| {
                            a.broker_ids.iter().any(|b| b.0 != node) || a.broker_ids.len() != 1
                        })
                    {
                        return Err(BrokerError::InvalidReplicaAssignment(format!(
                            "assignments must place partitions 0..n on this broker ({node}) only"
                        )));
                    }
                    partitions = t.assignments.len() as i32;
                }
                let mut configs = BTreeMap::new();
                for c in &t.configs {
                    let value = c.value.as_ref().ok_or_else(|| {
                        BrokerError::InvalidConfig(format!("{} has a null value", c.name))
                    })?;
                    configs.insert(c.name.to_string(), value.to_string());
                }
                broker.create_topic(
                    &t.name,
                    partitions,
                    t.replication_factor,
                    configs,
                    req.validate_only,
                )
            })();
            match created {
                Ok(topic) => {
                    result.topic_id = topic.id;
                    result.num_partitions = if req.validate_only {
                        if t.num_partitions == -1 {
                            broker.config.num_partitions()
                        } else {
                            t.num_partitions
                        }
                    } else {
                        topic.partitions.len() as i32
                    };
                    result.replication_factor = 1;
                    if !req.validate_only {
                        if let Ok(entries) = broker.describe_topic_configs(&t.name) {
                            result.configs = Some(
                                entries
                                    .iter()
                                    .map(|e| {
                                        CreatableTopicConfigs::default()
                                            .with_name(str(&e.name))
                                            .with_value(Some(str(&e.value)))
                                            .with_config_source(source_code(e.source))
                                    })
                                    .collect(),
                            );
                        }
                    }
                }
                Err(e) => {
                    result.error_code = errors::code(&e);
                    result.error_message = errors::message(&e);
                    result.num_partitions = -1;
                    result.replication_factor = -1;
                }
            }
            result
        })
        .collect();
    reply.encode(&CreateTopicsResponse::default().with_topics(results))
}

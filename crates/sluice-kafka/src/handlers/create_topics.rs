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
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let mut result = CreatableTopicResult::default().with_name(t.name.clone());
            let created = (|| {
                let mut configs = BTreeMap::new();
                for c in &t.configs {
                    let value = c.value.as_ref().ok_or_else(|| {
                        BrokerError::InvalidConfig(format!("{} has a null value", c.name))
                    })?;
                    configs.insert(c.name.to_string(), value.to_string());
                }
                if t.assignments.is_empty() {
                    return broker.admin.create_topic(
                        &t.name,
                        t.num_partitions,
                        t.replication_factor,
                        configs,
                        req.validate_only,
                    );
                }
                if t.num_partitions != -1 || t.replication_factor != -1 {
                    return Err(BrokerError::InvalidRequest(
                        "give either assignments or partitions and replication factor".into(),
                    ));
                }
                let mut assignments: Vec<_> = t
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect();
                assignments.sort_by_key(|(p, _)| *p);
                if assignments
                    .iter()
                    .enumerate()
                    .any(|(i, (p, _))| *p != i as i32)
                {
                    return Err(BrokerError::InvalidReplicaAssignment(
                        "assignments must name partitions 0..n, each once".into(),
                    ));
                }
                let replicas = assignments.into_iter().map(|(_, r)| r).collect();
                broker
                    .admin
                    .create_topic_assigned(&t.name, replicas, configs, req.validate_only)
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
                        topic.partition_count
                    };
                    result.replication_factor = broker
                        .replicas.image()
                        .topic(&t.name)
                        .and_then(|m| m.partitions.first())
                        .map_or(1, |p| p.replicas.len() as i16);
                    if !req.validate_only {
                        if let Ok(entries) = broker.admin.describe_topic_configs(&t.name) {
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

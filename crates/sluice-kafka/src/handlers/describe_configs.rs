//! DescribeConfigs (32): every topic, broker or group setting with its value and source.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use sluice_broker::{ConfigEntry, ConfigSource, ConfigType};

use super::str;
use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (1, 4);

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// Kafka 4's GROUP config resource.
pub const RESOURCE_GROUP: i8 = 32;

/// Kafka's ConfigSource codes.
pub fn source_code(s: ConfigSource) -> i8 {
    match s {
        ConfigSource::TopicOverride => 1,
        ConfigSource::GroupOverride => 8,
        ConfigSource::StaticBroker => 4,
        ConfigSource::Default => 5,
    }
}

fn type_code(t: ConfigType) -> i8 {
    match t {
        ConfigType::Boolean => 1,
        ConfigType::String => 2,
        ConfigType::Int => 3,
        ConfigType::Long => 5,
        ConfigType::Double => 6,
        ConfigType::List => 7,
    }
}

pub fn handle(ctx: &Context, reply: &Reply, req: DescribeConfigsRequest) -> Response {
    let broker = &ctx.broker;
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let entries = match res.resource_type {
                RESOURCE_TOPIC => broker
                    .admin
                    .describe_topic_configs(&res.resource_name)
                    .map_err(|e| (errors::code(&e), e.to_string())),
                RESOURCE_BROKER
                    if res.resource_name.is_empty()
                        || *res.resource_name == *broker.config.node_id.to_string() =>
                {
                    Ok(broker
                        .config
                        .describe_broker()
                        .into_iter()
                        .map(|(name, value, source, kind)| ConfigEntry {
                            name,
                            value,
                            source,
                            kind,
                            doc: "",
                        })
                        .collect())
                }
                RESOURCE_GROUP => broker
                    .groups
                    .describe_group_configs(&res.resource_name)
                    .map_err(|e| (errors::code(&e), e.to_string())),
                RESOURCE_BROKER => Err((
                    ResponseError::InvalidRequest.code(),
                    format!("unknown broker {}", res.resource_name),
                )),
                other => Err((
                    ResponseError::InvalidRequest.code(),
                    format!("resource type {other} has no configs here"),
                )),
            };
            match entries {
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(str(&message))),
                Ok(entries) => {
                    let configs = entries
                        .into_iter()
                        .filter(|e| {
                            res.configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|k| **k == *e.name))
                        })
                        .map(|e| describe(e, req.include_synonyms, req.include_documentation))
                        .collect();
                    result.with_configs(configs)
                }
            }
        })
        .collect();
    reply.encode(&DescribeConfigsResponse::default().with_results(results))
}

fn describe(e: ConfigEntry, synonyms: bool, documentation: bool) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(str(&e.name))
        .with_value(Some(str(&e.value)))
        .with_read_only(false)
        .with_config_source(source_code(e.source))
        .with_config_type(type_code(e.kind));
    if synonyms {
        r.synonyms = vec![DescribeConfigsSynonym::default()
            .with_name(str(&e.name))
            .with_value(Some(str(&e.value)))
            .with_source(source_code(e.source))];
    }
    if documentation && !e.doc.is_empty() {
        r.documentation = Some(str(e.doc));
    }
    r
}

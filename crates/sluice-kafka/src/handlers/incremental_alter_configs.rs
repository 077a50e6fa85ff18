//! IncrementalAlterConfigs (44): change topic and group settings at run time.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use sluice_broker::{BrokerError, ConfigOp};

use super::describe_configs::{RESOURCE_GROUP, RESOURCE_TOPIC};
use super::str;
use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 1);

pub fn handle(ctx: &Context, reply: &Reply, req: IncrementalAlterConfigsRequest) -> Response {
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            if res.resource_type != RESOURCE_TOPIC && res.resource_type != RESOURCE_GROUP {
                return response
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str("only topic and group settings can be changed at run time; broker settings come from the config file")));
            }
            let ops: Result<Vec<ConfigOp>, BrokerError> = res
                .configs
                .iter()
                .map(|c| {
                    let name = c.name.to_string();
                    let value = || {
                        c.value
                            .as_ref()
                            .map(|v| v.to_string())
                            .ok_or_else(|| BrokerError::InvalidConfig(format!("{name} needs a value")))
                    };
                    Ok(match c.config_operation {
                        0 => ConfigOp::Set(name.clone(), value()?),
                        1 => ConfigOp::Delete(name),
                        2 => ConfigOp::Append(name.clone(), value()?),
                        3 => ConfigOp::Subtract(name.clone(), value()?),
                        op => return Err(BrokerError::InvalidRequest(format!("unknown config operation {op}"))),
                    })
                })
                .collect();
            let result = ops.and_then(|ops| match res.resource_type {
                RESOURCE_GROUP => ctx.broker.groups.alter_group_configs(&res.resource_name, &ops, req.validate_only),
                _ => ctx.broker.admin.alter_topic_configs(&res.resource_name, &ops, req.validate_only),
            });
            let (code, message) = errors::of(&result);
            response.with_error_code(code).with_error_message(message)
        })
        .collect();
    reply.encode(&IncrementalAlterConfigsResponse::default().with_responses(responses))
}

//! AlterConfigs (33), the legacy form: a topic's overrides become exactly the given set.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use sluice_broker::BrokerError;

use super::describe_configs::RESOURCE_TOPIC;
use super::str;
use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 2);

pub fn handle(ctx: &Context, reply: &Reply, req: AlterConfigsRequest) -> Response {
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            if res.resource_type != RESOURCE_TOPIC {
                return response
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str("only topic settings can be changed at run time; broker settings come from the config file")));
            }
            let overrides: Result<BTreeMap<String, String>, BrokerError> = res
                .configs
                .iter()
                .map(|c| match &c.value {
                    Some(v) => Ok((c.name.to_string(), v.to_string())),
                    None => Err(BrokerError::InvalidConfig(format!("{} needs a value", c.name))),
                })
                .collect();
            let result = overrides.and_then(|o| ctx.broker.admin.replace_topic_configs(&res.resource_name, o, req.validate_only));
            let (code, message) = errors::of(&result);
            response.with_error_code(code).with_error_message(message)
        })
        .collect();
    reply.encode(&AlterConfigsResponse::default().with_responses(responses))
}

//! DescribeUserScramCredentials (50): which SCRAM mechanisms each user has credentials for,
//! and their iterations (never the credentials). All users when none are named; a named
//! user without credentials is RESOURCE_NOT_FOUND.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_broker::scram_users::mechanism_number;

use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 0);

pub fn handle(ctx: &Context, reply: &Reply, req: DescribeUserScramCredentialsRequest) -> Response {
    let image = ctx.broker.replicas.image();
    let names: Vec<String> = match &req.users {
        Some(users) if !users.is_empty() => users.iter().map(|u| u.name.to_string()).collect(),
        _ => image.scram_users.keys().cloned().collect(),
    };
    let results = names
        .into_iter()
        .map(|name| {
            let result = DescribeUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(name.clone()));
            match image.scram_users.get(&name) {
                Some(credentials) => result.with_credential_infos(
                    credentials
                        .iter()
                        .map(|(mechanism, c)| {
                            CredentialInfo::default()
                                .with_mechanism(mechanism_number(mechanism))
                                .with_iterations(c.iterations as i32)
                        })
                        .collect(),
                ),
                None => result
                    .with_error_code(ResponseError::ResourceNotFound.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "attempt to describe a user credential that does not exist: {name}"
                    )))),
            }
        })
        .collect();
    reply.encode(&DescribeUserScramCredentialsResponse::default().with_results(results))
}

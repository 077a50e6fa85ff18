//! AlterUserScramCredentials (51): SCRAM credentials set (from a salt and a salted password
//! the client computed) and deleted, per user all or none. A controller request: forwarded
//! to the controller, which writes the cluster metadata every broker reads.

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_broker::scram_users::{hash_of, ScramOp};

use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 0);

pub fn handle(ctx: &Context, reply: &Reply, req: AlterUserScramCredentialsRequest) -> Response {
    let ops = req
        .deletions
        .into_iter()
        .map(|d| ScramOp::Delete {
            user: d.name.to_string(),
            hash: hash_of(d.mechanism),
        })
        .chain(req.upsertions.into_iter().map(|u| ScramOp::Upsert {
            user: u.name.to_string(),
            hash: hash_of(u.mechanism),
            iterations: u.iterations,
            salt: u.salt.to_vec(),
            salted_password: u.salted_password.to_vec(),
        }))
        .collect();
    let results = ctx
        .broker
        .admin
        .alter_scram_credentials(ops)
        .into_iter()
        .map(|(user, result)| {
            let (code, message) = errors::of(&result);
            AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user))
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    reply.encode(&AlterUserScramCredentialsResponse::default().with_results(results))
}

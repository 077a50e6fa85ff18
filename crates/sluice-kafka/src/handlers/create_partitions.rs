//! CreatePartitions (37): grow a topic's partition count.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 3);

pub fn handle(ctx: &Context, reply: &Reply, req: CreatePartitionsRequest) -> Response {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let assignment = t.assignments.as_ref().filter(|a| !a.is_empty()).map(|a| {
                a.iter()
                    .map(|p| p.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
            let result = ctx.broker.admin.create_partitions(
                &t.name,
                t.count,
                assignment,
                req.validate_only,
            );
            let (code, message) = errors::of(&result);
            CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    reply.encode(&CreatePartitionsResponse::default().with_results(results))
}

//! DeleteGroups (42): empty groups only (NON_EMPTY_GROUP otherwise).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::errors;
use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 2);

pub fn handle(ctx: &Context, reply: Reply, req: DeleteGroupsRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    Box::pin(async move {
        let mut results = Vec::with_capacity(req.groups_names.len());
        for id in req.groups_names {
            let r = broker.groups.delete_group(&id).await;
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(errors::of(&r).0),
            );
        }
        reply.encode(&DeleteGroupsResponse::default().with_results(results))
    })
}

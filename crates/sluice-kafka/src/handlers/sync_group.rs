//! SyncGroup (14).

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use sluice_broker::group::SyncRequest;

use super::{opt_string, str};
use crate::errors;
use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 5);

pub fn handle(ctx: &Context, reply: Reply, req: SyncGroupRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    let sync = SyncRequest {
        group_id: req.group_id.to_string(),
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: opt_string(&req.group_instance_id),
        protocol_type: opt_string(&req.protocol_type),
        protocol_name: opt_string(&req.protocol_name),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    Box::pin(async move {
        let response = match broker.groups.sync_group(sync).await {
            Ok((protocol_type, protocol_name, assignment)) => SyncGroupResponse::default()
                .with_protocol_type(protocol_type.as_deref().map(str))
                .with_protocol_name(protocol_name.as_deref().map(str))
                .with_assignment(assignment),
            Err(e) => SyncGroupResponse::default().with_error_code(errors::code(&e)),
        };
        reply.encode(&response)
    })
}

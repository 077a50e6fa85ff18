//! JoinGroup (11).

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use sluice_broker::group::JoinRequest;

use super::{opt_string, str};
use crate::errors;
use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 9);

pub fn handle(ctx: &Context, reply: Reply, req: JoinGroupRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    let join = JoinRequest {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: opt_string(&req.group_instance_id),
        client_id: reply.client_id.clone(),
        client_host: format!("/{}", reply.peer.ip()),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if reply.version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: reply.version >= 4,
        supports_skip_assignment: reply.version >= 9,
    };
    Box::pin(async move {
        let response = match broker.groups.join_group(join).await {
            Ok(r) => {
                let members = r
                    .members
                    .into_iter()
                    .map(|(id, instance, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(str(&id))
                            .with_group_instance_id(instance.as_deref().map(str))
                            .with_metadata(metadata)
                    })
                    .collect();
                let mut resp = JoinGroupResponse::default()
                    .with_generation_id(r.generation)
                    .with_protocol_type(r.protocol_type.as_deref().map(str))
                    .with_protocol_name(r.protocol_name.as_deref().map(str))
                    .with_leader(str(&r.leader))
                    .with_member_id(str(&r.member_id))
                    .with_members(members);
                if reply.version >= 9 {
                    resp.skip_assignment = r.skip_assignment;
                }
                resp
            }
            Err((e, member_id)) => JoinGroupResponse::default()
                .with_error_code(errors::code(&e))
                .with_generation_id(-1)
                .with_member_id(str(&member_id)),
        };
        reply.encode(&response)
    })
}

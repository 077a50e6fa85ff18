//! LeaveGroup (13): one member (v0-2) or a batch of members (v3+).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::{opt_string, str};
use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 5);

pub fn handle(ctx: &Context, reply: &Reply, req: LeaveGroupRequest) -> Response {
    let batched = reply.version >= 3;
    let members: Vec<(String, Option<String>)> = if batched {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), opt_string(&m.group_instance_id)))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let response = match ctx.broker.groups.leave_group(&req.group_id, &members) {
        Err(e) => LeaveGroupResponse::default().with_error_code(errors::code(&e)),
        Ok(results) if batched => {
            let members = members
                .iter()
                .zip(results)
                .map(|((id, instance), r)| {
                    MemberResponse::default()
                        .with_member_id(str(id))
                        .with_group_instance_id(instance.as_deref().map(str))
                        .with_error_code(errors::of(&r).0)
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        }
        Ok(results) => LeaveGroupResponse::default()
            .with_error_code(results.first().map_or(0, |r| errors::of(r).0)),
    };
    reply.encode(&response)
}

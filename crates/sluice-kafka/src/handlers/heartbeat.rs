//! Heartbeat (12).

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::opt_string;
use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 4);

pub fn handle(ctx: &Context, reply: &Reply, req: HeartbeatRequest) -> Response {
    let instance = opt_string(&req.group_instance_id);
    let result = ctx.broker.groups.heartbeat(
        &req.group_id,
        req.generation_id,
        &req.member_id,
        instance.as_deref(),
    );
    reply.encode(&HeartbeatResponse::default().with_error_code(errors::of(&result).0))
}

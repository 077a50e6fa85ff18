//! Heartbeat (12).

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::opt_string;
use crate::dispatch::{Reply, Response};
use crate::errors;
use crate::Context;

pub fn handle(ctx: &Context, reply: &Reply, req: HeartbeatRequest) -> Response {
    let instance = opt_string(&req.group_instance_id);
    let result = ctx.broker.heartbeat(
        &req.group_id,
        req.generation_id,
        &req.member_id,
        instance.as_deref(),
    );
    reply.encode(&HeartbeatResponse::default().with_error_code(errors::of(&result).0))
}

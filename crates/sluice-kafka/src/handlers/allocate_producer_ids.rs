//! AllocateProducerIds (67): a broker asks the controller for a block of producer ids for
//! its idempotent producers (Kafka's KIP-730). Sent between brokers, forwarded to the
//! controller if it reaches another broker, and not advertised to clients.

use kafka_protocol::messages::{AllocateProducerIdsRequest, AllocateProducerIdsResponse};
use sluice_broker::PRODUCER_ID_BLOCK;

use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions served (see versions.rs, BETWEEN_BROKERS).
pub const VERSIONS: (i16, i16) = (0, 0);

pub fn handle(ctx: &Context, reply: &Reply, _req: AllocateProducerIdsRequest) -> Response {
    let answer = match ctx.broker.producer_ids.reserve_block(PRODUCER_ID_BLOCK) {
        Ok(start) => AllocateProducerIdsResponse::default()
            .with_producer_id_start(start.into())
            .with_producer_id_len(PRODUCER_ID_BLOCK as i32),
        Err(e) => AllocateProducerIdsResponse::default().with_error_code(errors::code(&e)),
    };
    reply.encode(&answer)
}

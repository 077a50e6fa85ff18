//! InitProducerId (22): producer ids and epochs for idempotent producers.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 5);

pub fn handle(ctx: &Context, reply: &Reply, req: InitProducerIdRequest) -> Response {
    let (producer_id, epoch) = if reply.version >= 3 {
        (req.producer_id.0, req.producer_epoch)
    } else {
        (-1, -1)
    };
    // An empty transactional id is treated as none, as some clients send it that way.
    let transactional_id = req
        .transactional_id
        .as_deref()
        .map(|t| t.as_str())
        .filter(|t| !t.is_empty());
    let response =
        match ctx
            .broker
            .producer_ids
            .init_producer_id(transactional_id, producer_id, epoch)
        {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(e) => InitProducerIdResponse::default()
                .with_error_code(errors::code(&e))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
    reply.encode(&response)
}

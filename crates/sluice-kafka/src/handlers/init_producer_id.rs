//! InitProducerId (22): producer ids and epochs for idempotent producers, and for
//! transactional ones from the transaction coordinator (fencing earlier producers of the id).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 5);

pub fn handle(ctx: &Context, reply: Reply, req: InitProducerIdRequest) -> ResponseFuture {
    let (producer_id, epoch) = if reply.version >= 3 {
        (req.producer_id.0, req.producer_epoch)
    } else {
        (-1, -1)
    };
    // An empty transactional id is treated as none, as some clients send it that way.
    let transactional_id = req
        .transactional_id
        .as_deref()
        .map(|t| t.to_string())
        .filter(|t| !t.is_empty());
    let broker = ctx.broker.clone();
    Box::pin(super::detached(async move {
        let result = match transactional_id {
            Some(id) => {
                let expected = (producer_id >= 0).then_some((producer_id, epoch));
                broker
                    .transactions
                    .init_producer_id(&id, req.transaction_timeout_ms, expected)
                    .await
            }
            None => broker
                .producer_ids
                .init_producer_id(None, producer_id, epoch),
        };
        let response = match result {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(e) => InitProducerIdResponse::default()
                .with_error_code(super::txn_code(&e, reply.version, 4))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
        reply.encode(&response)
    }))
}

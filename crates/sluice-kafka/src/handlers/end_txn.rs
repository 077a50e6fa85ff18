//! EndTxn (26): commits or aborts the producer's open transaction. Answered once the
//! decision is durable in `__transaction_state` (and normally once the markers are
//! written). v5+ is transactions v2 (KIP-890): the epoch goes up with every transaction
//! and the answer carries the producer id and epoch to go on with.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 5);

pub fn handle(ctx: &Context, reply: Reply, req: EndTxnRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    Box::pin(super::detached(async move {
        let result = broker
            .transactions
            .end_transaction(
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                req.committed,
                reply.version >= 5,
            )
            .await;
        let response = match result {
            Ok((id, epoch)) => EndTxnResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(e) => EndTxnResponse::default()
                .with_error_code(super::txn_code(&e, reply.version, 2))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
        reply.encode(&response)
    }))
}

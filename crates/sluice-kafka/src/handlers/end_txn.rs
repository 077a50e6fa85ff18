//! EndTxn (26): commits or aborts the producer's open transaction. Answered once the
//! decision is durable in `__transaction_state` (and normally once the markers are
//! written).

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 4);

pub fn handle(ctx: &Context, reply: Reply, req: EndTxnRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    Box::pin(async move {
        let result = broker
            .transactions()
            .end_transaction(
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                req.committed,
            )
            .await;
        let code = match result {
            Ok(()) => 0,
            Err(e) => super::txn_code(&e, reply.version, 2),
        };
        reply.encode(
            &EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
    })
}

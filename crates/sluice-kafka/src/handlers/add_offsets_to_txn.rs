//! AddOffsetsToTxn (25): the group's `__consumer_offsets` partition joins the producer's
//! transaction, so offsets it commits there (TxnOffsetCommit) end with the transaction.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 4);

pub fn handle(ctx: &Context, reply: Reply, req: AddOffsetsToTxnRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    Box::pin(super::detached(async move {
        let groups = &broker.groups;
        let result = match groups.offsets_topic() {
            Ok(topic) => {
                let index = sluice_broker::group::offsets_partition_for(
                    &req.group_id,
                    topic.partition_count,
                );
                let partition = [(sluice_broker::OFFSETS_TOPIC.to_string(), index)];
                broker
                    .transactions
                    .add_partitions(
                        &req.transactional_id,
                        req.producer_id.0,
                        req.producer_epoch,
                        &partition,
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        let code = match result {
            Ok(()) => 0,
            Err(e) => super::txn_code(&e, reply.version, 2),
        };
        reply.encode(&AddOffsetsToTxnResponse::default().with_error_code(code))
    }))
}

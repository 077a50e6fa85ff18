//! ListTransactions (66): the transactional ids this broker coordinates (admin clients ask
//! every broker), filtered by state, producer id and (v1) how long they have been open.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use sluice_broker::txn::TxnState;

use super::str;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs). v2's id pattern (a Java
/// regular expression) is not offered.
pub const VERSIONS: (i16, i16) = (0, 1);

const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

pub fn handle(ctx: &Context, reply: &Reply, req: ListTransactionsRequest) -> Response {
    let states: Vec<String> = req.state_filters.iter().map(|s| s.to_string()).collect();
    let unknown: Vec<_> = req
        .state_filters
        .iter()
        .filter(|s| !STATES.iter().any(|k| k.name() == s.as_str()))
        .cloned()
        .collect();
    let producers: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if reply.version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    let listed = ctx
        .broker
        .transactions
        .list(&states, &producers, duration)
        .into_iter()
        .map(|t| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(str(&t.transactional_id)))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(str(t.state.name()))
        })
        .collect();
    reply.encode(
        &ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(listed),
    )
}

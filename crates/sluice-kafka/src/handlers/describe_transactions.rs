//! DescribeTransactions (65): the state of transactional ids this broker coordinates.

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};

use super::str;
use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 0);

pub fn handle(ctx: &Context, reply: &Reply, req: DescribeTransactionsRequest) -> Response {
    let txns = &ctx.broker.transactions;
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let s = TransactionState::default().with_transactional_id(id.clone());
            match txns.describe(&id) {
                Ok(m) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (topic, p) in &m.partitions {
                        match topics.last_mut() {
                            Some(t) if t.topic.as_str() == topic => t.partitions.push(*p),
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(str(topic)))
                                    .with_partitions(vec![*p]),
                            ),
                        }
                    }
                    s.with_transaction_state(str(m.state.name()))
                        .with_transaction_timeout_ms(m.timeout_ms)
                        .with_transaction_start_time_ms(m.txn_start_ms)
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.producer_epoch)
                        .with_topics(topics)
                }
                Err(e) => s
                    .with_error_code(errors::code(&e))
                    .with_transaction_start_time_ms(-1)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            }
        })
        .collect();
    reply.encode(&DescribeTransactionsResponse::default().with_transaction_states(states))
}

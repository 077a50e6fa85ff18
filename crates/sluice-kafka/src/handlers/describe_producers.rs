//! DescribeProducers (61): the producers a partition's leader knows (idempotent and
//! transactional), with their open transaction's first offset (how operators find a
//! hanging transaction).

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 0);

pub fn handle(ctx: &Context, reply: &Reply, req: DescribeProducersRequest) -> Response {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let r = PartitionResponse::default().with_partition_index(index);
                    match ctx.broker.replicas.local_leader(&t.name, index, -1) {
                        Ok(p) => {
                            let log = p.log();
                            let mut producers: Vec<ProducerState> = log
                                .producer_state()
                                .producers()
                                .map(|(id, e)| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(id))
                                        .with_producer_epoch(e.epoch as i32)
                                        .with_last_sequence(
                                            e.batches.back().map_or(-1, |b| b.last_seq),
                                        )
                                        .with_last_timestamp(e.last_timestamp)
                                        .with_coordinator_epoch(e.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            e.txn_first_offset.unwrap_or(-1),
                                        )
                                })
                                .collect();
                            producers.sort_by_key(|p| p.producer_id.0);
                            r.with_active_producers(producers)
                        }
                        Err(e) => r
                            .with_error_code(errors::code(&e))
                            .with_error_message(errors::message(&e)),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    reply.encode(&DescribeProducersResponse::default().with_topics(topics))
}

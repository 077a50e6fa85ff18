//! ReadShareGroupState (84): a share-partition leader asks the share coordinator of a key
//! (the leader of its `__share_group_state` partition) for the state it persisted. Sent
//! between brokers, not advertised to clients.

use kafka_protocol::messages::read_share_group_state_response::{
    PartitionResult as ReadResult, ReadStateResult, StateBatch as ReadBatch,
};
use kafka_protocol::messages::{ReadShareGroupStateRequest, ReadShareGroupStateResponse};

use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions served (see versions.rs, BETWEEN_BROKERS).
pub const VERSIONS: (i16, i16) = (0, 0);

/// Kafka's answer for a key nobody persisted state for yet: start offset -1, no batches.
/// (A state whose offsets an administrator deleted also has start offset -1; it is told
/// apart by its state epoch, above 0.)
pub const NO_STATE: i64 = -1;

pub fn handle(ctx: &Context, reply: &Reply, req: ReadShareGroupStateRequest) -> Response {
    let group = req.group_id.to_string();
    let results = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let key = (group.clone(), t.topic_id, p.partition);
                    let r = ReadResult::default().with_partition(p.partition);
                    match ctx.broker.share_coordinator.coordinator_read_share_state(&key) {
                        Ok(Some(state)) => r
                            .with_state_epoch(state.state_epoch)
                            .with_start_offset(state.start_offset)
                            .with_state_batches(
                                state
                                    .batches
                                    .iter()
                                    .map(|b| {
                                        ReadBatch::default()
                                            .with_first_offset(b.first_offset)
                                            .with_last_offset(b.last_offset)
                                            .with_delivery_state(b.state)
                                            .with_delivery_count(b.delivery_count)
                                    })
                                    .collect(),
                            ),
                        Ok(None) => r.with_state_epoch(0).with_start_offset(NO_STATE),
                        Err(e) => r
                            .with_error_code(errors::code(&e))
                            .with_error_message(errors::message(&e)),
                    }
                })
                .collect();
            ReadStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    reply.encode(&ReadShareGroupStateResponse::default().with_results(results))
}

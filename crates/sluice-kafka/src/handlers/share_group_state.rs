//! ReadShareGroupState (84) and WriteShareGroupState (85): a share-partition leader asks the
//! share coordinator of a key (the leader of its `__share_group_state` partition) for the
//! state it persisted, and has it persist a new snapshot. Sent between brokers, not
//! advertised to clients.

use kafka_protocol::messages::read_share_group_state_response::{
    PartitionResult as ReadResult, ReadStateResult, StateBatch as ReadBatch,
};
use kafka_protocol::messages::write_share_group_state_response::{
    PartitionResult as WriteResult, WriteStateResult,
};
use kafka_protocol::messages::{
    ReadShareGroupStateRequest, ReadShareGroupStateResponse, WriteShareGroupStateRequest,
    WriteShareGroupStateResponse,
};
use sluice_broker::share::{PersistedState, StateBatch};

use crate::errors;
use crate::reply::{Reply, Response, ResponseFuture};
use crate::Context;

/// The versions served (see versions.rs, BETWEEN_BROKERS).
pub const READ_VERSIONS: (i16, i16) = (0, 0);
pub const WRITE_VERSIONS: (i16, i16) = (0, 0);

/// Kafka's answer for a key nobody persisted state for yet: start offset -1, no batches.
/// (A state whose offsets an administrator deleted also has start offset -1; it is told
/// apart by its state epoch, above 0.)
pub const NO_STATE: i64 = -1;

pub fn read(ctx: &Context, reply: &Reply, req: ReadShareGroupStateRequest) -> Response {
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
                    match ctx.broker.coordinator_read_share_state(&key) {
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

pub fn write(ctx: &Context, reply: Reply, req: WriteShareGroupStateRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    Box::pin(async move {
        let group = req.group_id.to_string();
        let mut results = Vec::with_capacity(req.topics.len());
        for t in &req.topics {
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let state = PersistedState {
                    state_epoch: p.state_epoch,
                    start_offset: p.start_offset,
                    batches: p
                        .state_batches
                        .iter()
                        .map(|b| StateBatch {
                            first_offset: b.first_offset,
                            last_offset: b.last_offset,
                            state: b.delivery_state,
                            delivery_count: b.delivery_count,
                        })
                        .collect(),
                };
                let key = (group.clone(), t.topic_id, p.partition);
                let outcome = broker.coordinator_write_share_state(&key, state).await;
                let (code, message) = errors::of(&outcome);
                partitions.push(
                    WriteResult::default()
                        .with_partition(p.partition)
                        .with_error_code(code)
                        .with_error_message(message),
                );
            }
            results.push(
                WriteStateResult::default()
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions),
            );
        }
        reply.encode(&WriteShareGroupStateResponse::default().with_results(results))
    })
}

//! WriteShareGroupState (85): a share-partition leader has the share coordinator of a key
//! (the leader of its `__share_group_state` partition) persist a new snapshot, acks=all
//! there. Sent between brokers, not advertised to clients.

use kafka_protocol::messages::write_share_group_state_response::{
    PartitionResult as WriteResult, WriteStateResult,
};
use kafka_protocol::messages::{WriteShareGroupStateRequest, WriteShareGroupStateResponse};
use sluice_broker::share::{PersistedState, StateBatch};

use crate::errors;
use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions served (see versions.rs, BETWEEN_BROKERS).
pub const VERSIONS: (i16, i16) = (0, 0);

pub fn handle(ctx: &Context, reply: Reply, req: WriteShareGroupStateRequest) -> ResponseFuture {
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
                let outcome = broker.share_coordinator.coordinator_write_share_state(&key, state).await;
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

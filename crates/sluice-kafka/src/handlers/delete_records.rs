//! DeleteRecords (21): move partitions' log start offsets forward.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 2);

pub fn handle(ctx: &Context, reply: &Reply, req: DeleteRecordsRequest) -> Response {
    let broker = &ctx.broker;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = broker
                        .replicas.local_leader(&t.name, p.partition_index, -1)
                        .and_then(|part| broker.replicas.delete_records(&part, p.offset));
                    let r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match result {
                        Ok(low) => r.with_low_watermark(low),
                        Err(e) => r.with_low_watermark(-1).with_error_code(errors::code(&e)),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    reply.encode(&DeleteRecordsResponse::default().with_topics(topics))
}

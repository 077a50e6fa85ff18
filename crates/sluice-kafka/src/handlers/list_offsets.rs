//! ListOffsets (2): earliest, latest, max timestamp, or the first offset at a timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use sluice_broker::{BrokerError, Partition};

use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (1, 10);

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub fn handle(ctx: &Context, reply: &Reply, req: ListOffsetsRequest) -> Response {
    let with_epoch = reply.version >= 4;
    // v2+: read_committed consumers (isolation level 1) see up to the last stable offset.
    let committed = reply.version >= 2 && req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let found = ctx
                        .broker
                        .replicas.local_leader(&t.name, p.partition_index, p.current_leader_epoch)
                        .and_then(|part| lookup(&part, p.timestamp, committed).map(|f| (f, part)));
                    match found {
                        Ok(((timestamp, offset), part)) => {
                            let r = r.with_timestamp(timestamp).with_offset(offset);
                            if with_epoch {
                                r.with_leader_epoch(part.leader_epoch())
                            } else {
                                r
                            }
                        }
                        Err(e) => r
                            .with_error_code(errors::code(&e))
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    reply.encode(&ListOffsetsResponse::default().with_topics(topics))
}

/// (timestamp, offset) for a ListOffsets query; (-1, -1) when no record matches.
fn lookup(
    partition: &Partition,
    timestamp: i64,
    committed: bool,
) -> Result<(i64, i64), BrokerError> {
    let offsets = partition.offsets();
    Ok(match timestamp {
        LATEST if committed => (-1, offsets.last_stable_offset),
        LATEST => (-1, offsets.high_watermark),
        EARLIEST | EARLIEST_LOCAL => (-1, offsets.log_start_offset),
        LATEST_TIERED => (-1, -1),
        // The batch is found under the partition's lock; its records are read after.
        MAX_TIMESTAMP => {
            let found = partition.log().max_timestamp()?;
            match found.map(|lookup| lookup.resolve()) {
                Some((offset, ts)) => (ts, offset),
                None => (-1, -1),
            }
        }
        ts if ts >= 0 => {
            let found = partition.log().offset_for_timestamp(ts)?;
            match found.map(|lookup| lookup.resolve()) {
                Some((offset, batch_ts)) => (batch_ts, offset),
                None => (-1, -1),
            }
        }
        other => {
            return Err(BrokerError::InvalidRequest(format!(
                "timestamp {other} is not a ListOffsets query"
            )))
        }
    })
}

//! ListPartitionReassignments (46): a single node moves no replicas, so none is in progress.
//! Named partitions that exist are simply not listed, as Kafka lists only moving ones.

use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 0);

pub fn handle(_ctx: &Context, reply: &Reply, _req: ListPartitionReassignmentsRequest) -> Response {
    reply.encode(&ListPartitionReassignmentsResponse::default())
}

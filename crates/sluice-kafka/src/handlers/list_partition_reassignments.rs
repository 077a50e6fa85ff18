//! ListPartitionReassignments (46): a single node moves no replicas, so none is in progress.
//! Named partitions that exist are simply not listed, as Kafka lists only moving ones.

use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use crate::dispatch::{Reply, Response};

pub fn handle(reply: &Reply, _req: ListPartitionReassignmentsRequest) -> Response {
    reply.encode(&ListPartitionReassignmentsResponse::default())
}

//! DescribeCluster (60): the live brokers and the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_OPERATIONS};
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 2);

pub fn handle(ctx: &Context, reply: &Reply, req: DescribeClusterRequest) -> Response {
    let image = ctx.broker.replicas.image();
    let brokers = image
        .brokers
        .values()
        .filter_map(|b| {
            let (host, port) = b.endpoint(&reply.listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.node_id))
                    .with_host(str(host))
                    .with_port(port as i32)
                    .with_rack(b.rack.as_deref().map(str)),
            )
        })
        .collect();
    let ops = if req.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(str(&image.cluster_id))
        .with_controller_id(BrokerId(image.controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(ops);
    if reply.version >= 1 {
        response.endpoint_type = req.endpoint_type;
    }
    reply.encode(&response)
}

//! DescribeCluster (60): this broker, as the whole cluster and its controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_OPERATIONS};
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 2);

pub fn handle(ctx: &Context, reply: &Reply, req: DescribeClusterRequest) -> Response {
    let config = &ctx.broker.config;
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(config.node_id))
        .with_host(str(&config.advertised.0))
        .with_port(config.advertised.1 as i32);
    let ops = if req.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(str(&ctx.broker.cluster_id))
        .with_controller_id(BrokerId(config.node_id))
        .with_brokers(vec![broker])
        .with_cluster_authorized_operations(ops);
    if reply.version >= 1 {
        response.endpoint_type = req.endpoint_type;
    }
    reply.encode(&response)
}

//! Metadata (3): brokers, topics and partitions; auto-creates unknown topics when allowed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use sluice_broker::{BrokerError, Topic};

use super::{str, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_OPERATIONS, TOPIC_OPERATIONS};
use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 13);

/// Whether answering may create topics (file work that must not run on an async thread).
pub fn may_create_topics(ctx: &Context, reply: &Reply, req: &MetadataRequest) -> bool {
    let allow_auto_create = reply.version < 4 || req.allow_auto_topic_creation;
    allow_auto_create
        && req.topics.as_ref().is_some_and(|topics| {
            topics.iter().any(|t| {
                t.name
                    .as_ref()
                    .is_some_and(|n| ctx.broker.topic(n).is_none())
            })
        })
}

pub fn handle(ctx: &Context, reply: &Reply, req: MetadataRequest) -> Response {
    let broker = &ctx.broker;
    let node = broker.config.node_id;
    let topic_ops = if req.include_topic_authorized_operations {
        TOPIC_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    // v0 asks for all topics with an empty list; later versions with a null one.
    let requested = match req.topics {
        Some(t) if !(reply.version == 0 && t.is_empty()) => Some(t),
        _ => None,
    };
    let allow_auto_create = reply.version < 4 || req.allow_auto_topic_creation;
    let topics = match requested {
        None => broker
            .topics()
            .iter()
            .map(|t| describe_topic(t, node, topic_ops))
            .collect(),
        Some(wanted) => wanted
            .into_iter()
            .map(|w| {
                let found = match &w.name {
                    Some(name) if allow_auto_create => broker.topic_or_auto_create(name),
                    Some(name) => sluice_broker::validate_topic_name(name).and_then(|_| {
                        broker
                            .topic(name)
                            .ok_or(BrokerError::UnknownTopicOrPartition)
                    }),
                    None => broker
                        .topic_by_id(w.topic_id)
                        .ok_or(BrokerError::UnknownTopicOrPartition),
                };
                match found {
                    Ok(t) => describe_topic(&t, node, topic_ops),
                    Err(e) => {
                        let code = if w.name.is_none() {
                            ResponseError::UnknownTopicId.code()
                        } else {
                            errors::code(&e)
                        };
                        MetadataResponseTopic::default()
                            .with_error_code(code)
                            .with_name(w.name)
                            .with_topic_id(w.topic_id)
                            .with_topic_authorized_operations(topic_ops)
                    }
                }
            })
            .collect(),
    };
    let config = &broker.config;
    let me = MetadataResponseBroker::default()
        .with_node_id(BrokerId(node))
        .with_host(str(&config.advertised.0))
        .with_port(config.advertised.1 as i32);
    let cluster_ops = if req.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    reply.encode(
        &MetadataResponse::default()
            .with_brokers(vec![me])
            .with_cluster_id(Some(str(&broker.cluster_id)))
            .with_controller_id(BrokerId(node))
            .with_topics(topics)
            .with_cluster_authorized_operations(cluster_ops),
    )
}

fn describe_topic(topic: &Topic, node: i32, topic_ops: i32) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(0)
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str(&topic.name))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(topic_ops)
}

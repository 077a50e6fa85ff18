//! Metadata (3): brokers, topics and partitions; auto-creates unknown topics when allowed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use sluice_broker::BrokerError;
use sluice_cluster::{MetadataImage, TopicMeta};

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
                    .is_some_and(|n| ctx.broker.replicas.image().topic(n).is_none())
            })
        })
}

pub fn handle(ctx: &Context, reply: &Reply, req: MetadataRequest) -> Response {
    let broker = &ctx.broker;
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
    let mut image = broker.replicas.image();
    let topics = match requested {
        None => image
            .topics
            .values()
            .map(|t| describe_topic(&image, t, topic_ops))
            .collect(),
        Some(wanted) => wanted
            .into_iter()
            .map(|w| {
                let found = match &w.name {
                    Some(name) if allow_auto_create => {
                        auto_create(ctx, name).map(|_| name.to_string())
                    }
                    Some(name) => {
                        sluice_broker::validate_topic_name(name).map(|_| name.to_string())
                    }
                    None => image
                        .topic_by_id(w.topic_id)
                        .map(|t| t.name.clone())
                        .ok_or(BrokerError::UnknownTopicOrPartition),
                };
                // A topic just created here is in a newer image.
                if found.as_ref().is_ok_and(|name| image.topic(name).is_none()) {
                    image = broker.replicas.image();
                }
                let meta = found.and_then(|name| {
                    image
                        .topic(&name)
                        .cloned()
                        .ok_or(BrokerError::UnknownTopicOrPartition)
                });
                match meta {
                    Ok(t) => describe_topic(&image, &t, topic_ops),
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
    // Each broker as the clients of this listener reach it (one without it is left out).
    let brokers = image
        .brokers
        .values()
        .filter_map(|b| {
            let (host, port) = b.endpoint(&reply.listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.node_id))
                    .with_host(str(host))
                    .with_port(port as i32)
                    .with_rack(b.rack.as_deref().map(str)),
            )
        })
        .collect();
    let cluster_ops = if req.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    reply.encode(
        &MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(str(&image.cluster_id)))
            .with_controller_id(BrokerId(image.controller_id))
            .with_topics(topics)
            .with_cluster_authorized_operations(cluster_ops),
    )
}

/// How long a Metadata request waits for a topic another broker (the controller) creates.
const AUTO_CREATE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The topic, created if it does not exist: here on the controller; elsewhere the controller
/// is asked (a CreateTopics) and the answer waits, briefly, until this broker has the topic.
/// Meanwhile the client is told LEADER_NOT_AVAILABLE and asks again, as with Kafka. Runs on
/// the blocking pool (dispatch sees to it).
fn auto_create(ctx: &Context, name: &str) -> Result<(), BrokerError> {
    match ctx.broker.admin.topic_or_auto_create(name) {
        Err(BrokerError::NotController) => {}
        other => return other.map(|_| ()),
    }
    let Some(controller) = crate::forward::controller_elsewhere(ctx) else {
        return Err(BrokerError::LeaderNotAvailable);
    };
    let asked = futures::executor::block_on(crate::forward::create_topic_at_controller(
        &controller,
        ctx.broker.config.node_id,
        &ctx.broker.config.inter_broker_security,
        name,
    ));
    if let Err(e) = asked {
        tracing::info!(topic = name, error = %e, "the controller did not create the topic");
        return Err(BrokerError::LeaderNotAvailable);
    }
    let deadline = std::time::Instant::now() + AUTO_CREATE_WAIT;
    while ctx.broker.replicas.image().topic(name).is_none() {
        if std::time::Instant::now() > deadline {
            return Err(BrokerError::LeaderNotAvailable);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(())
}

fn describe_topic(
    image: &MetadataImage,
    topic: &TopicMeta,
    topic_ops: i32,
) -> MetadataResponseTopic {
    let ids = |v: &[i32]| v.iter().map(|&id| BrokerId(id)).collect::<Vec<_>>();
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let live = image.brokers.contains_key(&p.leader);
            // Replicas on brokers that are not alive.
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|r| !image.brokers.contains_key(r))
                .collect();
            let r = MetadataResponsePartition::default()
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(if live { p.leader } else { -1 }))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&offline));
            if live {
                r
            } else {
                r.with_error_code(ResponseError::LeaderNotAvailable.code())
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str(&topic.name))))
        .with_topic_id(topic.id)
        .with_is_internal(sluice_broker::is_internal_topic(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(topic_ops)
}

//! FindCoordinator (10): a group's coordinator is the broker that leads its
//! `__consumer_offsets` partition; a transactional id's the one that leads its
//! `__transaction_state` partition; a share key's (KIP-932, asked by share-partition leaders)
//! the one that leads its `__share_group_state` partition. Each topic is created on the first
//! lookup that needs it.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use tracing::info;

use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 6);

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// A share coordinator (KIP-932), asked by share-partition leaders: "group:topicId:partition".
const KEY_TYPE_SHARE: i8 = 2;

/// The internal topic a lookup of this key type needs.
fn internal_topic(key_type: i8) -> Option<&'static str> {
    match key_type {
        KEY_TYPE_GROUP => Some(sluice_broker::OFFSETS_TOPIC),
        KEY_TYPE_TRANSACTION => Some(sluice_broker::TXN_TOPIC),
        KEY_TYPE_SHARE => Some(sluice_broker::SHARE_STATE_TOPIC),
        _ => None,
    }
}

/// Whether answering would create `__consumer_offsets` or `__share_group_state` (file work,
/// and the controller's). Shaped as every API table predicate (handlers/mod.rs).
pub fn may_create_internal_topic(
    ctx: &Context,
    _reply: &Reply,
    req: &FindCoordinatorRequest,
) -> bool {
    internal_topic(req.key_type).is_some_and(|t| ctx.broker.replicas.image().topic(t).is_none())
}

pub fn handle(ctx: &Context, reply: &Reply, req: FindCoordinatorRequest) -> Response {
    if may_create_internal_topic(ctx, reply, &req) {
        // Here only on the controller (others forward): a failure shows in the lookups.
        let created = match req.key_type {
            KEY_TYPE_SHARE => ctx.broker.share_coordinator.state_topic().map(|_| ()),
            KEY_TYPE_TRANSACTION => ctx.broker.transactions.state_topic().map(|_| ()),
            _ => ctx.broker.groups.offsets_topic().map(|_| ()),
        };
        if let Err(e) = created {
            info!(error = %e, "could not create an internal topic yet");
        }
    }
    let coordinator = |key: StrBytes| {
        let c = Coordinator::default().with_key(key);
        let found = match req.key_type {
            KEY_TYPE_GROUP => ctx.broker.groups.group_coordinator(&c.key),
            KEY_TYPE_TRANSACTION => ctx.broker.transactions.coordinator_of(&c.key),
            KEY_TYPE_SHARE => share_coordinator(ctx, &c.key),
            other => Err(sluice_broker::BrokerError::InvalidRequest(format!(
                "unknown coordinator key type {other}"
            ))),
        };
        // The coordinator as this listener's clients reach it.
        let found = found.and_then(|b| {
            let (host, port) = b
                .endpoint(&reply.listener)
                .ok_or(sluice_broker::BrokerError::CoordinatorNotAvailable)?;
            Ok((b.node_id, host.to_string(), port))
        });
        match found {
            Ok((node_id, host, port)) => c
                .with_node_id(BrokerId(node_id))
                .with_host(StrBytes::from_string(host))
                .with_port(port as i32),
            Err(e) => c
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(crate::errors::code(&e))
                .with_error_message(crate::errors::message(&e)),
        }
    };
    if reply.version >= 4 {
        let coordinators = req.coordinator_keys.into_iter().map(coordinator).collect();
        return reply.encode(&FindCoordinatorResponse::default().with_coordinators(coordinators));
    }
    let c = coordinator(req.key);
    reply.encode(
        &FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_error_message(c.error_message)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port),
    )
}

/// The leader of the `__share_group_state` partition of a share key.
fn share_coordinator(
    ctx: &Context,
    key: &str,
) -> Result<sluice_cluster::BrokerInfo, sluice_broker::BrokerError> {
    let index = sluice_broker::share::state_partition_for(key);
    ctx.broker
        .replicas.image()
        .live_leader(sluice_broker::SHARE_STATE_TOPIC, index)
        .cloned()
        .ok_or(sluice_broker::BrokerError::CoordinatorNotAvailable)
}

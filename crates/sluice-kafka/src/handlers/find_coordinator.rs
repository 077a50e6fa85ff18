//! FindCoordinator (10): a group's coordinator is the broker that leads its
//! `__consumer_offsets` partition; the topic is created on the first lookup.
//!
//! Transactions do not exist yet. A transactional key gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED
//! with a message saying so: every client takes it as fatal and stops at once (librdkafka and
//! so confluent-kafka and quixstreams, aiokafka, KafkaJS, the Java client), where the
//! retriable COORDINATOR_NOT_AVAILABLE made them retry for minutes or forever.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use tracing::info;

use super::str;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 6);

const KEY_TYPE_GROUP: i8 = 0;
const TRANSACTIONS_UNSUPPORTED: &str =
    "transactions are not supported by this broker yet (Sluice): use an idempotent producer";

/// Whether answering would create `__consumer_offsets` (file work, and the controller's).
pub fn may_create_offsets_topic(ctx: &Context, req: &FindCoordinatorRequest) -> bool {
    req.key_type == KEY_TYPE_GROUP
        && ctx
            .broker
            .image()
            .topic(sluice_broker::group::OFFSETS_TOPIC)
            .is_none()
}

pub fn handle(ctx: &Context, reply: &Reply, req: FindCoordinatorRequest) -> Response {
    if may_create_offsets_topic(ctx, &req) {
        // Here only on the controller (others forward): a failure shows in the lookups.
        if let Err(e) = ctx.broker.groups().offsets_topic() {
            info!(error = %e, "could not create __consumer_offsets yet");
        }
    }
    let coordinator = |key: StrBytes| {
        let c = Coordinator::default().with_key(key);
        if req.key_type == KEY_TYPE_GROUP {
            match ctx.broker.groups().group_coordinator(&c.key) {
                Ok(b) => c
                    .with_node_id(BrokerId(b.node_id))
                    .with_host(str(&b.host))
                    .with_port(b.port as i32),
                Err(e) => c
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(crate::errors::code(&e))
                    .with_error_message(crate::errors::message(&e)),
            }
        } else {
            info!(
                client_id = %reply.client_id,
                key = %c.key,
                "refused a transaction coordinator lookup: transactions are not supported yet"
            );
            c.with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
                .with_error_message(Some(str(TRANSACTIONS_UNSUPPORTED)))
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

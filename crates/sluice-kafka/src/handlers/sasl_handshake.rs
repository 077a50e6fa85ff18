//! SaslHandshake (17): a client on a SASL listener names its mechanism; the answer lists the
//! enabled ones (`sasl.enabled.mechanisms`). The exchange then comes in SaslAuthenticate
//! requests. v0 is advertised and answered too, as Kafka does: librdkafka before 2.1 checks
//! for it before it uses v1 ("SASL Handshake not supported by broker" otherwise); a client
//! that really speaks v0 and sends its tokens raw, outside Kafka framing, has them read as a
//! malformed request and its connection closed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_broker::auth::Mechanism;

use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 1);

pub fn handle(ctx: &Context, reply: &Reply, req: SaslHandshakeRequest) -> Response {
    let enabled = ctx.broker.config.sasl_mechanisms();
    let answer = SaslHandshakeResponse::default().with_mechanisms(
        enabled
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect(),
    );
    let asked = req.mechanism.as_str();
    let mechanism = enabled
        .iter()
        .any(|m| m == asked)
        .then(|| Mechanism::parse(asked))
        .flatten();
    let reauthentication = ctx.broker.config.max_reauthentication().is_some();
    match mechanism {
        Some(m) if reply.session.protocol.sasl() && reply.session.choose(m, reauthentication) => {
            reply.encode(&answer)
        }
        Some(_) => reply.encode(
            &answer.with_error_code(ResponseError::IllegalSaslState.code()),
        ),
        None => reply.encode(
            &answer.with_error_code(ResponseError::UnsupportedSaslMechanism.code()),
        ),
    }
}

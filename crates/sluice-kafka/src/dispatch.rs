//! A request frame's header read and checked (API, version, forwarding to the controller),
//! then its body handed to the handler the API table names (handlers/mod.rs).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, RequestHeader};
use kafka_protocol::protocol::Decodable;

use crate::handlers;
use crate::reply::{Reply, ResponseFuture};
use crate::session::Session;
use crate::versions;
use crate::Context;

/// The controller's address if this request must be served there: metadata changes, and a
/// FindCoordinator that would create `__consumer_offsets`, on a broker that is not the
/// controller.
fn needs_forwarding(ctx: &Context, reply: &Reply, body: &Bytes) -> Option<(String, u16)> {
    if ctx.broker.is_controller() {
        return None;
    }
    let creates = match reply.api {
        api if crate::forward::is_controller_api(api) => true,
        ApiKey::FindCoordinator => FindCoordinatorRequest::decode(&mut body.clone(), reply.version)
            .is_ok_and(|req| {
                handlers::find_coordinator::may_create_internal_topic(ctx, reply, &req)
            }),
        _ => false,
    };
    if !creates {
        return None;
    }
    crate::forward::controller_elsewhere(ctx)
}

/// Kafka accepts any bytes as a client id; the header decoder wants UTF-8. An invalid client
/// id has its non-ASCII bytes replaced (same length), so the request is still served.
pub fn sanitize_client_id(frame: &mut [u8]) {
    if frame.len() < 10 {
        return;
    }
    let len = i16::from_be_bytes([frame[8], frame[9]]);
    let Ok(len) = usize::try_from(len) else {
        return;
    };
    let Some(id) = frame.get_mut(10..10 + len) else {
        return;
    };
    if std::str::from_utf8(id).is_err() {
        for b in id.iter_mut().filter(|b| !b.is_ascii()) {
            *b = b'?';
        }
    }
}

/// Parses one frame and starts handling it. An error closes the connection (malformed
/// header or body, unknown API key, unsupported version), as Kafka does.
pub fn dispatch(
    ctx: &Arc<Context>,
    peer: SocketAddr,
    session: &Arc<Session>,
    mut frame: Bytes,
) -> Result<ResponseFuture, String> {
    // The connection only hands over frames of at least 8 bytes.
    let original = frame.clone();
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(key).map_err(|_| format!("unknown API key {key}"))?;
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| format!("malformed {api:?} v{version} request header: {e}"))?;
    let mut body = frame;
    let reply = Reply {
        api,
        version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.as_deref().unwrap_or_default().to_string(),
        peer,
        listener: session.listener.clone(),
        session: session.clone(),
    };
    if !Session::allowed_before_authentication(api) && !session.authenticated() {
        return Err(format!(
            "a {api:?} request before SASL authentication on listener {}",
            session.listener
        ));
    }
    if api == ApiKey::ApiVersions && !versions::implemented(api, version) {
        return Ok(handlers::ready(handlers::api_versions::unsupported(&reply)));
    }
    if !versions::implemented(api, version) {
        return Err(format!("{api:?} v{version} is not supported"));
    }
    if versions::between_brokers(api) && !ctx.from_broker(&reply) {
        tracing::debug!(peer = %reply.peer, ?api, "a broker-only request from a client, refused");
        return handlers::refusal::refuse(&reply, &mut body).map(handlers::ready);
    }
    if let Some(controller) = needs_forwarding(ctx, &reply, &body) {
        let security = ctx.broker.config.inter_broker_security.clone();
        return Ok(crate::forward::to_controller(
            controller, security, api, original,
        ));
    }
    handlers::serve(ctx, reply, &mut body)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::BytesMut;
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::Encodable;
    use sluice_broker::{Broker, BrokerConfig};

    use super::*;

    /// Every advertised API at every version it is served is dispatched to a handler (never
    /// "not supported"), and the fuzz target decodes the same set: the advertised list, the
    /// dispatch table and the fuzz target cannot drift apart.
    #[tokio::test]
    async fn every_advertised_api_is_dispatched_and_fuzzed() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::new(
            1,
            "127.0.0.1:0".parse().unwrap(),
            ("localhost".into(), 9092),
            dir.path().to_path_buf(),
            BTreeMap::new(),
        )
        .unwrap();
        let ctx = Arc::new(Context::new(Broker::open(config).unwrap()));
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let session = Arc::new(Session::new(
            Arc::from("PLAINTEXT"),
            sluice_broker::listeners::SecurityProtocol::Plaintext,
        ));
        for (api, (lo, hi)) in versions::SUPPORTED.iter().chain(versions::BETWEEN_BROKERS) {
            for version in *lo..=*hi {
                if !versions::implemented(*api, version) {
                    continue;
                }
                // A header and an empty body: the body may not decode, but it must not be
                // refused as an API or version nobody serves.
                let mut frame = BytesMut::new();
                RequestHeader::default()
                    .with_request_api_key(*api as i16)
                    .with_request_api_version(version)
                    .encode(&mut frame, api.request_header_version(version))
                    .unwrap();
                let refused = |e: &String| e.contains("not supported") || e.contains("not served");
                if let Err(e) = dispatch(&ctx, peer, &session, frame.clone().freeze()) {
                    assert!(!refused(&e), "{api:?} v{version}: {e}");
                }
                if let Err(e) = crate::fuzzing::decode_request(&frame) {
                    assert!(!refused(&e), "fuzz target, {api:?} v{version}: {e}");
                }
            }
        }
    }
}

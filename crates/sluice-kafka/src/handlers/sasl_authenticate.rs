//! SaslAuthenticate (36): one step of the SASL exchange SaslHandshake started. On success the
//! connection has its principal (`User:name`); on failure the client gets
//! SASL_AUTHENTICATION_FAILED after `connection.failed.authentication.delay.ms` and the
//! connection is closed. The reason goes to the log (never a password), the client gets
//! Kafka's generic message.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_broker::auth::Step;
use tracing::{info, warn};

use crate::reply::{Reply, Response, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 2);

pub fn handle(ctx: &Context, reply: Reply, req: SaslAuthenticateRequest) -> ResponseFuture {
    let image = ctx.broker.replicas.image();
    let credentials = sluice_broker::auth::Credentials {
        users: &image.scram_users,
        oauth: ctx.oauth.as_deref(),
    };
    let step = reply
        .session
        .with_exchange(|x| x.step(&credentials, &req.auth_bytes));
    let delay = ctx.broker.config.failed_authentication_delay();
    match step {
        Some(Step::Challenge(bytes)) => super::ready(reply.encode(
            &SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()),
        )),
        Some(Step::Done {
            user,
            last,
            valid_for,
        }) => {
            // KIP-368: a login lasts connections.max.reauth.ms, and no longer than its token.
            let lifetime = ctx
                .broker
                .config
                .max_reauthentication()
                .map(|max| valid_for.map_or(max, |v| v.min(max)));
            let again = reply.session.reauthenticating();
            if let Err(reason) = reply.session.authenticated_as(&user, lifetime) {
                sluice_broker::metrics::authentication_done(false);
                warn!(peer = %reply.peer, listener = %reply.listener, %reason, "authentication failed");
                return refuse(reply, delay, ResponseError::SaslAuthenticationFailed, "Authentication failed: re-authentication must keep the principal");
            }
            sluice_broker::metrics::authentication_done(true);
            let what = if again { "re-authenticated" } else { "authenticated" };
            info!(peer = %reply.peer, listener = %reply.listener, principal = %reply.session.principal(), "{what}");
            super::ready(reply.encode(
                &SaslAuthenticateResponse::default()
                    .with_auth_bytes(last.into())
                    // v0 has no such field: those clients cannot log in again, and their
                    // connection ends with the login (KIP-368).
                    .with_session_lifetime_ms(match reply.version {
                        0 => 0,
                        _ => lifetime.map_or(0, |l| l.as_millis() as i64),
                    }),
            ))
        }
        Some(Step::Failed(reason)) => {
            sluice_broker::metrics::authentication_done(false);
            warn!(peer = %reply.peer, listener = %reply.listener, %reason, "authentication failed");
            refuse(reply, delay, ResponseError::SaslAuthenticationFailed, "Authentication failed: Invalid username or password")
        }
        None => refuse(
            reply,
            std::time::Duration::ZERO,
            ResponseError::IllegalSaslState,
            "SaslAuthenticate without a SaslHandshake first, or after authentication",
        ),
    }
}

/// The error, after `delay`, and the connection closed.
fn refuse(
    reply: Reply,
    delay: std::time::Duration,
    error: ResponseError,
    message: &'static str,
) -> ResponseFuture {
    Box::pin(async move {
        tokio::time::sleep(delay).await;
        let answer = SaslAuthenticateResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_static_str(message)));
        match reply.encode(&answer) {
            Response::Frame(bytes) => Response::Last(bytes),
            other => other,
        }
    })
}

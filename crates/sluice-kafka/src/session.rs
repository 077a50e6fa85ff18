//! What a connection is: the listener it came in on and, on a SASL listener, who it
//! authenticated as. Requests other than ApiVersions, SaslHandshake and SaslAuthenticate wait
//! for authentication on SASL listeners (one that comes first closes the connection). With
//! `connections.max.reauth.ms` (KIP-368) a login lasts that long: the client logs in again on
//! the same connection, as the same principal, or its next request after the expiry closes
//! the connection.

use std::sync::Arc;

use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;
use sluice_broker::auth::{Exchange, Mechanism};
use sluice_broker::listeners::SecurityProtocol;

/// Kafka's principal for a connection nobody authenticated.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

pub struct Session {
    pub listener: Arc<str>,
    pub protocol: SecurityProtocol,
    state: Mutex<Auth>,
}

#[derive(Default)]
struct Auth {
    /// Chosen by SaslHandshake.
    mechanism: Option<Mechanism>,
    /// Under way between SaslAuthenticate requests.
    exchange: Option<Exchange>,
    /// Set once authenticated.
    principal: Option<String>,
    /// When the login expires (KIP-368), if it does.
    expires: Option<std::time::Instant>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("listener", &self.listener)
            .field("protocol", &self.protocol)
            .field("principal", &self.principal())
            .finish()
    }
}

impl Session {
    pub fn new(listener: Arc<str>, protocol: SecurityProtocol) -> Session {
        Session {
            listener,
            protocol,
            state: Mutex::new(Auth::default()),
        }
    }

    /// Whether requests may be served: always, except on a SASL listener before the client
    /// authenticated or after its login expired.
    pub fn authenticated(&self) -> bool {
        if !self.protocol.sasl() {
            return true;
        }
        let s = self.state.lock();
        s.principal.is_some() && s.expires.is_none_or(|at| std::time::Instant::now() < at)
    }

    /// Whether `api` may come before authentication.
    pub fn allowed_before_authentication(api: ApiKey) -> bool {
        matches!(
            api,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        )
    }

    /// The connection's principal (`User:name`), or ANONYMOUS.
    pub fn principal(&self) -> String {
        self.state
            .lock()
            .principal
            .clone()
            .unwrap_or_else(|| ANONYMOUS.to_string())
    }

    /// The authenticated principal, if any.
    pub fn authenticated_principal(&self) -> Option<String> {
        self.state.lock().principal.clone()
    }

    /// SaslHandshake chose `mechanism`: an exchange starts with the next SaslAuthenticate.
    /// On an authenticated connection this is a re-authentication, allowed only where logins
    /// expire (`reauthentication`) and with the mechanism of the first login; false otherwise.
    pub fn choose(&self, mechanism: Mechanism, reauthentication: bool) -> bool {
        let mut s = self.state.lock();
        if s.principal.is_some() && !(reauthentication && s.mechanism == Some(mechanism)) {
            return false;
        }
        s.mechanism = Some(mechanism);
        s.exchange = Some(Exchange::new(mechanism));
        true
    }

    /// Runs `f` on the exchange under way (None: no SaslHandshake came first, or the
    /// connection is authenticated already).
    pub fn with_exchange<T>(&self, f: impl FnOnce(&mut Exchange) -> T) -> Option<T> {
        self.state.lock().exchange.as_mut().map(f)
    }

    /// The client certificate of an SSL connection names `principal`.
    pub fn authenticated_by_certificate(&self, principal: String) {
        self.state.lock().principal = Some(principal);
    }

    /// The exchange ended with `user` authenticated, for `lifetime` if logins expire. A
    /// re-authentication as someone else is refused (Err), as Kafka refuses it.
    pub fn authenticated_as(
        &self,
        user: &str,
        lifetime: Option<std::time::Duration>,
    ) -> Result<(), String> {
        let mut s = self.state.lock();
        s.exchange = None;
        let principal = sluice_broker::auth::principal(user);
        if let Some(before) = &s.principal {
            if *before != principal {
                return Err(format!("re-authenticated as {principal}, not as {before}"));
            }
        }
        s.principal = Some(principal);
        s.expires = lifetime.map(|l| std::time::Instant::now() + l);
        Ok(())
    }

    /// Whether the connection was authenticated before (a login now is a re-authentication).
    pub fn reauthenticating(&self) -> bool {
        self.state.lock().principal.is_some()
    }
}

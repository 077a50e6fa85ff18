//! Who an HTTP request is, when `http.authentication` asks: `basic` checks
//! `Authorization: Basic` against the SCRAM users of the cluster metadata (the users Kafka
//! clients log in as), `bearer` checks `Authorization: Bearer` JWTs with the OAUTHBEARER
//! settings (JWKS, audience, issuer). `/healthz` is always open; `/metrics` too when
//! `http.metrics.authenticated=false` (for a Prometheus that holds no secret).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sluice_broker::auth::oauthbearer::{OAuthSettings, OAuthValidator};
use sluice_broker::BrokerConfig;
use sluice_client::scram::Hash;
use std::sync::Mutex;

use crate::http::Opened;

/// How long a checked Basic login is remembered (PBKDF2 per request would cost milliseconds
/// each; the console asks several times a second).
const BASIC_REMEMBERED: Duration = Duration::from_secs(60);
/// Logins remembered at most.
const REMEMBERED_MAX: usize = 1024;

pub struct HttpAuth {
    basic: bool,
    bearer: Option<OAuthValidator>,
    metrics_open: bool,
    opened: Opened,
    /// (user, SHA-256 of the password) -> when the password was found right.
    remembered: Mutex<HashMap<(String, Vec<u8>), Instant>>,
}

impl HttpAuth {
    /// From the settings; None when `http.authentication` is `none`.
    pub fn from_config(
        config: &BrokerConfig,
        opened: Opened,
    ) -> Result<Option<Arc<HttpAuth>>, String> {
        let mut basic = false;
        let mut bearer = false;
        for mode in config
            .string_setting("http.authentication")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            match mode {
                "none" => {}
                "basic" => basic = true,
                "bearer" => bearer = true,
                other => {
                    return Err(format!(
                        "http.authentication {other:?}: none, basic, bearer or basic,bearer"
                    ))
                }
            }
        }
        if !basic && !bearer {
            return Ok(None);
        }
        let bearer = match (bearer, OAuthSettings::from_config(config)?) {
            (false, _) => None,
            (true, Some(settings)) => Some(OAuthValidator::new(settings)?),
            (true, None) => {
                return Err("http.authentication=bearer: set sasl.oauthbearer.jwks.endpoint.url (the keys tokens are checked against)".into())
            }
        };
        Ok(Some(Arc::new(HttpAuth {
            basic,
            bearer,
            metrics_open: config.string_setting("http.metrics.authenticated") == "false",
            opened,
            remembered: Mutex::new(HashMap::new()),
        })))
    }

    /// None when the request may go on; else the 401 to answer.
    pub fn refusal(&self, path: &str, headers: &HeaderMap) -> Option<Response> {
        if path == "/healthz" || (path == "/metrics" && self.metrics_open) {
            return None;
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let outcome = if let Some(encoded) = given.strip_prefix("Basic ").filter(|_| self.basic) {
            self.basic_login(encoded.trim())
        } else if let (Some(token), Some(validator)) = (given.strip_prefix("Bearer "), &self.bearer)
        {
            validator.validate(token.trim()).map(|_| ())
        } else {
            Err("no credentials".to_string())
        };
        let why = outcome.err()?;
        if !given.is_empty() {
            tracing::warn!(reason = %why, "HTTP authentication failed");
        }
        Some(self.unauthorized())
    }

    fn basic_login(&self, encoded: &str) -> Result<(), String> {
        let decoded = B64
            .decode(encoded)
            .map_err(|_| "Basic credentials are not base64")?;
        let text = String::from_utf8(decoded).map_err(|_| "Basic credentials are not UTF-8")?;
        let (user, password) = text
            .split_once(':')
            .ok_or("Basic credentials are not user:password")?;
        let key = (user.to_string(), Hash::Sha256.h(password.as_bytes()));
        if let Some(at) = self
            .remembered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            if at.elapsed() < BASIC_REMEMBERED {
                return Ok(());
            }
        }
        let broker = self.opened.get().ok_or("the broker is opening")?;
        let image = broker.replicas.image();
        sluice_broker::auth::check_password(&image.scram_users, user, password.as_bytes())?;
        let mut remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if remembered.len() >= REMEMBERED_MAX {
            remembered.retain(|_, at| at.elapsed() < BASIC_REMEMBERED);
        }
        if remembered.len() < REMEMBERED_MAX {
            remembered.insert(key, Instant::now());
        }
        Ok(())
    }

    fn unauthorized(&self) -> Response {
        let challenge = match (self.basic, self.bearer.is_some()) {
            (true, _) => "Basic realm=\"sluice\", charset=\"UTF-8\"",
            _ => "Bearer realm=\"sluice\"",
        };
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            axum::Json(serde_json::json!({
                "error_code": 40100,
                "message": "authentication required (http.authentication)",
            })),
        )
            .into_response()
    }
}

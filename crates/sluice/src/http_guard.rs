//! What the HTTP listener checks before a request reaches the console, the REST API or
//! /metrics: the Host header names this listener (an address, `localhost`, or a name of
//! `http.allowed.hosts`), so a web page cannot reach it through a DNS name of its own (DNS
//! rebinding); a request that changes something comes from no other web origin and, with a
//! body, says `application/json` (a form or `text/plain` POST from another site is refused);
//! a body arrives within `BODY_TIMEOUT`, read before the request takes one of the listener's
//! places, so slow senders cannot hold them; with `http.authentication`, the caller logged in
//! (`http_auth.rs`). `/healthz` stays open to every caller.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest body read (a REST produce of many records fits).
const MAX_BODY: usize = 64 << 20;

/// The names the Host header may carry besides addresses and `localhost`, and who may ask.
pub struct Guard {
    allowed_hosts: Vec<String>,
    auth: Option<Arc<crate::http_auth::HttpAuth>>,
}

impl Guard {
    /// From `http.allowed.hosts` (comma-separated names; `*` allows any) and
    /// `http.authentication`.
    pub fn new(allowed_hosts: &str, auth: Option<Arc<crate::http_auth::HttpAuth>>) -> Guard {
        Guard {
            auth,
            allowed_hosts: allowed_hosts
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || self.allowed_hosts.iter().any(|h| h == "*" || *h == name)
    }
}

/// `host[:port]` without its port (IPv6 in brackets), lower-cased.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
        _ => host,
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let code = status.as_u16() as i64 * 100;
    (
        status,
        axum::Json(serde_json::json!({ "error_code": code, "message": message })),
    )
        .into_response()
}

pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !guard.host_allowed(&host) {
        return refuse(
            StatusCode::FORBIDDEN,
            &format!("Host {host:?} is not this listener's (see http.allowed.hosts)"),
        );
    }
    if let Some(auth) = &guard.auth {
        if let Some(unauthorized) = auth.refusal(request.uri().path(), headers) {
            return unauthorized;
        }
    }
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !changes {
        return next.run(request).await;
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        let origin_host = origin.split("://").nth(1).unwrap_or_default();
        if origin == "null" || !origin_host.eq_ignore_ascii_case(&host) {
            return refuse(
                StatusCode::FORBIDDEN,
                &format!("a request from origin {origin:?} may not change anything here"),
            );
        }
    }
    let has_body = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|l| l.to_str().ok())
        .is_some_and(|l| l != "0")
        || headers.contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return next.run(request).await;
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| {
            let t = t.trim().to_ascii_lowercase();
            t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
        });
    if !json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request body must be application/json",
        );
    }
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is too large or broken",
            )
        }
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            )
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_addresses_localhost_or_allowed_names() {
        let g = Guard::new("kafka-ui.example.com, other", None);
        for ok in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "localhost:8080",
            "LOCALHOST",
            "10.0.0.5",
            "kafka-ui.example.com:8080",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for refused in [
            "evil.example.com",
            "evil.example.com:8080",
            "",
            "localhost.evil.com",
        ] {
            assert!(!g.host_allowed(refused), "{refused}");
        }
        assert!(Guard::new("*", None).host_allowed("anything.example.com"));
    }
}

//! The broker's HTTP listener (`--http-listen`): the web console at `/`, the REST API under
//! `/v3` (`rest.rs`), `/metrics` in Prometheus text format,
//! `/healthz` (the process answers) and `/readyz` (it serves clients: its logs are recovered
//! and, in a cluster, it is in touch with etcd). It listens from before the data directory is
//! opened, so a recovering broker is alive but not ready.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use sluice_broker::Broker;

/// HTTP requests served at once.
const MAX_CONCURRENT_REQUESTS: usize = 64;

/// The broker, once it is open.
pub type Opened = Arc<OnceLock<Arc<Broker>>>;

/// The listener's socket: plain HTTP, or HTTPS (`http.ssl.keystore.location`).
pub enum Socket {
    Plain(tokio::net::TcpListener),
    Tls(crate::http_tls::TlsListener),
}

/// Serves until the process ends.
pub async fn serve(listener: Socket, opened: Opened, guard: crate::http_guard::Guard) {
    let app = Router::new()
        .route("/", get(console))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        // The REST API's own router (its paths under /v3) answers the rest: a fallback,
        // so no path parameters of this router reach it.
        .fallback(rest_api)
        .with_state(opened)
        // A bound on the work HTTP clients can queue up at once (each REST request is a
        // Kafka client of the cluster); more wait for a place.
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            MAX_CONCURRENT_REQUESTS,
        ))
        // Outside the limit: a body is read (within its timeout) before the request takes a
        // place, so slow senders cannot hold the places.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(guard),
            crate::http_guard::guard,
        ));
    let served = match listener {
        Socket::Plain(tcp) => axum::serve(tcp, app).await,
        Socket::Tls(tls) => axum::serve(tls, app).await,
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "the HTTP listener stopped");
    }
}

/// The REST API, once the broker is open (503 before).
async fn rest_api(
    State(opened): State<Opened>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use tower::ServiceExt as _;
    let Some(broker) = opened.get().cloned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                serde_json::json!({ "error_code": 50302, "message": "the broker is opening" }),
            ),
        )
            .into_response();
    };
    let api = crate::rest::routes().with_state(crate::rest::Rest { broker });
    match api.oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// The web console: one page, built into the binary, that reads the REST API and /metrics.
async fn console() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("console.html"),
    )
}

async fn metrics(State(opened): State<Opened>) -> axum::response::Response {
    let Some(broker) = opened.get().cloned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the broker is opening\n").into_response();
    };
    let text = tokio::task::spawn_blocking(move || crate::prometheus::render(&broker))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn ready(State(opened): State<Opened>) -> (StatusCode, String) {
    let Some(broker) = opened.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "recovering the logs\n".into(),
        );
    };
    let status = broker.coordinator_status();
    if !status.connected {
        let why = status.last_error.unwrap_or_else(|| "no answer".into());
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not in touch with the cluster's {}: {why}\n", status.kind),
        );
    }
    (StatusCode::OK, "ready\n".into())
}

//! sluice-kafka: the Kafka wire-protocol front end. Framing, ApiVersions negotiation, one
//! dispatch table and one handler module per API key, mapping requests onto sluice-broker.
//! Encoding and decoding come from the `kafka-protocol` crate.

mod connection;
mod dispatch;
mod errors;
mod fetch_frame;
mod handlers;
pub mod versions;

use std::sync::Arc;

use sluice_broker::Broker;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

/// What every handler may use.
pub struct Context {
    pub broker: Arc<Broker>,
}

/// Accepts connections until `shutdown` turns true; each connection runs as its own task.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let ctx = Arc::new(Context { broker });
    info!(addr = ?listener.local_addr().ok(), "Kafka listener ready");
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(connection::run(stream, peer, ctx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

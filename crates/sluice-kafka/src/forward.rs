//! Requests only the controller may serve (topic and config changes, creating topics on
//! first use) are forwarded to it when they reach another broker, as Kafka brokers do: the
//! request frame goes to the controller unchanged and its response comes back unchanged.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::reply::{Response, ResponseFuture};
use crate::Context;

/// A forwarded request's whole round trip, creating topics included.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// Larger responses from the controller are refused (the forwarded APIs answer small ones).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// The APIs that change metadata and so are the controller's to serve.
pub fn is_controller_api(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::CreateTopics
            | ApiKey::DeleteTopics
            | ApiKey::CreatePartitions
            | ApiKey::AlterConfigs
            | ApiKey::IncrementalAlterConfigs
    )
}

/// The controller's address, if another broker is the controller now.
pub fn controller_elsewhere(ctx: &Context) -> Option<(String, u16)> {
    if ctx.broker.is_controller() {
        return None;
    }
    let image = ctx.broker.image();
    let controller = image.broker(image.controller_id)?;
    (controller.node_id != ctx.broker.config.node_id)
        .then(|| (controller.host.clone(), controller.port))
}

/// Sends `frame` (a request without its size prefix) to the controller and answers with its
/// response. If the controller cannot be reached the connection is closed, so the client
/// retries elsewhere, as after any broker failure.
pub fn to_controller(to: (String, u16), api: ApiKey, frame: Bytes) -> ResponseFuture {
    Box::pin(async move {
        match tokio::time::timeout(FORWARD_TIMEOUT, round_trip(&to, &frame)).await {
            Ok(Ok(response)) => Response::Frame(response),
            Ok(Err(e)) => Response::Close(format!(
                "could not forward {api:?} to the controller at {}:{}: {e}",
                to.0, to.1
            )),
            Err(_) => Response::Close(format!(
                "the controller at {}:{} did not answer a forwarded {api:?} in time",
                to.0, to.1
            )),
        }
    })
}

/// One request and its response on a connection of its own (forwarded requests are rare).
async fn round_trip(to: &(String, u16), frame: &[u8]) -> std::io::Result<BytesMut> {
    let mut stream = TcpStream::connect((to.0.as_str(), to.1)).await?;
    stream.set_nodelay(true)?;
    stream
        .write_all(&(frame.len() as u32).to_be_bytes())
        .await?;
    stream.write_all(frame).await?;
    let len = stream.read_u32().await? as usize;
    if len > MAX_RESPONSE_BYTES {
        return Err(std::io::Error::other(format!(
            "a {len}-byte response is larger than a forwarded request's answer may be"
        )));
    }
    let mut out = BytesMut::with_capacity(4 + len);
    out.put_u32(len as u32);
    out.resize(4 + len, 0);
    stream.read_exact(&mut out[4..]).await?;
    debug!(controller = %format!("{}:{}", to.0, to.1), bytes = len, "forwarded a request to the controller");
    Ok(out)
}

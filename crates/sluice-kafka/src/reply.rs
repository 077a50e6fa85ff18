//! What handlers answer with: the request's identity (`Reply`), which encodes a response
//! frame, and what the connection then does (`Response`). Its own module, so handlers and the
//! dispatch table do not depend on each other.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use tracing::warn;

/// What the connection does once a request is handled.
pub enum Response {
    /// Send this frame.
    Frame(BytesMut),
    /// Send this frame made of memory and file chunks (a Fetch response).
    Chunks(Vec<crate::fetch_frame::Chunk>),
    /// Send nothing (acks=0 produce).
    Nothing,
    /// Send this frame, then close the connection (a failed authentication).
    Last(BytesMut),
    /// The response could not be built: close the connection rather than leave the
    /// client waiting for an answer that never comes.
    Close(String),
}

impl Response {
    /// The bytes it sends.
    pub fn size(&self) -> usize {
        match self {
            Response::Frame(b) | Response::Last(b) => b.len(),
            Response::Chunks(chunks) => chunks.iter().map(crate::fetch_frame::Chunk::len).sum(),
            Response::Nothing | Response::Close(_) => 0,
        }
    }
}

pub type ResponseFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

/// What a request needs to be answered: its API, version and correlation id; and who sent
/// it (client id, peer address), which group membership records.
#[derive(Debug, Clone)]
pub struct Reply {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: String,
    pub peer: SocketAddr,
    /// The name of the listener the request came in on: its clients are told that
    /// listener's endpoints.
    pub listener: std::sync::Arc<str>,
    /// The connection's session: its listener's protocol, who it authenticated as.
    pub session: std::sync::Arc<crate::session::Session>,
}

impl Reply {
    /// Encodes a length-prefixed response frame.
    pub fn encode<R: Encodable>(&self, body: &R) -> Response {
        self.encode_at(body, self.version)
    }

    pub fn encode_at<R: Encodable>(&self, body: &R, body_version: i16) -> Response {
        let header_version = self.api.response_header_version(self.version);
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        let header = ResponseHeader::default().with_correlation_id(self.correlation_id);
        let result = header
            .encode(&mut buf, header_version)
            .and_then(|_| body.encode(&mut buf, body_version));
        if let Err(e) = result {
            warn!(api = ?self.api, version = self.version, error = %e, "could not encode response");
            return Response::Close(format!(
                "could not encode {:?} v{} response: {e}",
                self.api, self.version
            ));
        }
        let len = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        Response::Frame(buf)
    }
}

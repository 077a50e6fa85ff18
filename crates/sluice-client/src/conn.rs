//! A pipelined Kafka connection: requests are written in order and their responses, which a
//! broker sends in the same order, are matched to them by a reader task. Used by the tools
//! (`sluice bench`, the CLI, the REST API), and by brokers for their own requests to other
//! brokers (`links.rs`, the follower's fetches, forwarding to the controller).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use anyhow::{anyhow, bail, Context as _};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::scram::ClientExchange;
use crate::security::{ClientSecurity, Mechanism};

/// The client id of Sluice's tools.
const TOOL_CLIENT_ID: &str = "sluice";
/// Largest response frame accepted (a fetch of `fetch.max.bytes` plus framing).
const MAX_RESPONSE: usize = 1 << 30;

/// The request versions the tools speak: (lowest acceptable, preferred). The version used is
/// the preferred one, lowered to what the broker advertises.
pub const TOOL_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
];

type Waiter = oneshot::Sender<Bytes>;
/// The sending half of a connection: a TCP stream's, or a TLS session's.
type Writer = Box<dyn AsyncWrite + Send + Unpin>;
/// Requests awaiting a response, in sending order; `None` once the connection is gone.
type Pending = Mutex<Option<VecDeque<(i32, Waiter)>>>;

pub struct Conn {
    writer: tokio::sync::Mutex<Writer>,
    /// Correlation ids of requests whose response has not arrived, in sending order.
    pending: Arc<Pending>,
    next_correlation: AtomicI32,
    versions: HashMap<i16, i16>,
    client_id: StrBytes,
    pub addr: String,
}

impl Conn {
    /// A tool's connection over PLAINTEXT: the versions of `TOOL_VERSIONS` negotiated.
    pub async fn connect(addr: &str) -> anyhow::Result<Arc<Conn>> {
        Conn::connect_with(addr, &ClientSecurity::plaintext()).await
    }

    /// A tool's connection as `security` says (TLS, then ApiVersions, then a SASL login, as
    /// Kafka's clients do it): the versions of `TOOL_VERSIONS` negotiated.
    pub async fn connect_with(addr: &str, security: &ClientSecurity) -> anyhow::Result<Arc<Conn>> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let mut conn = Conn::over(stream, addr, TOOL_CLIENT_ID.to_string(), security).await?;
        conn.versions = conn.negotiate(TOOL_VERSIONS).await?;
        conn.log_in(security).await?;
        Ok(Arc::new(conn))
    }

    /// A connection to another broker's inter-broker listener at `host`:`port`, secured as
    /// `security` says (TLS, SASL login), that negotiates nothing: its requests name their
    /// versions (`call_at`). What brokers use between themselves, as `client_id`.
    pub async fn connect_broker(
        host: &str,
        port: u16,
        client_id: String,
        security: &ClientSecurity,
    ) -> anyhow::Result<Conn> {
        let addr = format!("{host}:{port}");
        let stream = TcpStream::connect((host, port))
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let conn = Conn::over(stream, &addr, client_id, security).await?;
        conn.log_in(security).await?;
        Ok(conn)
    }

    /// Starts the reader of a connected stream, after the TLS handshake if `security` has one.
    async fn over(
        stream: TcpStream,
        addr: &str,
        client_id: String,
        security: &ClientSecurity,
    ) -> anyhow::Result<Conn> {
        stream.set_nodelay(true)?;
        let pending = Arc::new(Mutex::new(Some(VecDeque::new())));
        let writer: Writer = match security.connector() {
            None => {
                let (rd, wr) = stream.into_split();
                tokio::spawn(read_responses(rd, pending.clone()));
                Box::new(wr)
            }
            Some(connector) => {
                let name = server_name(addr)?;
                let tls = connector
                    .connect(name, stream)
                    .await
                    .with_context(|| format!("TLS handshake with {addr}"))?;
                let (rd, wr) = tokio::io::split(tls);
                tokio::spawn(read_responses(rd, pending.clone()));
                Box::new(wr)
            }
        };
        Ok(Conn {
            writer: tokio::sync::Mutex::new(writer),
            pending,
            next_correlation: AtomicI32::new(1),
            versions: HashMap::new(),
            client_id: StrBytes::from_string(client_id),
            addr: addr.to_string(),
        })
    }

    /// SaslHandshake (v1) and SaslAuthenticate (v2) with the login of `security`, if any.
    async fn log_in(&self, security: &ClientSecurity) -> anyhow::Result<()> {
        let Some(login) = &security.sasl else {
            return Ok(());
        };
        let mechanism = login.mechanism.name();
        let handshake: SaslHandshakeResponse = self
            .call_at(
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism)),
            )
            .await?;
        if handshake.error_code != 0 {
            let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            bail!(
                "{}: SASL mechanism {mechanism} refused (error {}); the listener offers {offered:?}",
                self.addr,
                handshake.error_code
            );
        }
        match login.mechanism {
            Mechanism::Plain => {
                let message = format!("\0{}\0{}", login.username, login.password);
                self.authenticate(message.into_bytes()).await?;
            }
            Mechanism::Scram(hash) => {
                let mut exchange = ClientExchange::new(hash, &login.username, &login.password)?;
                let server_first = self.authenticate(exchange.first()).await?;
                let client_final = exchange
                    .last(&server_first)
                    .with_context(|| format!("{}: logging in", self.addr))?;
                let server_final = self.authenticate(client_final).await?;
                exchange
                    .verify(&server_final)
                    .with_context(|| format!("{}: logging in", self.addr))?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate round: the server's answer, or its refusal as an error.
    async fn authenticate(&self, message: Vec<u8>) -> anyhow::Result<Bytes> {
        let r: SaslAuthenticateResponse = self
            .call_at(
                ApiKey::SaslAuthenticate,
                2,
                &SaslAuthenticateRequest::default().with_auth_bytes(message.into()),
            )
            .await?;
        if r.error_code != 0 {
            bail!(
                "{}: authentication failed (error {}): {}",
                self.addr,
                r.error_code,
                r.error_message.as_deref().unwrap_or("")
            );
        }
        Ok(r.auth_bytes)
    }

    async fn negotiate(&self, wanted: &[(ApiKey, i16, i16)]) -> anyhow::Result<HashMap<i16, i16>> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(TOOL_CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let frame = self
            .send_versioned(ApiKey::ApiVersions, 3, &request)
            .await?
            .await
            .map_err(|_| anyhow!("{}: connection closed during ApiVersions", self.addr))?;
        let response: ApiVersionsResponse = decode(ApiKey::ApiVersions, 3, frame)?;
        if response.error_code != 0 {
            bail!(
                "{}: ApiVersions failed with error code {}",
                self.addr,
                response.error_code
            );
        }
        let mut versions = HashMap::new();
        for (api, min, preferred) in wanted {
            let advertised = response
                .api_keys
                .iter()
                .find(|k| k.api_key == *api as i16)
                .ok_or_else(|| anyhow!("{}: broker does not support {api:?}", self.addr))?;
            let version = (*preferred).min(advertised.max_version);
            if version < *min || version < advertised.min_version {
                bail!(
                    "{}: broker supports {api:?} v{}-{}, Sluice needs v{min}-{preferred}",
                    self.addr,
                    advertised.min_version,
                    advertised.max_version
                );
            }
            versions.insert(*api as i16, version);
        }
        Ok(versions)
    }

    /// The negotiated version of `api` (one of `TOOL_VERSIONS`).
    pub fn version(&self, api: ApiKey) -> i16 {
        self.versions[&(api as i16)]
    }

    /// Sends a request frame as a client sent it (header and body, no length prefix: a
    /// request forwarded to the controller) and returns the response frame as the broker
    /// sent it (length prefix included), to go back unchanged.
    pub async fn forward(&self, frame: &[u8]) -> anyhow::Result<BytesMut> {
        anyhow::ensure!(
            frame.len() >= 8,
            "{}: a request frame of {} bytes",
            self.addr,
            frame.len()
        );
        let correlation = i32::from_be_bytes(frame[4..8].try_into().expect("4 bytes"));
        let mut framed = BytesMut::with_capacity(4 + frame.len());
        framed.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        framed.extend_from_slice(frame);
        let answer = self
            .write_frame(correlation, &framed)
            .await?
            .await
            .map_err(|_| {
                anyhow!(
                    "{}: connection closed awaiting a forwarded answer",
                    self.addr
                )
            })?;
        let mut out = BytesMut::with_capacity(4 + answer.len());
        out.extend_from_slice(&(answer.len() as u32).to_be_bytes());
        out.extend_from_slice(&answer);
        Ok(out)
    }

    /// Sends a request; the receiver yields the response frame (after the response header).
    pub async fn send<R: Encodable>(
        &self,
        api: ApiKey,
        request: &R,
    ) -> anyhow::Result<oneshot::Receiver<Bytes>> {
        self.send_versioned(api, self.version(api), request).await
    }

    /// Sends a request that gets no response (a produce with acks=0).
    pub async fn send_unanswered<R: Encodable>(
        &self,
        api: ApiKey,
        request: &R,
    ) -> anyhow::Result<()> {
        let frame = self.encode(api, self.version(api), request)?;
        let mut writer = self.writer.lock().await;
        writer.write_all(&frame).await?;
        Ok(())
    }

    /// `call` at a version the caller chose (APIs outside the bench's own set).
    pub async fn call_at<Req: Encodable, Resp: Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        let frame = self
            .send_versioned(api, version, request)
            .await?
            .await
            .map_err(|_| anyhow!("{}: connection closed awaiting {api:?}", self.addr))?;
        decode(api, version, frame)
    }

    /// Sends a request and waits for its decoded response.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        api: ApiKey,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        let frame = self
            .send(api, request)
            .await?
            .await
            .map_err(|_| anyhow!("{}: connection closed awaiting {api:?}", self.addr))?;
        decode(api, self.version(api), frame)
    }

    async fn send_versioned<R: Encodable>(
        &self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> anyhow::Result<oneshot::Receiver<Bytes>> {
        let frame = self.encode(api, version, request)?;
        // After the length prefix: api key (2 bytes), api version (2), correlation id (4).
        let correlation = i32::from_be_bytes(frame[8..12].try_into().unwrap());
        self.write_frame(correlation, &frame).await
    }

    /// Writes a whole frame (length prefix included) whose response carries `correlation`.
    async fn write_frame(
        &self,
        correlation: i32,
        frame: &[u8],
    ) -> anyhow::Result<oneshot::Receiver<Bytes>> {
        let (tx, rx) = oneshot::channel();
        // The queue order must be the wire order, so both happen under the writer lock.
        let mut writer = self.writer.lock().await;
        match self.pending.lock().as_mut() {
            Some(queue) => queue.push_back((correlation, tx)),
            None => bail!("{}: connection closed", self.addr),
        }
        if let Err(e) = writer.write_all(frame).await {
            // Nothing will answer: later callers must not wait on this connection.
            self.pending.lock().take();
            return Err(e.into());
        }
        Ok(rx)
    }

    /// Whether the connection was lost (its reader stopped): no request can be answered.
    pub fn is_closed(&self) -> bool {
        self.pending.lock().is_none()
    }

    fn encode<R: Encodable>(
        &self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> anyhow::Result<Bytes> {
        let correlation = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.client_id.clone()));
        let header_version = api.request_header_version(version);
        let size = header.compute_size(header_version)? + request.compute_size(version)?;
        let mut buf = BytesMut::with_capacity(4 + size);
        buf.extend_from_slice(&(size as i32).to_be_bytes());
        header.encode(&mut buf, header_version)?;
        request.encode(&mut buf, version)?;
        Ok(buf.freeze())
    }
}

/// Decodes a response frame (header included) of `api` at `version`.
pub fn decode<R: Decodable>(api: ApiKey, version: i16, mut frame: Bytes) -> anyhow::Result<R> {
    ResponseHeader::decode(&mut frame, api.response_header_version(version))?;
    R::decode(&mut frame, version)
        .with_context(|| format!("decoding a {api:?} v{version} response"))
}

/// The name a TLS client checks the broker's certificate against: the host of `addr`.
fn server_name(addr: &str) -> anyhow::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| anyhow!("{addr}: not a TLS server name: {e}"))
}

async fn read_responses<R: AsyncRead + Unpin>(rd: R, pending: Arc<Pending>) {
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    loop {
        let len = match rd.read_i32().await {
            Ok(len) if len >= 4 && (len as usize) <= MAX_RESPONSE => len as usize,
            _ => break,
        };
        // Grows as data arrives, so a wrong length prefix alone allocates little.
        let mut frame = BytesMut::with_capacity(len.min(1 << 20));
        while frame.len() < len {
            if frame.len() == frame.capacity() {
                frame.reserve(len - frame.len());
            }
            match (&mut rd)
                .take((len - frame.len()) as u64)
                .read_buf(&mut frame)
                .await
            {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        if frame.len() < len {
            break;
        }
        let correlation = i32::from_be_bytes(frame[..4].try_into().unwrap());
        let next = pending.lock().as_mut().and_then(|q| q.pop_front());
        let Some((expected, waiter)) = next else {
            break;
        };
        if expected != correlation {
            break;
        }
        let _ = waiter.send(frame.freeze());
    }
    // Dropping the waiters tells every caller the connection is gone.
    pending.lock().take();
}

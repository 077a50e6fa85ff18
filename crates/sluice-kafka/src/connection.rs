//! One client connection: a reader that frames and dispatches requests in arrival order, and
//! a writer that sends responses in that same order while later requests progress.
//!
//! What a connection may hold is bounded: at most `MAX_IN_FLIGHT` requests are being handled
//! at once (the reader stops reading until one is answered), and every request's bytes count
//! against the broker-wide `queued.max.request.bytes` from before its body is read until its
//! response is written. When the client goes away, its pending work is dropped at once.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::stream::{FuturesOrdered, StreamExt};
use sluice_log::ReadSlice;
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tracing::{debug, info};

use crate::admission::Admitted;
use crate::dispatch::{dispatch, sanitize_client_id};
use crate::fetch_frame::Chunk;
use crate::reply::{Response, ResponseFuture};
use crate::session::Session;
use crate::Context;

/// Requests a client may have in flight on one connection before we stop reading.
const MAX_IN_FLIGHT: usize = 16;
/// A request body gets a buffer of its length up to this at once; beyond it, the buffer
/// grows only as the data arrives, so a large length prefix alone allocates little. Most
/// produce requests fit, and are then read with no reallocation or copy.
const FIRST_READ: usize = 1 << 20;

/// A request being handled, with what it holds of the connection's and the broker's budgets
/// (given back once its response is written).
struct InFlight {
    response: ResponseFuture,
    _slot: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// What a connection runs over: plain TCP (file ranges go out with sendfile) or TLS (they
/// are read and encrypted, sendfile cannot apply).
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// The read side of a connection, and how it tells that the client went away while a
/// request waits for budget.
pub trait ReadSide: AsyncRead + Unpin + Send + 'static {
    /// Resolves to true when the client closed, false when more bytes arrived; never, on a
    /// transport that cannot look ahead (TLS), so the wait runs its course.
    fn peer_closed(&mut self) -> impl std::future::Future<Output = Result<bool, String>> + Send;
}

impl ReadSide for OwnedReadHalf {
    async fn peer_closed(&mut self) -> Result<bool, String> {
        let mut probe = [0u8; 1];
        match self.peek(&mut probe).await {
            Ok(0) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) => Err(format!("read error: {e}")),
        }
    }
}

impl ReadSide for tokio::io::ReadHalf<tokio_rustls::server::TlsStream<TcpStream>> {
    async fn peer_closed(&mut self) -> Result<bool, String> {
        std::future::pending().await
    }
}

/// The write side of a connection, and how it sends a range of a segment file.
pub trait WriteSide: AsyncWrite + Unpin + Send + 'static {
    fn send_file(
        &mut self,
        slice: &ReadSlice,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

impl WriteSide for OwnedWriteHalf {
    async fn send_file(&mut self, slice: &ReadSlice) -> std::io::Result<()> {
        send_file(self.as_ref(), slice).await
    }
}

/// Over TLS, file ranges are read (from the page cache, usually) in pieces and written
/// through the encryption.
impl WriteSide for tokio::io::WriteHalf<tokio_rustls::server::TlsStream<TcpStream>> {
    async fn send_file(&mut self, slice: &ReadSlice) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        const PIECE: usize = 256 * 1024;
        let mut buf = vec![0u8; PIECE.min(slice.len)];
        let mut done = 0;
        while done < slice.len {
            let want = (slice.len - done).min(PIECE);
            let n = slice
                .file
                .read_at(&mut buf[..want], slice.position + done as u64)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment shorter than the fetched range",
                ));
            }
            self.write_all(&buf[..n]).await?;
            done += n;
        }
        Ok(())
    }
}

/// Serves one connection on `listener`; `_admitted` holds its place under the connection
/// limits.
pub async fn run(
    transport: Transport,
    peer: SocketAddr,
    session: Arc<Session>,
    ctx: Arc<Context>,
    _admitted: Admitted,
) {
    let _counted = sluice_broker::metrics::connection_opened();
    match transport {
        Transport::Plain(stream) => {
            let _ = stream.set_nodelay(true);
            let (rd, wr) = stream.into_split();
            serve(rd, wr, peer, session, ctx).await
        }
        Transport::Tls(stream) => {
            let _ = stream.get_ref().0.set_nodelay(true);
            let (rd, wr) = tokio::io::split(*stream);
            serve(rd, wr, peer, session, ctx).await
        }
    }
}

async fn serve<R: ReadSide, W: WriteSide>(
    rd: R,
    wr: W,
    peer: SocketAddr,
    session: Arc<Session>,
    ctx: Arc<Context>,
) {
    // Unbounded in type, bounded by the slots: a request enters only with one.
    let (tx, rx) = mpsc::unbounded_channel::<InFlight>();
    let writer = tokio::spawn(write_responses(wr, rx));
    match read_requests(rd, &ctx, peer, &session, tx).await {
        Ok(()) => debug!(%peer, "client closed the connection"),
        Err(reason) => info!(%peer, %reason, "closing connection"),
    }
    // Nobody is left to read the answers: drop pending work (long-poll fetches, queued
    // responses) now rather than when it completes. Appends already queued still happen.
    writer.abort();
    let _ = writer.await;
    debug!(%peer, "connection closed");
}

/// Reads frames until EOF or a protocol error. Dispatch runs here, synchronously, so that
/// produce appends happen in request order.
async fn read_requests<R: ReadSide>(
    rd: R,
    ctx: &Arc<Context>,
    peer: SocketAddr,
    session: &Arc<Session>,
    tx: mpsc::UnboundedSender<InFlight>,
) -> Result<(), String> {
    // No read buffer: an idle connection holds no memory for reads. A request costs two
    // reads (its length, then its body straight into the buffer it is decoded from).
    let mut rd = rd;
    let max = ctx.broker.config.socket_request_max_bytes();
    let idle = Duration::from_millis(ctx.broker.config.connections_max_idle_ms());
    let read_timeout = Duration::from_millis(ctx.broker.config.socket_request_read_timeout_ms());
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let Some(slot) = until_closed(&mut rd, slots.clone().acquire_owned()).await? else {
            return Ok(());
        };
        let slot = slot.map_err(|_| "connection budget closed".to_string())?;
        let len = match timeout(idle, rd.read_i32()).await {
            Err(_) => {
                return Err(format!(
                    "no request for {} ms (connections.max.idle.ms)",
                    idle.as_millis()
                ))
            }
            Ok(Ok(len)) => len,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(format!("read error: {e}")),
        };
        if len < 8 || len as usize > max {
            return Err(format!(
                "request length {len} is outside 8..={max} (socket.request.max.bytes)"
            ));
        }
        let Some(bytes) = until_closed(&mut rd, ctx.reserve_request_bytes(len as usize)).await?
        else {
            return Ok(());
        };
        let mut frame = timeout(read_timeout, read_body(&mut rd, len as usize))
            .await
            .map_err(|_| {
                format!(
                    "a request of {len} bytes did not arrive within {} ms (socket.request.read.timeout.ms)",
                    read_timeout.as_millis()
                )
            })??;
        sanitize_client_id(&mut frame);
        let api_key = i16::from_be_bytes([frame[0], frame[1]]);
        let response = timed(
            api_key,
            len as usize,
            dispatch(ctx, peer, session, frame.freeze())?,
        );
        let in_flight = InFlight {
            response,
            _slot: slot,
            _bytes: bytes,
        };
        if tx.send(in_flight).is_err() {
            return Err("writer stopped".into());
        }
    }
}

/// The response, counted in the request metrics (API, time to answer, bytes) when ready.
fn timed(api_key: i16, bytes_in: usize, response: ResponseFuture) -> ResponseFuture {
    let arrived = std::time::Instant::now();
    Box::pin(async move {
        let answer = response.await;
        sluice_broker::metrics::request_done(api_key, arrived.elapsed(), bytes_in, answer.size());
        answer
    })
}

/// Waits for `wait` unless the client closes the connection first (`None`): a client that
/// is over its budget and goes away frees what it holds without waiting for its turn.
async fn until_closed<T, R: ReadSide>(
    rd: &mut R,
    wait: impl std::future::Future<Output = T>,
) -> Result<Option<T>, String> {
    tokio::pin!(wait);
    tokio::select! {
        biased;
        ready = &mut wait => return Ok(Some(ready)),
        closed = rd.peer_closed() => if closed? {
            return Ok(None);
        },
    }
    // A request is waiting: it is read once the budget allows.
    Ok(Some(wait.await))
}

async fn read_body<R: ReadSide>(rd: &mut R, len: usize) -> Result<BytesMut, String> {
    let mut buf = BytesMut::with_capacity(len.min(FIRST_READ));
    while buf.len() < len {
        if buf.len() == buf.capacity() {
            // Grow with what has arrived (doubling), never to what the client only claims.
            buf.reserve((len - buf.len()).min(buf.len()));
        }
        let want = len - buf.len();
        let n = (&mut *rd)
            .take(want as u64)
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("read error: {e}"))?;
        if n == 0 {
            return Err(format!(
                "connection closed inside a request ({} of {len} bytes)",
                buf.len()
            ));
        }
    }
    Ok(buf)
}

async fn write_responses<W: WriteSide>(mut wr: W, mut rx: mpsc::UnboundedReceiver<InFlight>) {
    let mut in_flight = FuturesOrdered::new();
    let mut open = true;
    loop {
        tokio::select! {
            next = rx.recv(), if open => match next {
                Some(InFlight { response, _slot, _bytes }) => in_flight.push_back(async move {
                    (response.await, (_slot, _bytes))
                }),
                None => open = false,
            },
            Some((response, _held)) = in_flight.next(), if !in_flight.is_empty() => match response {
                // Flushed after each answer: TLS keeps what it encrypted until flushed (a
                // no-op on TCP).
                Response::Frame(bytes) => {
                    if let Err(e) = async { wr.write_all(&bytes).await?; wr.flush().await }.await {
                        debug!(error = %e, "write failed");
                        return;
                    }
                }
                Response::Chunks(chunks) => {
                    if let Err(e) = async { write_chunks(&mut wr, chunks).await?; wr.flush().await }.await {
                        debug!(error = %e, "write failed");
                        return;
                    }
                }
                Response::Nothing => {}
                Response::Last(bytes) => {
                    let _ = wr.write_all(&bytes).await;
                    let _ = wr.flush().await;
                    debug!("closing the connection after its last answer");
                    return;
                }
                Response::Close(reason) => {
                    info!(%reason, "closing connection");
                    return;
                }
            },
            else => return,
        }
    }
}

/// Writes a frame of memory and file chunks; file chunks go from the page cache to the socket
/// with sendfile, without passing through the broker's memory.
async fn write_chunks<W: WriteSide>(wr: &mut W, chunks: Vec<Chunk>) -> std::io::Result<()> {
    for chunk in chunks {
        match chunk {
            Chunk::Memory(bytes) => wr.write_all(&bytes).await?,
            Chunk::File(slice) => wr.send_file(&slice).await?,
        }
    }
    Ok(())
}

async fn send_file(stream: &TcpStream, slice: &ReadSlice) -> std::io::Result<()> {
    let mut offset = slice.position as libc::off_t;
    let end = offset + slice.len as libc::off_t;
    while offset < end {
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            let want = (end - offset) as usize;
            // SAFETY: both descriptors are open for the call (the file is held by `slice`,
            // the socket by `stream`), and `offset` is a valid pointer.
            let n = unsafe {
                libc::sendfile(
                    stream.as_raw_fd(),
                    slice.file.as_raw_fd(),
                    &mut offset,
                    want,
                )
            };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            // The frame's length promised these bytes: if the file no longer has them, the
            // connection cannot continue.
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment shorter than the fetched range",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

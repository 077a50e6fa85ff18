//! Connections this broker keeps to other brokers for its own frequent requests (a share
//! coordinator's state writes, dead letters to a partition's leader): one request at a time
//! per connection, idle ones kept for the next request to the same broker.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::forward::{connect, decode_response, exchange, request_frame};

/// A request's whole round trip, a connect included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per broker (more are closed once used).
const IDLE_PER_BROKER: usize = 8;

#[derive(Default)]
pub struct BrokerLinks {
    idle: Mutex<HashMap<(String, u16), Vec<TcpStream>>>,
}

impl BrokerLinks {
    /// Sends a request to `to` on a kept connection (or a new one) and decodes the answer.
    /// A kept connection that fails (the other broker restarted, say) is dropped and the
    /// request sent once more on a new one; the requests sent this way are safe to repeat
    /// (a state snapshot, a dead letter that may be copied twice).
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        to: &(String, u16),
        node_id: i32,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp, String> {
        let frame = request_frame(node_id, api, version, body)?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, async {
            if let Some(mut kept) = self.take(to) {
                if let Ok(answer) = exchange(&mut kept, &frame).await {
                    self.keep(to, kept);
                    return Ok(answer);
                }
            }
            let mut fresh = connect(to).await?;
            let answer = exchange(&mut fresh, &frame).await?;
            self.keep(to, fresh);
            Ok::<_, std::io::Error>(answer)
        })
        .await
        .map_err(|_| "the broker did not answer in time".to_string())?
        .map_err(|e| e.to_string())?;
        decode_response(answer, api, version)
    }

    fn take(&self, to: &(String, u16)) -> Option<TcpStream> {
        self.idle.lock().get_mut(to).and_then(Vec::pop)
    }

    fn keep(&self, to: &(String, u16), stream: TcpStream) {
        let mut idle = self.idle.lock();
        let kept = idle.entry(to.clone()).or_default();
        if kept.len() < IDLE_PER_BROKER {
            kept.push(stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A listener that answers each connection's first request (an ApiVersions with error
    /// code 35, so the answer is recognisable) and then closes it, as a restarted broker
    /// leaves a kept connection dead.
    async fn one_answer_per_connection() -> ((String, u16), Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let len = s.read_u32().await.unwrap() as usize;
                let mut request = vec![0u8; len];
                s.read_exact(&mut request).await.unwrap();
                let correlation = i32::from_be_bytes(request[4..8].try_into().unwrap());
                let mut body = BytesMut::new();
                ResponseHeader::default()
                    .with_correlation_id(correlation)
                    .encode(&mut body, 0)
                    .unwrap();
                ApiVersionsResponse::default()
                    .with_error_code(35)
                    .encode(&mut body, 0)
                    .unwrap();
                let mut frame = BytesMut::new();
                frame.put_u32(body.len() as u32);
                frame.extend_from_slice(&body);
                s.write_all(&frame).await.unwrap();
            }
        });
        (("127.0.0.1".to_string(), port), accepted)
    }

    #[tokio::test]
    async fn a_kept_connection_that_died_is_replaced() {
        let (to, accepted) = one_answer_per_connection().await;
        let links = BrokerLinks::default();
        for _ in 0..3 {
            let r: ApiVersionsResponse = links
                .call(
                    &to,
                    1,
                    ApiKey::ApiVersions,
                    0,
                    &ApiVersionsRequest::default(),
                )
                .await
                .expect("answered");
            assert_eq!(r.error_code, 35);
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            3,
            "a new connection each time"
        );
        assert_eq!(
            links.idle.lock()[&to].len(),
            1,
            "one kept, the dead ones dropped"
        );
    }
}

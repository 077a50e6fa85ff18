//! Connections a broker keeps to other brokers for its own frequent requests (a share
//! coordinator's state writes, dead letters and transaction markers to a partition's leader,
//! questions to a transaction coordinator): one request at a time per connection, idle ones
//! kept for the next request to the same broker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use parking_lot::Mutex;

use crate::{ClientSecurity, Conn};

/// A request's whole round trip, a connect included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per broker (more are closed once used).
const IDLE_PER_BROKER: usize = 8;

/// A broker's address as the metadata gives it.
pub type Address = (String, u16);

pub struct BrokerLinks {
    client_id: String,
    security: Arc<ClientSecurity>,
    idle: Mutex<HashMap<Address, Vec<Conn>>>,
}

impl BrokerLinks {
    /// Links whose requests name `client_id` (a broker names itself), secured as the
    /// inter-broker listener asks.
    pub fn new(client_id: String, security: Arc<ClientSecurity>) -> BrokerLinks {
        BrokerLinks {
            client_id,
            security,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Sends a request to `to` on a kept connection (or a new one) and decodes the answer.
    /// A kept connection that fails (the other broker restarted, say) is dropped and the
    /// request sent once more on a new one; the requests sent this way are safe to repeat
    /// (a state snapshot, a dead letter that may be copied twice).
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        to: &Address,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp, String> {
        tokio::time::timeout(CALL_TIMEOUT, async {
            if let Some(kept) = self.take(to) {
                if let Ok(answer) = kept.call_at(api, version, body).await {
                    self.keep(to, kept);
                    return Ok(answer);
                }
            }
            let fresh =
                Conn::connect_broker(&to.0, to.1, self.client_id.clone(), &self.security).await?;
            let answer = fresh.call_at(api, version, body).await?;
            self.keep(to, fresh);
            Ok::<_, anyhow::Error>(answer)
        })
        .await
        .map_err(|_| "the broker did not answer in time".to_string())?
        .map_err(|e| format!("{e:#}"))
    }

    fn take(&self, to: &Address) -> Option<Conn> {
        let mut idle = self.idle.lock();
        let kept = idle.get_mut(to)?;
        // A connection whose reader stopped cannot answer: drop it without trying.
        while let Some(conn) = kept.pop() {
            if !conn.is_closed() {
                return Some(conn);
            }
        }
        None
    }

    fn keep(&self, to: &Address, conn: Conn) {
        let mut idle = self.idle.lock();
        let kept = idle.entry(to.clone()).or_default();
        if kept.len() < IDLE_PER_BROKER {
            kept.push(conn);
        }
    }
}

/// One request of a broker's own to the broker at `to` (the controller, say), on a
/// connection of its own, and its decoded answer.
pub async fn call_once<Req: Encodable, Resp: Decodable>(
    to: &Address,
    client_id: String,
    security: &ClientSecurity,
    api: ApiKey,
    version: i16,
    body: &Req,
) -> Result<Resp, String> {
    tokio::time::timeout(CALL_TIMEOUT, async {
        let conn = Conn::connect_broker(&to.0, to.1, client_id, security).await?;
        conn.call_at(api, version, body).await
    })
    .await
    .map_err(|_| "the broker did not answer in time".to_string())?
    .map_err(|e| format!("{e:#}"))
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
    async fn one_answer_per_connection() -> (Address, Arc<AtomicUsize>) {
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
        let links = BrokerLinks::new("test".into(), Arc::new(ClientSecurity::plaintext()));
        for _ in 0..3 {
            let r: ApiVersionsResponse = links
                .call(&to, ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
                .await
                .expect("answered");
            assert_eq!(r.error_code, 35);
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            3,
            "a new connection each time"
        );
        assert!(links.idle.lock()[&to].len() <= 1, "the dead ones dropped");
    }
}

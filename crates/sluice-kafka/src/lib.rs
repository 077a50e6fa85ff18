//! sluice-kafka: the Kafka wire-protocol front end. Framing, ApiVersions negotiation, one
//! dispatch table and one handler module per API key, mapping requests onto sluice-broker.
//! Encoding and decoding come from the `kafka-protocol` crate.

mod admission;
mod alter_partition_link;
mod broker_peers;
mod cert_principal;
mod connection;
mod dispatch;
mod errors;
mod fetch_frame;
mod forward;
pub mod fuzzing;
mod handlers;
mod leader_link;
mod leaders;
mod reply;
mod session;
mod share_frame;
pub mod tls;
mod txn_remote;
pub mod versions;

use std::sync::Arc;

use sluice_broker::Broker;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};

/// What every handler may use.
pub struct Context {
    pub broker: Arc<Broker>,
    /// Bytes of requests being handled, broker-wide (`queued.max.request.bytes`).
    request_bytes: Arc<Semaphore>,
    request_bytes_max: usize,
    admission: Arc<admission::Admission>,
    broker_peers: broker_peers::BrokerPeers,
    /// `super.users`: principals that may send what only brokers send.
    super_users: Vec<String>,
    /// The inter-broker listener's name.
    inter_broker_listener: Arc<str>,
    /// Whether the inter-broker listener authenticates nobody (PLAINTEXT): brokers are then
    /// known by their registered addresses.
    inter_broker_unauthenticated: bool,
    /// OAUTHBEARER's token validation, when a JWKS is configured.
    pub oauth: Option<Arc<sluice_broker::auth::oauthbearer::OAuthValidator>>,
}

impl Context {
    pub fn new(broker: Arc<Broker>) -> Context {
        let max = broker
            .config
            .queued_max_request_bytes()
            .min(Semaphore::MAX_PERMITS);
        let inter_broker = &broker.config.listeners[broker.config.inter_broker_listener];
        Context {
            admission: Arc::new(admission::Admission::new(&broker.config)),
            request_bytes: Arc::new(Semaphore::new(max)),
            request_bytes_max: max,
            broker_peers: Default::default(),
            super_users: broker.config.super_users(),
            inter_broker_listener: Arc::from(inter_broker.name.as_str()),
            inter_broker_unauthenticated: inter_broker.protocol
                == sluice_broker::listeners::SecurityProtocol::Plaintext,
            oauth: None,
            broker,
        }
    }

    /// Whether a connection on `listener` from `ip` is another broker's: the inter-broker
    /// listener, from an address of a registered broker other than this one.
    fn another_brokers(&self, listener: &str, ip: std::net::IpAddr) -> bool {
        if listener != &*self.inter_broker_listener {
            return false;
        }
        self.broker_peers.contains_except(
            &self.broker.replicas.image(),
            ip,
            Some(self.broker.config.node_id),
        )
    }

    /// Whether `reply`'s request comes from a broker of the cluster, and may be one only
    /// brokers send (AlterPartition, WriteTxnMarkers, a follower's Fetch, ...): a principal
    /// of `super.users`, or, when the inter-broker listener is PLAINTEXT, a connection to it
    /// from a registered broker's address.
    pub fn from_broker(&self, reply: &reply::Reply) -> bool {
        if let Some(principal) = reply.session.authenticated_principal() {
            if self.super_users.contains(&principal) {
                return true;
            }
        }
        self.inter_broker_unauthenticated
            && reply.listener == self.inter_broker_listener
            && self
                .broker_peers
                .contains(&self.broker.replicas.image(), reply.peer.ip())
    }

    /// Waits until `len` more request bytes fit the broker-wide budget and holds them. A
    /// request larger than the whole budget waits for all of it.
    async fn reserve_request_bytes(&self, len: usize) -> OwnedSemaphorePermit {
        let n = len.min(self.request_bytes_max).min(u32::MAX as usize) as u32;
        self.request_bytes
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the request budget is never closed")
    }
}

/// A bound listener: its settings and its socket.
pub struct BoundListener {
    pub listener: sluice_broker::listeners::Listener,
    pub socket: TcpListener,
}

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts connections on every listener until `shutdown` turns true; each connection runs
/// as its own task. Fails before accepting anything if a TLS listener's stores do not read.
pub async fn serve(
    listeners: Vec<BoundListener>,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let tls = if listeners.iter().any(|l| l.listener.protocol.tls()) {
        Some(Arc::new(tls::Tls::new(tls::TlsSettings::from_config(
            &broker.config,
        ))?))
    } else {
        None
    };
    // Kept connections to other brokers, for the requests this broker sends them itself.
    let inter_broker = broker.config.inter_broker_security.clone();
    let links = Arc::new(sluice_client::BrokerLinks::new(
        forward::client_id(broker.config.node_id),
        inter_broker.clone(),
    ));
    broker
        .producer_ids
        .set_controller_source(Arc::new(forward::ControllerBlocks {
            broker: Arc::downgrade(&broker),
        }));
    broker
        .share_coordinator
        .set_share_state_remote(Arc::new(forward::ShareCoordinators {
            broker: Arc::downgrade(&broker),
            links: links.clone(),
        }));
    broker
        .transactions
        .set_txn_remote(Arc::new(txn_remote::TxnLinks { links }));
    tokio::spawn(sluice_broker::replica::follower_fetcher::run(
        broker.replicas.clone(),
        Arc::new(leader_link::LeaderLinks {
            me: broker.config.node_id,
            security: inter_broker.clone(),
        }),
        shutdown.clone(),
    ));
    tokio::spawn(sluice_broker::isr_tracker::run(
        broker.replicas.clone(),
        broker.admin.clone(),
        Arc::new(alter_partition_link::AlterPartitionLink {
            security: inter_broker,
        }),
        shutdown.clone(),
    ));
    use sluice_broker::auth::oauthbearer::{OAuthSettings, OAuthValidator};
    let oauth = match OAuthSettings::from_config(&broker.config)? {
        Some(settings) => Some(Arc::new(OAuthValidator::new(settings)?)),
        None => None,
    };
    let ctx = Arc::new(Context {
        oauth,
        ..Context::new(broker)
    });
    let mut accepting = tokio::task::JoinSet::new();
    for bound in listeners {
        let tls = bound.listener.protocol.tls().then(|| tls.clone()).flatten();
        accepting.spawn(accept(bound, tls, ctx.clone(), shutdown.clone()));
    }
    while accepting.join_next().await.is_some() {}
    Ok(())
}

/// One listener's accept loop.
async fn accept(
    bound: BoundListener,
    tls: Option<Arc<tls::Tls>>,
    ctx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name: Arc<str> = Arc::from(bound.listener.name.as_str());
    let protocol = bound.listener.protocol;
    info!(listener = %name, protocol = bound.listener.protocol.name(), addr = ?bound.socket.local_addr().ok(), "Kafka listener ready");
    loop {
        tokio::select! {
            accepted = bound.socket.accept() => match accepted {
                Ok((stream, peer)) => match ctx.admission.admit(peer.ip(), || ctx.another_brokers(&name, peer.ip())) {
                    Ok(admitted) => {
                        let (ctx, name, tls) = (ctx.clone(), name.clone(), tls.clone());
                        tokio::spawn(async move {
                            let session = session::Session::new(name.clone(), protocol);
                            let transport = match tls {
                                None => connection::Transport::Plain(stream),
                                Some(tls) => {
                                    let handshake = tls.acceptor().accept(stream);
                                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                                        Ok(Ok(s)) => {
                                            // On SSL listeners the certificate says who it is (on
                                            // SASL_SSL the login does).
                                            match tls.client_principal(s.get_ref().1) {
                                                Ok(Some(p)) if !protocol.sasl() => {
                                                    info!(%peer, listener = %name, principal = %p, "authenticated by certificate");
                                                    session.authenticated_by_certificate(p)
                                                }
                                                Ok(_) => {}
                                                Err(e) => {
                                                    info!(%peer, listener = %name, error = %e, "TLS client refused");
                                                    return;
                                                }
                                            }
                                            connection::Transport::Tls(Box::new(s))
                                        }
                                        Ok(Err(e)) => {
                                            info!(%peer, listener = %name, error = %e, "TLS handshake failed");
                                            return;
                                        }
                                        Err(_) => {
                                            info!(%peer, listener = %name, "TLS handshake timed out");
                                            return;
                                        }
                                    }
                                }
                            };
                            connection::run(transport, peer, Arc::new(session), ctx, admitted).await
                        });
                    }
                    Err(reason) => {
                        debug!(%peer, %reason, "connection refused");
                        drop(stream);
                    }
                },
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

//! sluice-etcd: the coordinator of a cluster, over etcd's v3 API.
//!
//! Keys, under `/sluice/<cluster name>/`:
//! - `cluster-id`: made by the first broker, checked against each data directory;
//! - `brokers/<node id>`: a broker's registration (JSON), under its lease: it disappears when
//!   the broker stops keeping the lease alive;
//! - `controller`: the controller's node id, under its lease; taken by create-if-absent;
//! - `topics/<name>`: a topic and the placement of its partitions (JSON);
//! - `group-configs/<group>`: a group's config overrides (JSON);
//! - `producer-ids`: the end of the producer ids reserved so far.
//!
//! Every broker watches the prefix and applies the changes in revision order to its image.
//! Only the controller writes topics and group configs, in transactions that check it still
//! holds the controller key it created (a deposed controller's writes fail) and that each
//! record it replaces has not moved since the image it read.

mod keys;
mod session;
mod watcher;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use sluice_cluster::{
    BrokerInfo, Coordinator, CoordinatorError, CoordinatorStatus, MetadataChange, MetadataImage,
};
use tokio::sync::watch;
use tracing::warn;

use keys::Keys;

/// How a broker joins an etcd cluster.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    /// etcd endpoints, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Names the cluster: its keys' prefix, so several clusters can share one etcd.
    pub cluster_name: String,
    /// How long a broker that stopped answering stays registered (its lease's time to live).
    pub session_timeout: Duration,
    /// The broker's checks of topic and group settings read from etcd.
    pub checks: sluice_cluster::validate::ConfigChecks,
    /// TLS to etcd: the CA that signed etcd's certificate, and this broker's client
    /// certificate and key (PEM files; all optional, `https://` endpoints need TLS).
    pub tls: EtcdTls,
    /// etcd's own authentication (user, password).
    pub user: Option<(String, String)>,
}

/// PEM files for TLS to etcd.
#[derive(Debug, Clone, Default)]
pub struct EtcdTls {
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

impl EtcdTls {
    fn wanted(&self, endpoints: &[String]) -> bool {
        self.ca.is_some()
            || self.cert.is_some()
            || endpoints.iter().any(|e| e.starts_with("https://"))
    }

    /// etcd-client's TLS options from the files; an error names the file.
    fn options(&self) -> Result<etcd_client::TlsOptions, String> {
        let read = |p: &std::path::Path, what: &str| {
            std::fs::read(p).map_err(|e| format!("{what} {}: {e}", p.display()))
        };
        let mut tls = etcd_client::TlsOptions::new();
        if let Some(ca) = &self.ca {
            tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(
                ca,
                "--etcd-cacert",
            )?));
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(etcd_client::Identity::from_pem(
                    read(cert, "--etcd-cert")?,
                    read(key, "--etcd-key")?,
                ));
            }
            (None, None) => {}
            _ => return Err("--etcd-cert and --etcd-key go together".into()),
        }
        Ok(tls)
    }
}

pub struct EtcdCoordinator {
    me: BrokerInfo,
    keys: Keys,
    client: Client,
    /// The lease this broker's registration and controller key live under.
    lease: AtomicI64,
    /// The create revision of the controller key while this broker holds it, else 0.
    controller_revision: AtomicI64,
    /// Set when the broker leaves: it neither keeps nor renews its registration, nor
    /// campaigns, from then on.
    left: AtomicBool,
    image: watch::Sender<Arc<MetadataImage>>,
    status: Mutex<CoordinatorStatus>,
    settings: EtcdSettings,
    /// Records read from etcd and refused by their checks (`watcher::apply`).
    skipped: AtomicU64,
}

fn unavailable(e: etcd_client::Error) -> CoordinatorError {
    CoordinatorError::Unavailable(e.to_string())
}

impl EtcdCoordinator {
    /// Connects, takes (or makes) the cluster id, registers this broker under a lease (a live
    /// broker with the same node id is refused), loads the metadata and starts following it.
    pub async fn join(settings: EtcdSettings, me: BrokerInfo) -> Result<Arc<Self>, String> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        if settings.tls.wanted(&settings.endpoints) {
            options = options.with_tls(settings.tls.options()?);
        }
        if let Some((user, password)) = &settings.user {
            options = options.with_user(user.clone(), password.clone());
        }
        let client = Client::connect(&settings.endpoints, Some(options))
            .await
            .map_err(|e| format!("cannot reach etcd at {:?}: {e}", settings.endpoints))?;
        let keys = Keys::new(&settings.cluster_name);
        let cluster_id = session::cluster_id(&client, &keys)
            .await
            .map_err(|e| format!("etcd: {e}"))?;
        let skipped = AtomicU64::new(0);
        let (image, revision) =
            watcher::load(&client, &keys, &cluster_id, &settings.checks, &skipped)
                .await
                .map_err(|e| format!("etcd: {e}"))?;
        let coordinator = Arc::new(EtcdCoordinator {
            me,
            keys,
            client,
            lease: AtomicI64::new(0),
            controller_revision: AtomicI64::new(0),
            left: AtomicBool::new(false),
            image: watch::channel(Arc::new(image)).0,
            status: Mutex::new(CoordinatorStatus {
                kind: "etcd",
                connected: true,
                last_error: None,
                skipped_records: 0,
            }),
            settings,
            skipped,
        });
        session::register(&coordinator).await?;
        watcher::spawn(&coordinator, revision + 1);
        session::spawn_keep_alive(&coordinator);
        session::spawn_campaign(&coordinator);
        Ok(coordinator)
    }

    pub fn cluster_id(&self) -> String {
        self.image.borrow().cluster_id.clone()
    }

    fn set_status(&self, error: Option<String>) {
        let mut status = self.status.lock();
        if status.connected != error.is_none() {
            match &error {
                Some(e) => {
                    warn!(error = %e, "lost the coordination service; serving what this broker leads")
                }
                None => tracing::info!("coordination service reachable again"),
            }
        }
        status.connected = error.is_none();
        status.last_error = error;
    }

    async fn commit_changes(
        &self,
        changes: Vec<MetadataChange>,
    ) -> Result<Arc<MetadataImage>, CoordinatorError> {
        let held = self.controller_revision.load(Ordering::SeqCst);
        if held == 0 {
            return Err(CoordinatorError::NotController);
        }
        let controller = self.keys.controller();
        let mut compares = vec![Compare::create_revision(
            controller.clone(),
            CompareOp::Equal,
            held,
        )];
        let mut ops = Vec::new();
        for change in &changes {
            match change {
                MetadataChange::CreateTopic(t) => {
                    let key = self.keys.topic(&t.name);
                    compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
                    ops.push(TxnOp::put(key, keys::json(t)?, None));
                }
                MetadataChange::UpdateTopic(t) => {
                    let key = self.keys.topic(&t.name);
                    compares.push(Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        t.revision,
                    ));
                    ops.push(TxnOp::put(key, keys::json(t)?, None));
                }
                MetadataChange::DeleteTopic(name) => {
                    ops.push(TxnOp::delete(self.keys.topic(name), None));
                }
                MetadataChange::SetGroupConfigs(group, configs) if configs.is_empty() => {
                    ops.push(TxnOp::delete(self.keys.group_configs(group), None));
                }
                MetadataChange::SetGroupConfigs(group, configs) => {
                    ops.push(TxnOp::put(
                        self.keys.group_configs(group),
                        keys::json(configs)?,
                        None,
                    ));
                }
                MetadataChange::SetScramUser(user, credentials) if credentials.is_empty() => {
                    ops.push(TxnOp::delete(self.keys.scram_user(user), None));
                }
                MetadataChange::SetScramUser(user, credentials) => {
                    ops.push(TxnOp::put(
                        self.keys.scram_user(user),
                        keys::json(credentials)?,
                        None,
                    ));
                }
            }
        }
        let txn = Txn::new().when(compares).and_then(ops);
        let response = self
            .client
            .kv_client()
            .txn(txn)
            .await
            .map_err(unavailable)?;
        if !response.succeeded() {
            // Which compare failed: the controller key, or a record that moved on?
            let still = session::controller_create_revision(&self.client, &self.keys)
                .await
                .map_err(unavailable)?;
            if still != Some(held) {
                self.controller_revision.store(0, Ordering::SeqCst);
                return Err(CoordinatorError::NotController);
            }
            return Err(CoordinatorError::Conflict(
                "the metadata changed meanwhile; try again".into(),
            ));
        }
        let revision = response.header().map_or(0, |h| h.revision());
        self.wait_for_revision(revision).await
    }

    /// The image once it includes `revision` (the watch delivers it within milliseconds).
    async fn wait_for_revision(
        &self,
        revision: i64,
    ) -> Result<Arc<MetadataImage>, CoordinatorError> {
        let mut images = self.image.subscribe();
        let waited = tokio::time::timeout(
            Duration::from_secs(10),
            images.wait_for(|image| image.revision >= revision),
        )
        .await;
        match waited {
            Ok(Ok(image)) => Ok(image.clone()),
            _ => Err(CoordinatorError::Unavailable(format!(
                "the change was made (revision {revision}) but this broker has not seen it yet"
            ))),
        }
    }

    async fn reserve_producer_ids(&self, count: i64) -> Result<i64, CoordinatorError> {
        let key = self.keys.producer_ids();
        for _ in 0..100 {
            let mut kv = self.client.kv_client();
            let current = kv.get(key.clone(), None).await.map_err(unavailable)?;
            let (start, compare) = match current.kvs().first() {
                Some(found) => {
                    let end = std::str::from_utf8(found.value())
                        .ok()
                        .and_then(|v| v.parse::<i64>().ok())
                        .ok_or_else(|| {
                            CoordinatorError::Storage(format!("{key} holds no number"))
                        })?;
                    let cmp =
                        Compare::mod_revision(key.clone(), CompareOp::Equal, found.mod_revision());
                    (end, cmp)
                }
                None => (
                    0,
                    Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                ),
            };
            let txn = Txn::new().when([compare]).and_then([TxnOp::put(
                key.clone(),
                (start + count).to_string(),
                None,
            )]);
            if kv.txn(txn).await.map_err(unavailable)?.succeeded() {
                return Ok(start);
            }
        }
        Err(CoordinatorError::Conflict(
            "could not reserve producer ids: too many brokers at once".into(),
        ))
    }
}

impl Coordinator for EtcdCoordinator {
    fn node_id(&self) -> i32 {
        self.me.node_id
    }

    fn watch(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.subscribe()
    }

    fn is_controller(&self) -> bool {
        self.controller_revision.load(Ordering::SeqCst) != 0
    }

    fn commit(
        &self,
        changes: Vec<MetadataChange>,
    ) -> BoxFuture<'_, Result<Arc<MetadataImage>, CoordinatorError>> {
        Box::pin(self.commit_changes(changes))
    }

    fn allocate_producer_ids(&self, count: i64) -> BoxFuture<'_, Result<i64, CoordinatorError>> {
        Box::pin(self.reserve_producer_ids(count))
    }

    fn status(&self) -> CoordinatorStatus {
        let mut status = self.status.lock().clone();
        status.skipped_records = self.skipped.load(Ordering::Relaxed);
        status
    }

    fn leave(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Revoking the lease removes the registration and, if held, the controller key at
            // once: the others elect a new controller without waiting for the lease to expire.
            self.left.store(true, Ordering::SeqCst);
            let lease = self.lease.load(Ordering::SeqCst);
            self.controller_revision.store(0, Ordering::SeqCst);
            if lease != 0 {
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    self.client.lease_client().revoke(lease),
                )
                .await;
            }
        })
    }
}

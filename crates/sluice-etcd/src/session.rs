//! A broker's session with etcd: the cluster id, its registration under a lease kept alive,
//! and its campaign for the controller key.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use sluice_cluster::BrokerInfo;
use tracing::{info, warn};

use crate::keys::{self, Keys};
use crate::EtcdCoordinator;

/// The cluster's id: the one stored, or a new one if this is the first broker.
pub async fn cluster_id(client: &Client, keys: &Keys) -> Result<String, etcd_client::Error> {
    let key = keys.cluster_id();
    let fresh = sluice_cluster::new_cluster_id();
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key.clone(), fresh.clone(), None)]);
    if client.kv_client().txn(txn).await?.succeeded() {
        info!(cluster_id = %fresh, "started a new cluster");
        return Ok(fresh);
    }
    let found = client.kv_client().get(key, None).await?;
    Ok(found
        .kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
        .unwrap_or(fresh))
}

fn lease_ttl(c: &EtcdCoordinator) -> i64 {
    c.settings.session_timeout.as_secs().max(2) as i64
}

/// Registers this broker under a new lease. A registration of the same node id by another
/// address is a live broker with this id: refused. One with this broker's own address is a
/// previous run of it (killed before its lease ran out): waited for, up to the lease's life.
pub async fn register(c: &EtcdCoordinator) -> Result<(), String> {
    let key = c.keys.broker(c.me.node_id);
    let value = keys::json(&c.me).map_err(|e| e.to_string())?;
    let ttl = lease_ttl(c);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(ttl as u64 + 2);
    loop {
        let lease = c
            .client
            .lease_client()
            .grant(ttl, None)
            .await
            .map_err(|e| format!("etcd: cannot take a lease: {e}"))?
            .id();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                value.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let registered = c
            .client
            .kv_client()
            .txn(txn)
            .await
            .map_err(|e| format!("etcd: {e}"))?
            .succeeded();
        if registered {
            c.lease.store(lease, Ordering::SeqCst);
            info!(node_id = c.me.node_id, lease, "registered in the cluster");
            return Ok(());
        }
        let _ = c.client.lease_client().revoke(lease).await;
        let holder = c
            .client
            .kv_client()
            .get(key.clone(), None)
            .await
            .map_err(|e| format!("etcd: {e}"))?
            .kvs()
            .first()
            .map(|kv| serde_json::from_slice::<BrokerInfo>(kv.value()).ok());
        // The registration that stopped ours may have expired since: try again at once.
        let Some(holder) = holder else { continue };
        let at = holder.as_ref().map_or("an unreadable address".into(), |h| {
            format!("{}:{}", h.host, h.port)
        });
        let ours = holder.is_some_and(|h| h.host == c.me.host && h.port == c.me.port);
        if !ours || tokio::time::Instant::now() > deadline {
            return Err(format!(
                "node id {} is already registered in cluster {:?} by a live broker at {at}: give each broker its own --node-id",
                c.me.node_id, c.settings.cluster_name
            ));
        }
        info!(
            node_id = c.me.node_id,
            "waiting for the registration of this broker's previous run to expire"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Keeps the lease alive; if it was lost (etcd unreachable past its life), registers again
/// under a new one. The controller role goes with a lost lease.
pub fn spawn_keep_alive(coordinator: &Arc<EtcdCoordinator>) {
    let weak = Arc::downgrade(coordinator);
    tokio::spawn(async move {
        loop {
            let Some(c) = weak.upgrade() else { return };
            if c.left.load(Ordering::SeqCst) {
                return;
            }
            let period = Duration::from_millis((lease_ttl(&c) * 1000 / 3) as u64);
            let lease = c.lease.load(Ordering::SeqCst);
            let alive = keep_alive_once(&c, lease).await;
            match alive {
                Ok(true) => {}
                Ok(false) if c.left.load(Ordering::SeqCst) => return,
                Ok(false) => {
                    warn!(lease, "this broker's lease expired: registering again");
                    c.controller_revision.store(0, Ordering::SeqCst);
                    if let Err(e) = register(&c).await {
                        warn!(error = %e, "could not register again");
                    }
                }
                Err(e) => c.set_status(Some(e)),
            }
            drop(c);
            tokio::time::sleep(period).await;
        }
    });
}

/// One keep-alive round trip: Ok(false) if the lease no longer exists (etcd answers a
/// zero time to live, or "lease not found" when it has already dropped it).
async fn keep_alive_once(c: &EtcdCoordinator, lease: i64) -> Result<bool, String> {
    let answer = async {
        let (mut keeper, mut stream) = c.client.lease_client().keep_alive(lease).await?;
        keeper.keep_alive().await?;
        stream.message().await
    }
    .await;
    match answer {
        Ok(Some(r)) => Ok(r.ttl() > 0),
        Ok(None) => Err("the keep-alive stream ended".into()),
        Err(e) if e.to_string().contains("lease not found") => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

/// The controller key's create revision, if there is a controller.
pub async fn controller_create_revision(
    client: &Client,
    keys: &Keys,
) -> Result<Option<i64>, etcd_client::Error> {
    let found = client.kv_client().get(keys.controller(), None).await?;
    Ok(found.kvs().first().map(|kv| kv.create_revision()))
}

/// Campaigns for the controller key (create-if-absent under this broker's lease) whenever
/// it is free, and checks a held one is still this broker's.
pub fn spawn_campaign(coordinator: &Arc<EtcdCoordinator>) {
    let weak = Arc::downgrade(coordinator);
    tokio::spawn(async move {
        loop {
            let Some(c) = weak.upgrade() else { return };
            if c.left.load(Ordering::SeqCst) {
                return;
            }
            if let Err(e) = campaign_once(&c).await {
                c.set_status(Some(e.to_string()));
            }
            drop(c);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
}

async fn campaign_once(c: &EtcdCoordinator) -> Result<(), etcd_client::Error> {
    let held = c.controller_revision.load(Ordering::SeqCst);
    let key = c.keys.controller();
    let lease = c.lease.load(Ordering::SeqCst);
    let found = c.client.kv_client().get(key.clone(), None).await?;
    let current = found.kvs().first();
    if held != 0 {
        match current {
            Some(kv) if kv.create_revision() == held => {
                // Still ours, unless someone wrote over it (a put keeps the create revision):
                // put back this broker's id under its lease, or no one could tell who leads.
                let mine = c.me.node_id.to_string();
                if kv.lease() != lease || kv.value() != mine.as_bytes() {
                    warn!(value = %String::from_utf8_lossy(kv.value()), "the controller key was overwritten: restoring it");
                    let txn = Txn::new()
                        .when([Compare::create_revision(
                            key.clone(),
                            CompareOp::Equal,
                            held,
                        )])
                        .and_then([TxnOp::put(
                            key,
                            mine,
                            Some(PutOptions::new().with_lease(lease)),
                        )]);
                    c.client.kv_client().txn(txn).await?;
                }
            }
            _ => {
                warn!("lost the controller role");
                c.controller_revision.store(0, Ordering::SeqCst);
            }
        }
        return Ok(());
    }
    if lease == 0 {
        return Ok(());
    }
    if let Some(kv) = current {
        // A controller key lives under its holder's lease; one without a lease was written
        // by hand and would never go away: remove it (if unchanged) so a broker can be
        // elected.
        if kv.lease() == 0 {
            warn!(value = %String::from_utf8_lossy(kv.value()), "removing a controller key that no broker holds");
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    kv.mod_revision(),
                )])
                .and_then([TxnOp::delete(key, None)]);
            c.client.kv_client().txn(txn).await?;
        }
        return Ok(());
    }
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            c.me.node_id.to_string(),
            Some(PutOptions::new().with_lease(lease)),
        )]);
    let response = c.client.kv_client().txn(txn).await?;
    c.set_status(None);
    if response.succeeded() {
        let revision = response.header().map_or(0, |h| h.revision());
        c.controller_revision.store(revision, Ordering::SeqCst);
        info!(node_id = c.me.node_id, "elected controller");
    }
    Ok(())
}

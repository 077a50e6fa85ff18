//! Following the cluster's keys: a full read, then a watch from the revision after it,
//! applying each response's events in order to a new image. When the watch breaks (etcd
//! down, history compacted) the image is rebuilt from a new full read: the broker keeps the
//! last image meanwhile and goes on serving what it leads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, KeyValue, WatchOptions};
use sluice_cluster::{BrokerInfo, MetadataImage, TopicMeta};
use tracing::debug;

use crate::keys::{self, Key, Keys};
use crate::EtcdCoordinator;

/// The image at the current revision, read in one range request.
pub async fn load(
    client: &Client,
    keys: &Keys,
    cluster_id: &str,
) -> Result<(MetadataImage, i64), etcd_client::Error> {
    let response = client
        .kv_client()
        .get(keys.prefix(), Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = response.header().map_or(0, |h| h.revision());
    let mut image = MetadataImage {
        cluster_id: cluster_id.to_string(),
        controller_id: -1,
        revision,
        ..Default::default()
    };
    for kv in response.kvs() {
        apply_put(&mut image, keys, kv);
    }
    Ok((image, revision))
}

fn apply_put(image: &mut MetadataImage, keys: &Keys, kv: &KeyValue) {
    let Ok(key) = kv.key_str() else { return };
    match keys.parse(key) {
        Key::Broker(id) => {
            if let Some(mut b) = keys::parse::<BrokerInfo>(key, kv.value()) {
                b.incarnation = kv.create_revision();
                image.brokers.insert(id, b);
            }
        }
        Key::Controller => {
            image.controller_id = std::str::from_utf8(kv.value())
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1);
        }
        Key::Topic(name) => {
            if let Some(mut t) = keys::parse::<TopicMeta>(key, kv.value()) {
                t.revision = kv.mod_revision();
                image.topics.insert(name.to_string(), Arc::new(t));
            }
        }
        Key::GroupConfigs(group) => {
            if let Some(c) = keys::parse::<BTreeMap<String, String>>(key, kv.value()) {
                image.group_configs.insert(group.to_string(), c);
            }
        }
        Key::Other => {}
    }
}

fn apply_delete(image: &mut MetadataImage, keys: &Keys, kv: &KeyValue) {
    let Ok(key) = kv.key_str() else { return };
    match keys.parse(key) {
        Key::Broker(id) => {
            image.brokers.remove(&id);
        }
        Key::Controller => image.controller_id = -1,
        Key::Topic(name) => {
            image.topics.remove(name);
        }
        Key::GroupConfigs(group) => {
            image.group_configs.remove(group);
        }
        Key::Other => {}
    }
}

/// Follows the keys from `revision` until the coordinator is dropped.
pub fn spawn(coordinator: &Arc<EtcdCoordinator>, revision: i64) {
    let weak = Arc::downgrade(coordinator);
    tokio::spawn(async move {
        let mut from = revision;
        loop {
            let Some(c) = weak.upgrade() else { return };
            let ended = follow(&c, from).await;
            c.set_status(Some(ended));
            // Start again from a full read: events missed meanwhile are in it.
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let cluster_id = c.cluster_id();
                match load(&c.client, &c.keys, &cluster_id).await {
                    Ok((image, revision)) => {
                        c.image.send_replace(Arc::new(image));
                        c.set_status(None);
                        from = revision + 1;
                        break;
                    }
                    Err(e) => c.set_status(Some(e.to_string())),
                }
            }
            drop(c);
        }
    });
}

/// Applies watch responses from `revision` on; returns why the watch ended.
async fn follow(c: &Arc<EtcdCoordinator>, revision: i64) -> String {
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision);
    let mut stream = match c
        .client
        .watch_client()
        .watch(c.keys.prefix(), Some(options))
        .await
    {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    loop {
        let response = match stream.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return "the watch ended".into(),
            Err(e) => return e.to_string(),
        };
        if response.canceled() {
            return format!("the watch was cancelled: {}", response.cancel_reason());
        }
        if response.events().is_empty() {
            continue;
        }
        let mut image = (**c.image.borrow()).clone();
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            // The events' own revision, not the header's: the header may be ahead of what
            // this response carries, and a commit waits for the image to hold its revision.
            image.revision = image.revision.max(kv.mod_revision());
            match event.event_type() {
                EventType::Put => apply_put(&mut image, &c.keys, kv),
                EventType::Delete => apply_delete(&mut image, &c.keys, kv),
            }
        }
        debug!(revision = image.revision, "metadata image updated");
        c.image.send_replace(Arc::new(image));
    }
}

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
    for change in response.kvs().iter().filter_map(|kv| Change::of(kv, false)) {
        apply(&mut image, keys, &change);
    }
    Ok((image, revision))
}

/// One key's change, as a full read or a watch event gives it.
struct Change<'a> {
    key: &'a str,
    value: &'a [u8],
    create_revision: i64,
    mod_revision: i64,
    deleted: bool,
}

impl<'a> Change<'a> {
    /// A key read or put (`deleted` false), or deleted; None for a key that is not UTF-8.
    fn of(kv: &'a KeyValue, deleted: bool) -> Option<Change<'a>> {
        Some(Change {
            key: kv.key_str().ok()?,
            value: kv.value(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            deleted,
        })
    }
}

/// Applies one key's change to `image`. Keys outside the cluster's layout and records this
/// version cannot read are ignored (the latter with a warning).
fn apply(image: &mut MetadataImage, keys: &Keys, change: &Change<'_>) {
    let (key, value) = (change.key, change.value);
    if change.deleted {
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
        return;
    }
    match keys.parse(key) {
        Key::Broker(id) => {
            if let Some(mut b) = keys::parse::<BrokerInfo>(key, value) {
                // A broker that registers again is a new incarnation.
                b.incarnation = change.create_revision;
                image.brokers.insert(id, b);
            }
        }
        Key::Controller => {
            image.controller_id = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1);
        }
        Key::Topic(name) => {
            if let Some(mut t) = keys::parse::<TopicMeta>(key, value) {
                // What a controller's commit compares against.
                t.revision = change.mod_revision;
                image.topics.insert(name.to_string(), Arc::new(t));
            }
        }
        Key::GroupConfigs(group) => {
            if let Some(c) = keys::parse::<BTreeMap<String, String>>(key, value) {
                image.group_configs.insert(group.to_string(), c);
            }
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
            let deleted = event.event_type() == EventType::Delete;
            let Some(change) = event.kv().and_then(|kv| Change::of(kv, deleted)) else {
                continue;
            };
            // The events' own revision, not the header's: the header may be ahead of what
            // this response carries, and a commit waits for the image to hold its revision.
            image.revision = image.revision.max(change.mod_revision);
            apply(&mut image, &c.keys, &change);
        }
        debug!(revision = image.revision, "metadata image updated");
        c.image.send_replace(Arc::new(image));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put<'a>(key: &'a str, value: &'a [u8], create: i64, modified: i64) -> Change<'a> {
        Change {
            key,
            value,
            create_revision: create,
            mod_revision: modified,
            deleted: false,
        }
    }

    fn delete(key: &str) -> Change<'_> {
        Change {
            key,
            value: b"",
            create_revision: 0,
            mod_revision: 0,
            deleted: true,
        }
    }

    const TOPIC: &[u8] = br#"{"name":"t","id":"00000000-0000-0000-0000-000000000007","partitions":[{"replicas":[1,2],"leader":1,"leader_epoch":3,"isr":[1,2],"partition_epoch":4}]}"#;

    #[test]
    fn puts_fill_the_image_with_the_revisions_a_commit_and_an_election_need() {
        let keys = Keys::new("c");
        let mut image = MetadataImage::default();
        let broker = br#"{"node_id":2,"host":"10.0.0.2","port":9092,"rack":"r1"}"#;
        apply(&mut image, &keys, &put(&keys.broker(2), broker, 40, 41));
        apply(&mut image, &keys, &put(&keys.controller(), b"2", 42, 42));
        apply(&mut image, &keys, &put(&keys.topic("t"), TOPIC, 43, 50));
        apply(
            &mut image,
            &keys,
            &put(
                &keys.group_configs("g"),
                br#"{"session.timeout.ms":"9000"}"#,
                44,
                44,
            ),
        );
        let b = &image.brokers[&2];
        assert_eq!(
            (b.host.as_str(), b.port, b.rack.as_deref()),
            ("10.0.0.2", 9092, Some("r1"))
        );
        assert_eq!(
            b.incarnation, 40,
            "a registration is known by its create revision"
        );
        assert_eq!(image.controller_id, 2);
        let t = image.topic("t").unwrap();
        assert_eq!(t.revision, 50, "a topic by its last modification");
        assert_eq!(t.partitions[0].leader_epoch, 3);
        assert_eq!(image.group_configs["g"]["session.timeout.ms"], "9000");
    }

    #[test]
    fn deletes_remove_what_they_name_and_a_lost_controller_is_minus_one() {
        let keys = Keys::new("c");
        let mut image = MetadataImage::default();
        apply(
            &mut image,
            &keys,
            &put(
                &keys.broker(1),
                br#"{"node_id":1,"host":"h","port":1}"#,
                1,
                1,
            ),
        );
        apply(&mut image, &keys, &put(&keys.controller(), b"1", 2, 2));
        apply(&mut image, &keys, &put(&keys.topic("t"), TOPIC, 3, 3));
        apply(
            &mut image,
            &keys,
            &put(&keys.group_configs("g"), b"{}", 4, 4),
        );
        for key in [
            keys.broker(1),
            keys.controller(),
            keys.topic("t"),
            keys.group_configs("g"),
        ] {
            apply(&mut image, &keys, &delete(&key));
        }
        assert!(image.brokers.is_empty() && image.topics.is_empty());
        assert!(image.group_configs.is_empty());
        assert_eq!(image.controller_id, -1);
    }

    #[test]
    fn unreadable_records_and_foreign_keys_leave_the_image_as_it_was() {
        let keys = Keys::new("c");
        let mut image = MetadataImage::default();
        apply(&mut image, &keys, &put(&keys.topic("t"), TOPIC, 3, 3));
        apply(
            &mut image,
            &keys,
            &put(&keys.topic("t"), b"{\"name\":", 3, 9),
        );
        assert_eq!(
            image.topic("t").unwrap().revision,
            3,
            "the readable record stays"
        );
        apply(&mut image, &keys, &put(&keys.broker(5), b"not json", 9, 9));
        apply(
            &mut image,
            &keys,
            &put(
                "/sluice/other/brokers/6",
                br#"{"node_id":6,"host":"h","port":1}"#,
                9,
                9,
            ),
        );
        assert!(image.brokers.is_empty());
        apply(&mut image, &keys, &put(&keys.controller(), b"nobody", 9, 9));
        assert_eq!(
            image.controller_id, -1,
            "an unreadable controller is no controller"
        );
    }
}

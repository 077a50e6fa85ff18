//! Following the cluster's keys: a full read, then a watch from the revision after it,
//! applying each response's events in order to a new image. When the watch breaks (etcd
//! down, history compacted) the image is rebuilt from a new full read: the broker keeps the
//! last image meanwhile and goes on serving what it leads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};

use etcd_client::{Client, EventType, GetOptions, KeyValue, WatchOptions};
use sluice_cluster::validate::{self, ConfigChecks};
use sluice_cluster::{BrokerInfo, MetadataImage, TopicMeta};
use tracing::{debug, warn};

use crate::keys::{self, Key, Keys};
use crate::EtcdCoordinator;

/// The image at the current revision, read in one range request; records that fail their
/// checks are skipped (and counted in `skipped`).
pub async fn load(
    client: &Client,
    keys: &Keys,
    cluster_id: &str,
    checks: &ConfigChecks,
    skipped: &AtomicU64,
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
    // Registrations first: the controller key is checked against them.
    let mut changes: Vec<Change<'_>> = response
        .kvs()
        .iter()
        .filter_map(|kv| Change::of(kv, false))
        .collect();
    changes.sort_by_key(|c| !matches!(keys.parse(c.key), Key::Broker(_)));
    for change in &changes {
        apply_checked(&mut image, keys, change, checks, skipped);
    }
    Ok((image, revision))
}

/// One key's change, as a full read or a watch event gives it.
struct Change<'a> {
    key: &'a str,
    value: &'a [u8],
    create_revision: i64,
    mod_revision: i64,
    /// The lease the key lives under (0: none).
    lease: i64,
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
            lease: kv.lease(),
            deleted,
        })
    }
}

/// `apply`, logging and counting a refused record.
fn apply_checked(
    image: &mut MetadataImage,
    keys: &Keys,
    change: &Change<'_>,
    checks: &ConfigChecks,
    skipped: &AtomicU64,
) {
    if let Err(why) = apply(image, keys, change, checks) {
        skipped.fetch_add(1, Ordering::Relaxed);
        warn!(key = %change.key, reason = %why, "skipping an invalid metadata record");
    }
}

/// Applies one key's change to `image`, or says why the record is refused (the image keeps
/// what it had for the key). Keys outside the cluster's layout are ignored.
fn apply(
    image: &mut MetadataImage,
    keys: &Keys,
    change: &Change<'_>,
    checks: &ConfigChecks,
) -> Result<(), String> {
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
            Key::ScramUser(user) => {
                image.scram_users.remove(user);
            }
            Key::Other => {}
        }
        return Ok(());
    }
    match keys.parse(key) {
        Key::Broker(id) => {
            // A broker registers under its lease, so it disappears when it stops.
            if change.lease == 0 {
                return Err("a registration without a lease".into());
            }
            let mut b = keys::parse::<BrokerInfo>(key, value).ok_or("unreadable")?;
            validate::broker(id, &b)?;
            // A broker that registers again is a new incarnation.
            b.incarnation = change.create_revision;
            image.brokers.insert(id, b);
        }
        Key::Controller => {
            // The controller holds the key under its lease; its value is a registered broker.
            let id = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<i32>().ok())
                .ok_or("not a node id")?;
            if change.lease == 0 {
                return Err(format!("controller {id} without a lease"));
            }
            if !image.brokers.contains_key(&id) {
                return Err(format!("controller {id} is not a registered broker"));
            }
            image.controller_id = id;
        }
        Key::Topic(name) => {
            let mut t = keys::parse::<TopicMeta>(key, value).ok_or("unreadable")?;
            validate::topic(name, &t, checks)?;
            // What a controller's commit compares against.
            t.revision = change.mod_revision;
            image.topics.insert(name.to_string(), Arc::new(t));
        }
        Key::GroupConfigs(group) => {
            let c = keys::parse::<BTreeMap<String, String>>(key, value).ok_or("unreadable")?;
            (checks.group)(&c)?;
            image.group_configs.insert(group.to_string(), c);
        }
        Key::ScramUser(user) => {
            let c = keys::parse::<sluice_cluster::ScramUser>(key, value).ok_or("unreadable")?;
            validate::scram_user(user, &c)?;
            image.scram_users.insert(user.to_string(), c);
        }
        Key::Other => {}
    }
    Ok(())
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
                match load(
                    &c.client,
                    &c.keys,
                    &cluster_id,
                    &c.settings.checks,
                    &c.skipped,
                )
                .await
                {
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
            apply_checked(&mut image, &c.keys, &change, &c.settings.checks, &c.skipped);
        }
        debug!(revision = image.revision, "metadata image updated");
        c.image.send_replace(Arc::new(image));
    }
}

#[cfg(test)]
#[allow(unused_must_use)]
mod tests {
    use super::*;

    fn put<'a>(key: &'a str, value: &'a [u8], create: i64, modified: i64) -> Change<'a> {
        Change {
            key,
            value,
            create_revision: create,
            mod_revision: modified,
            lease: 77,
            deleted: false,
        }
    }

    /// A put made without a lease (as `etcdctl put` does).
    fn put_leaseless<'a>(key: &'a str, value: &'a [u8]) -> Change<'a> {
        Change {
            lease: 0,
            ..put(key, value, 60, 60)
        }
    }

    fn in_range(c: &BTreeMap<String, String>) -> Result<(), String> {
        match c.get("min.insync.replicas").map(|v| v.parse::<i32>()) {
            Some(Ok(n)) if n >= 1 => Ok(()),
            Some(_) => Err("min.insync.replicas must be at least 1".into()),
            None => Ok(()),
        }
    }

    const CHECKS: ConfigChecks = ConfigChecks {
        topic: in_range,
        group: in_range,
    };

    /// Applies `change`, Ok or the reason it was refused.
    fn apply(image: &mut MetadataImage, keys: &Keys, change: &Change<'_>) -> Result<(), String> {
        super::apply(image, keys, change, &CHECKS)
    }

    fn delete(key: &str) -> Change<'_> {
        Change {
            key,
            value: b"",
            create_revision: 0,
            mod_revision: 0,
            lease: 0,
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
        let before = image.controller_id;
        apply(&mut image, &keys, &put(&keys.controller(), b"nobody", 9, 9));
        assert_eq!(
            image.controller_id, before,
            "an unreadable controller record is skipped"
        );
    }

    #[test]
    fn records_that_fail_their_checks_leave_the_image_as_it_was() {
        let keys = Keys::new("c");
        let mut image = MetadataImage::default();
        let broker = br#"{"node_id":2,"host":"10.0.0.2","port":9092}"#;
        assert_eq!(
            apply(&mut image, &keys, &put(&keys.broker(2), broker, 1, 1)),
            Ok(())
        );
        assert_eq!(
            apply(&mut image, &keys, &put(&keys.controller(), b"2", 2, 2)),
            Ok(())
        );
        assert_eq!(
            apply(&mut image, &keys, &put(&keys.topic("t"), TOPIC, 3, 3)),
            Ok(())
        );
        // A topic whose name could leave the data directory.
        let escaping = br#"{"name":"../x","id":"00000000-0000-0000-0000-000000000008","partitions":[{"replicas":[2],"leader":2,"leader_epoch":0,"isr":[2]}]}"#;
        assert!(apply(&mut image, &keys, &put(&keys.topic("../x"), escaping, 4, 4)).is_err());
        // A topic record replaced by one with its leader outside its replicas, or a
        // setting out of range: the readable, valid record stays.
        let bad_leader = br#"{"name":"t","id":"00000000-0000-0000-0000-000000000007","partitions":[{"replicas":[1,2],"leader":9,"leader_epoch":3,"isr":[1,2]}]}"#;
        assert!(apply(&mut image, &keys, &put(&keys.topic("t"), bad_leader, 3, 5)).is_err());
        let zero_min_isr = br#"{"name":"t","id":"00000000-0000-0000-0000-000000000007","configs":{"min.insync.replicas":"0"},"partitions":[{"replicas":[1,2],"leader":1,"leader_epoch":3,"isr":[1,2]}]}"#;
        assert!(apply(
            &mut image,
            &keys,
            &put(&keys.topic("t"), zero_min_isr, 3, 6)
        )
        .is_err());
        assert_eq!(image.topic("t").unwrap().revision, 3);
        assert_eq!(image.topics.len(), 1);
        // A registration without a lease, or naming another broker, or a host with a path.
        let fake = br#"{"node_id":9,"host":"attacker.example","port":9092}"#;
        assert!(apply(&mut image, &keys, &put_leaseless(&keys.broker(9), fake)).is_err());
        assert!(apply(&mut image, &keys, &put(&keys.broker(8), fake, 7, 7)).is_err());
        let path = br#"{"node_id":9,"host":"a/b","port":9092}"#;
        assert!(apply(&mut image, &keys, &put(&keys.broker(9), path, 7, 7)).is_err());
        assert_eq!(image.brokers.keys().copied().collect::<Vec<_>>(), vec![2]);
        // A controller that is not a registered broker, or written without a lease.
        assert!(apply(&mut image, &keys, &put(&keys.controller(), b"99", 2, 8)).is_err());
        assert!(apply(&mut image, &keys, &put_leaseless(&keys.controller(), b"2")).is_err());
        assert_eq!(image.controller_id, 2);
        // Group settings out of range.
        let group = br#"{"min.insync.replicas":"0"}"#;
        assert!(apply(
            &mut image,
            &keys,
            &put(&keys.group_configs("g"), group, 9, 9)
        )
        .is_err());
        assert!(image.group_configs.is_empty());
    }
}

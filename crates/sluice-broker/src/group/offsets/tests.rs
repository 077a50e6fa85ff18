//! Unit tests of `offsets`.

use std::collections::BTreeMap;

use super::*;
use crate::broker::tests::broker;

fn commit(topic: &str, partition: i32, offset: i64) -> OffsetCommit {
    OffsetCommit {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: 3,
        metadata: Some("m".into()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lag_is_log_end_minus_committed() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    let t = b
        .admin
        .create_topic("lagging", 2, 1, BTreeMap::new(), false)
        .unwrap();
    let batch = batch::build_batch(
        1,
        &[(None, Some(b"v")), (None, Some(b"w")), (None, Some(b"x"))],
    );
    b.replicas
        .append(
            &t.partitions[0],
            batch.into(),
            -1,
            crate::AppendOrigin::Client,
        )
        .unwrap()
        .wait(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let r = b
        .groups
        .commit_offsets(
            "g",
            -1,
            "",
            None,
            vec![commit("lagging", 0, 1), commit("lagging", 1, 0)],
        )
        .await
        .unwrap();
    assert!(r.iter().all(|r| r.is_ok()));
    let lag = b.groups.group_lag("g");
    let by_partition: Vec<(i32, i64, i64, i64)> = lag
        .iter()
        .map(|l| (l.partition, l.committed, l.log_end, l.lag))
        .collect();
    assert_eq!(by_partition, vec![(0, 1, 3, 2), (1, 0, 0, 0)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_of_empty_groups_expire_durably() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    b.admin
        .create_topic("expiring", 1, 1, BTreeMap::new(), false)
        .unwrap();
    b.groups
        .commit_offsets("old", -1, "", None, vec![commit("expiring", 0, 5)])
        .await
        .unwrap();
    b.groups
        .commit_offsets("fresh", -1, "", None, vec![commit("expiring", 0, 6)])
        .await
        .unwrap();
    {
        // Make "old" look eight days old.
        let mut groups = b.groups.groups.lock();
        let g = groups.get_mut("old").unwrap();
        g.state_since_ms -= 8 * 24 * 3600 * 1000;
        for c in g.offsets.values_mut() {
            c.commit_timestamp -= 8 * 24 * 3600 * 1000;
        }
    }
    b.groups.expire_offsets();
    assert!(
        b.groups.describe_group("old").is_none(),
        "expired and forgotten"
    );
    assert_eq!(
        b.groups.fetch_offsets("fresh", None)[0].1[0]
            .1
            .as_ref()
            .unwrap()
            .offset,
        6
    );
    b.shutdown();
    drop(b);
    let b = broker(dir.path());
    assert!(
        b.groups.fetch_offsets("old", None).is_empty(),
        "the expiry was written to __consumer_offsets"
    );
    let fresh = b.groups.fetch_offsets("fresh", None);
    let c = fresh[0].1[0].1.as_ref().unwrap();
    assert_eq!(
        (c.offset, c.leader_epoch, c.metadata.as_str()),
        (6, 3, "m"),
        "offset, epoch and metadata round trip"
    );
}

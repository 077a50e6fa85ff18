//! `sluice group ...` against the real broker: listing, lag, deleting, and resetting offsets
//! (a dry run by default), with the refusals an active group gets.

mod common;

use common::group::{produce, wait_until, Member};
use common::Broker;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

fn group(broker: &Broker, args: &[&str]) -> (i32, String, String) {
    common::sluice_at(broker, "group", args)
}

fn json(broker: &Broker, args: &[&str]) -> Value {
    common::sluice_json(broker, "group", args)
}

/// (committed, lag) of each partition of topic `g` in a description.
fn lags(d: &Value) -> Vec<(i64, i64)> {
    d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["committed"].as_i64().unwrap(), p["lag"].as_i64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_are_listed_described_with_lag_reset_and_deleted() {
    // The test member asks for a 3 s session (below the 6 s minimum by default).
    let broker = Broker::start_with_config("group.min.session.timeout.ms = 500\n");
    broker.create_topic("g", 2, &[]).await;
    produce(&broker, "g", 2, 10, "r").await; // five records in each partition
    let readers = broker.consumer(&[("group.id", "readers")]);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("g", 0, Offset::Offset(3))
        .unwrap();
    commit
        .add_partition_offset("g", 1, Offset::Offset(5))
        .unwrap();
    readers.commit(&commit, CommitMode::Sync).unwrap();

    let listed = json(&broker, &["list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "readers"),
        "{listed}"
    );
    let d = json(&broker, &["describe", "readers"]);
    assert_eq!(lags(&d), vec![(3, 2), (5, 0)]);
    assert_eq!(d["total_lag"], 2);
    let (code, table, _) = group(&broker, &["describe", "readers"]);
    assert_eq!(code, 0);
    assert!(table.contains("LAG") && table.contains("lag 2"), "{table}");

    // A dry run changes nothing; --execute does.
    let plan = json(
        &broker,
        &["reset-offsets", "readers", "--topic", "g", "--to-earliest"],
    );
    assert_eq!(plan["executed"], false);
    assert_eq!(plan["partitions"][0]["new"], 0);
    assert_eq!(
        lags(&json(&broker, &["describe", "readers"])),
        vec![(3, 2), (5, 0)]
    );
    json(
        &broker,
        &[
            "reset-offsets",
            "readers",
            "--topic",
            "g",
            "--to-earliest",
            "--execute",
        ],
    );
    assert_eq!(
        lags(&json(&broker, &["describe", "readers"])),
        vec![(0, 5), (0, 5)]
    );
    json(
        &broker,
        &["reset-offsets", "readers", "--to-offset", "4", "--execute"],
    );
    assert_eq!(
        lags(&json(&broker, &["describe", "readers"])),
        vec![(4, 1), (4, 1)]
    );
    json(
        &broker,
        &["reset-offsets", "readers", "--to-offset", "99", "--execute"],
    );
    assert_eq!(
        lags(&json(&broker, &["describe", "readers"])),
        vec![(5, 0), (5, 0)]
    );
    let far_future = (i64::MAX / 2).to_string();
    json(
        &broker,
        &[
            "reset-offsets",
            "readers",
            "--to-timestamp",
            "0",
            "--execute",
        ],
    );
    assert_eq!(
        lags(&json(&broker, &["describe", "readers"])),
        vec![(0, 5), (0, 5)]
    );
    json(
        &broker,
        &[
            "reset-offsets",
            "readers",
            "--to-timestamp",
            &far_future,
            "--execute",
        ],
    );
    assert_eq!(
        lags(&json(&broker, &["describe", "readers"])),
        vec![(5, 0), (5, 0)]
    );

    // An active group is neither reset nor deleted.
    let member = Member::start(&broker, "active", &["g"], &[]);
    wait_until(30, "the member is assigned", || {
        member.assignment().len() == 2
    });
    let active = json(&broker, &["describe", "active"]);
    assert_eq!(
        active["members"][0]["assignment"],
        serde_json::json!(["g-0", "g-1"]),
        "{active}"
    );
    let (code, _, err) = group(
        &broker,
        &[
            "reset-offsets",
            "active",
            "--topic",
            "g",
            "--to-earliest",
            "--execute",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = group(&broker, &["delete", "active"]);
    assert_eq!(code, 1);
    assert!(err.contains("NON_EMPTY_GROUP"), "{err}");
    member.close();
    // A KIP-848 member's assignment comes from ConsumerGroupDescribe.
    let modern = Member::start(&broker, "modern", &["g"], &[("group.protocol", "consumer")]);
    wait_until(30, "the KIP-848 member is assigned", || {
        modern.assignment().len() == 2
    });
    wait_until(10, "its assignment is described", || {
        json(&broker, &["describe", "modern"])["members"][0]["assignment"]
            == serde_json::json!(["g-0", "g-1"])
    });
    modern.close();

    let (code, out, _) = group(&broker, &["delete", "readers"]);
    assert_eq!((code, out.as_str()), (0, "deleted: readers\n"));
    let (code, _, _) = group(&broker, &["describe", "readers"]);
    assert_eq!(code, 1, "a deleted group");

    // Bad arguments.
    let (code, _, _) = group(&broker, &["reset-offsets", "readers", "--topic", "g"]);
    assert_eq!(code, 2, "no target offset");
    let (code, _, _) = group(
        &broker,
        &["reset-offsets", "readers", "--to-offset", "soon"],
    );
    assert_eq!(code, 2);
    let (code, _, err) = group(
        &broker,
        &["reset-offsets", "readers", "--topic", "nope", "--to-latest"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
}

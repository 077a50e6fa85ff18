//! OffsetForLeaderEpoch (API 23) against the real broker: where an epoch ends, and the
//! errors for a stale or future current leader epoch.

mod common;

use common::raw::{batch, Raw};
use common::Broker;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

/// (error code, leader epoch, end offset) for one partition.
fn ask(b: &Broker, topic: &str, partition: i32, current: i32, epoch: i32) -> (i16, i32, i64) {
    let mut raw = Raw::connect(b);
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])]);
    let c = raw.send(ApiKey::OffsetForLeaderEpoch, 4, &req);
    let r: OffsetForLeaderEpochResponse = raw.receive_response(ApiKey::OffsetForLeaderEpoch, 4, c);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_current_epoch_ends_at_the_log_end() {
    let b = Broker::start();
    b.create_topic("epochs", 1, &[]).await;
    let mut raw = Raw::connect(&b);
    for _ in 0..3 {
        assert_eq!(raw.produce("epochs", batch(b"v")).error_code, 0);
    }
    assert_eq!(ask(&b, "epochs", 0, 0, 0), (0, 0, 3));
    assert_eq!(
        ask(&b, "epochs", 0, -1, 0),
        (0, 0, 3),
        "no current epoch given"
    );
    assert_eq!(
        ask(&b, "epochs", 0, 0, 7),
        (0, -1, -1),
        "an epoch this log never had"
    );
    assert_eq!(ask(&b, "epochs", 0, 4, 0).0, 75, "UNKNOWN_LEADER_EPOCH");
    assert_eq!(
        ask(&b, "epochs", 1, -1, 0).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    // The answer survives a restart (the epoch cache is on disk, or rebuilt from batches).
    let mut b = b;
    b.stop();
    std::fs::remove_file(
        b.data_dir()
            .join("epochs-0")
            .join("leader-epoch-checkpoint"),
    )
    .unwrap();
    b.restart();
    assert_eq!(ask(&b, "epochs", 0, 0, 0), (0, 0, 3));
    assert!(b
        .data_dir()
        .join("epochs-0/leader-epoch-checkpoint")
        .exists());
}

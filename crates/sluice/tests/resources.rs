//! Descriptors and partitions are bounded: segment files are opened when used and closed
//! when idle (least recently used first past the budget), partitions per broker are capped
//! (max.broker.partitions), and a create that fails leaves nothing behind.

mod common;

use std::time::Duration;

use common::raw::{served, Raw};
use common::Broker;
use rdkafka::admin::{AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::FutureRecord;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn more_partitions_than_descriptors_are_created_written_and_served() {
    // 512 descriptors: without the file cache, 2,000 partitions cannot even be created.
    let broker = Broker::start_with_fd_limit("", 512);
    let admin = broker.admin();
    let t = NewTopic::new("wide", 2000, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(T));
    let r = admin.create_topics([&t], &opts).await.unwrap();
    r[0].as_ref().expect("2,000 partitions created");
    assert!(
        broker.open_fds() < 300,
        "{} descriptors open",
        broker.open_fds()
    );

    // Write to every partition: files open as they are used, the least recently used close.
    let producer = broker.producer(&[("linger.ms", "20"), ("batch.num.messages", "10000")]);
    let sends = (0..2000).map(|p| {
        producer.send(
            FutureRecord::<(), _>::to("wide").partition(p).payload("x"),
            T,
        )
    });
    for delivered in futures::future::join_all(sends).await {
        delivered.expect("delivered");
    }
    assert!(
        broker.open_fds() < 512,
        "{} descriptors open",
        broker.open_fds()
    );
    // Connections still get descriptors.
    let held: Vec<Raw> = (0..50).map(|_| Raw::connect(&broker)).collect();
    assert!(served(&broker));
    drop(held);
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_beyond_the_broker_limit_are_refused() {
    let broker = Broker::start_with_config("max.broker.partitions = 100\n");
    let admin = broker.admin();
    let opts = AdminOptions::new();
    let ok = NewTopic::new("sixty", 60, TopicReplication::Fixed(1));
    admin.create_topics([&ok], &opts).await.unwrap()[0]
        .as_ref()
        .expect("created");
    assert_eq!(
        broker.create_topic_error("fifty", 50, &[]).await,
        RDKafkaErrorCode::PolicyViolation
    );
    let r = admin
        .create_partitions([&NewPartitions::new("sixty", 101)], &opts)
        .await
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::PolicyViolation
    );
    let leftovers: Vec<_> = std::fs::read_dir(broker.data_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("fifty-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_that_fails_half_way_leaves_nothing_behind() {
    let broker = Broker::start();
    // A file where partition 5's directory must go makes the create fail there.
    std::fs::write(broker.data_dir().join("blocked-5"), b"in the way").unwrap();
    let admin = broker.admin();
    let t = NewTopic::new("blocked", 10, TopicReplication::Fixed(1));
    let r = admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .unwrap();
    assert!(r[0].is_err());
    let dirs: Vec<String> = std::fs::read_dir(broker.data_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("blocked-") && n != "blocked-5")
        .collect();
    assert!(dirs.is_empty(), "left behind: {dirs:?}");
    assert!(
        broker.data_dir().join("blocked-5").is_file(),
        "not ours to remove"
    );
    // The name is free for a later create once the obstacle is gone.
    std::fs::remove_file(broker.data_dir().join("blocked-5")).unwrap();
    admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .unwrap()[0]
        .as_ref()
        .expect("created");
}

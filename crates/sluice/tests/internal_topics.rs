//! `__consumer_offsets` belongs to the broker: clients cannot create it first with their own
//! settings, delete it, alter it, add partitions (which would move groups to other
//! partitions and make committed offsets go backwards) or truncate it. Auto-creation through
//! Metadata gives it the broker's settings.

mod common;

use std::time::Duration;

use common::raw::Raw;
use common::Broker;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

const OFFSETS: &str = "__consumer_offsets";
const T: Duration = Duration::from_secs(10);

fn commit(broker: &Broker, group: &str, offset: i64) {
    let consumer: BaseConsumer = broker.config().set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("data", 0, Offset::Offset(offset))
        .unwrap();
    consumer
        .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .unwrap();
}

fn committed(broker: &Broker, group: &str) -> Offset {
    let consumer: BaseConsumer = broker.config().set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("data", 0);
    let c = consumer.committed_offsets(tpl, T).unwrap();
    c.find_partition("data", 0).unwrap().offset()
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_cannot_create_alter_grow_delete_or_truncate_the_offsets_topic() {
    let mut broker = Broker::start_with_config("offsets.topic.num.partitions = 7\n");
    let admin = broker.admin();
    let opts = AdminOptions::new();

    // Creating it first, with one partition and a delete policy, is refused.
    let mine =
        NewTopic::new(OFFSETS, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "delete");
    let r = admin.create_topics([&mine], &opts).await.unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidRequest
    );

    // Metadata auto-creation creates it with the broker's settings.
    let producer = broker.producer(&[("allow.auto.create.topics", "true")]);
    let md = producer.client().fetch_metadata(Some(OFFSETS), T).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 7);

    broker.create_topic("data", 1, &[]).await;
    commit(&broker, "g", 42);

    let r = admin
        .create_partitions([&NewPartitions::new(OFFSETS, 8)], &opts)
        .await
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidRequest
    );

    // (rust-rdkafka drops AlterConfigs' per-resource errors: ask over the raw protocol.)
    let mut raw = Raw::connect(&broker);
    let alter =
        AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str(OFFSETS))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("cleanup.policy"))
                .with_value(Some(StrBytes::from_static_str("delete")))])]);
    let c = raw.send(ApiKey::AlterConfigs, 2, &alter);
    let r: AlterConfigsResponse = raw.receive_response(ApiKey::AlterConfigs, 2, c);
    assert_eq!(r.responses[0].error_code, 42, "INVALID_REQUEST");

    let r = admin.delete_topics(&[OFFSETS], &opts).await.unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::TopicAuthorizationFailed
    );

    let mut tpl = TopicPartitionList::new();
    for p in 0..7 {
        tpl.add_partition_offset(OFFSETS, p, Offset::End).unwrap();
    }
    let r = admin.delete_records(&tpl, &opts).await.unwrap();
    for e in r.elements() {
        assert!(e.error().is_err(), "partition {} truncated", e.partition());
    }

    // Nothing changed: the topic keeps its 7 partitions and the commit survives a restart.
    let md = producer.client().fetch_metadata(Some(OFFSETS), T).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 7);
    drop(producer);
    broker.kill();
    broker.restart();
    assert_eq!(committed(&broker, "g"), Offset::Offset(42));
}

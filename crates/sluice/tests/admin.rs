//! Topic administration through librdkafka's admin client and raw requests where rdkafka has
//! no call (IncrementalAlterConfigs, DescribeCluster).

mod common;

use std::time::Duration;

use common::raw::Raw;
use common::Broker;
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeClusterResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;

const T: Duration = Duration::from_secs(10);

/// The client topics a listing shows (the consumer's FindCoordinator creates
/// `__consumer_offsets`, which Kafka lists too).
fn topic_names(broker: &Broker) -> Vec<String> {
    let consumer = broker.consumer(&[]);
    let md = consumer.fetch_metadata(None, T).unwrap();
    let mut names: Vec<String> = md
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|n| n != "__consumer_offsets")
        .collect();
    names.sort();
    names
}

fn partition_count(broker: &Broker, topic: &str) -> usize {
    let consumer = broker.consumer(&[]);
    let md = consumer.fetch_metadata(Some(topic), T).unwrap();
    md.topics()[0].partitions().len()
}

async fn create_error(
    broker: &Broker,
    topic: NewTopic<'_>,
    opts: &AdminOptions,
) -> Option<RDKafkaErrorCode> {
    let r = broker.admin().create_topics([&topic], opts).await.unwrap();
    r[0].as_ref().err().map(|(_, code)| *code)
}

#[tokio::test(flavor = "multi_thread")]
async fn create_list_and_delete_topics() {
    let broker = Broker::start();
    let admin = broker.admin();
    let opts = AdminOptions::new();
    broker.create_topic("alpha", 3, &[]).await;
    broker.create_topic("beta", 1, &[]).await;
    assert_eq!(topic_names(&broker), vec!["alpha", "beta"]);
    assert_eq!(partition_count(&broker, "alpha"), 3);

    let again = NewTopic::new("alpha", 3, TopicReplication::Fixed(1));
    assert_eq!(
        create_error(&broker, again, &opts).await,
        Some(RDKafkaErrorCode::TopicAlreadyExists)
    );
    let zero = NewTopic::new("gamma", 0, TopicReplication::Fixed(1));
    assert_eq!(
        create_error(&broker, zero, &opts).await,
        Some(RDKafkaErrorCode::InvalidPartitions)
    );
    let three = NewTopic::new("gamma", 1, TopicReplication::Fixed(3));
    assert_eq!(
        create_error(&broker, three, &opts).await,
        Some(RDKafkaErrorCode::InvalidReplicationFactor)
    );
    let bad_name = NewTopic::new("no spaces", 1, TopicReplication::Fixed(1));
    assert_eq!(
        create_error(&broker, bad_name, &opts).await,
        Some(RDKafkaErrorCode::InvalidTopic)
    );
    let bad_config =
        NewTopic::new("gamma", 1, TopicReplication::Fixed(1)).set("retention.mss", "5");
    assert_eq!(
        create_error(&broker, bad_config, &opts).await,
        Some(RDKafkaErrorCode::InvalidConfig)
    );
    let bad_value =
        NewTopic::new("gamma", 1, TopicReplication::Fixed(1)).set("segment.bytes", "big");
    assert_eq!(
        create_error(&broker, bad_value, &opts).await,
        Some(RDKafkaErrorCode::InvalidConfig)
    );
    let validate = NewTopic::new("gamma", 2, TopicReplication::Fixed(1));
    assert_eq!(
        create_error(&broker, validate, &AdminOptions::new().validate_only(true)).await,
        None
    );
    assert!(
        !topic_names(&broker).contains(&"gamma".to_string()),
        "validate_only creates nothing"
    );

    let r = admin.delete_topics(&["alpha"], &opts).await.unwrap();
    assert!(r[0].is_ok());
    assert_eq!(topic_names(&broker), vec!["beta"]);
    assert!(
        !broker.data_dir().join("alpha-0").exists(),
        "partition directories are removed"
    );
    let r = admin.delete_topics(&["alpha"], &opts).await.unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::UnknownTopicOrPartition
    );

    // A deleted name can be created again, empty.
    broker.create_topic("alpha", 1, &[]).await;
    let (low, high) = broker
        .consumer(&[])
        .fetch_watermarks("alpha", 0, T)
        .unwrap();
    assert_eq!((low, high), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_grow_and_never_shrink() {
    let mut broker = Broker::start();
    broker.create_topic("growing", 2, &[]).await;
    let admin = broker.admin();
    let r = admin
        .create_partitions([&NewPartitions::new("growing", 5)], &AdminOptions::new())
        .await
        .unwrap();
    assert!(r[0].is_ok());
    assert_eq!(partition_count(&broker, "growing"), 5);
    let r = admin
        .create_partitions([&NewPartitions::new("growing", 3)], &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidPartitions
    );
    // The new partitions take data and survive a restart.
    let producer = broker.producer(&[]);
    producer
        .send(
            FutureRecord::<(), _>::to("growing")
                .partition(4)
                .payload("p4"),
            T,
        )
        .await
        .unwrap();
    drop(producer);
    drop(admin);
    broker.stop();
    broker.restart();
    assert_eq!(partition_count(&broker, "growing"), 5);
    assert_eq!(
        broker
            .consumer(&[])
            .fetch_watermarks("growing", 4, T)
            .unwrap(),
        (0, 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_creation_follows_the_broker_setting() {
    let broker = Broker::start_with_config("\"num.partitions\" = 4\n");
    let producer = broker.producer(&[]);
    producer
        .send(FutureRecord::<(), _>::to("autocreated").payload("x"), T)
        .await
        .expect("auto-created");
    assert_eq!(partition_count(&broker, "autocreated"), 4);

    let strict = Broker::start_with_config("auto.create.topics.enable = false\n");
    let producer = strict.producer(&[("message.timeout.ms", "2000")]);
    let err = producer
        .send(FutureRecord::<(), _>::to("unknown").payload("x"), T)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.0.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::MessageTimedOut
            )
        ),
        "{err:?}"
    );
    assert!(topic_names(&strict).is_empty());
}

fn alter(raw: &mut Raw, topic: &str, ops: &[(&str, i8, Option<&str>)]) -> i16 {
    let configs = ops
        .iter()
        .map(|(name, op, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(name.to_string()))
                .with_config_operation(*op)
                .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(configs),
    ]);
    let c = raw.send(ApiKey::IncrementalAlterConfigs, 1, &req);
    let r: IncrementalAlterConfigsResponse =
        raw.receive_response(ApiKey::IncrementalAlterConfigs, 1, c);
    r.responses[0].error_code
}

async fn topic_config(broker: &Broker, topic: &str, name: &str) -> (String, String) {
    let r = broker
        .admin()
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = r[0].as_ref().unwrap();
    let entry = resource
        .get(name)
        .unwrap_or_else(|| panic!("{name} is described"));
    (entry.value.clone().unwrap(), format!("{:?}", entry.source))
}

#[tokio::test(flavor = "multi_thread")]
async fn configs_are_described_and_changed_at_run_time() {
    let broker = Broker::start_with_config("log.retention.ms = 3600000\n");
    broker
        .create_topic("tuned", 1, &[("retention.ms", "1000")])
        .await;
    assert_eq!(
        topic_config(&broker, "tuned", "retention.ms").await,
        ("1000".into(), "DynamicTopic".into())
    );
    assert_eq!(
        topic_config(&broker, "tuned", "segment.bytes").await,
        ("1073741824".into(), "Default".into())
    );
    broker.create_topic("plain", 1, &[]).await;
    assert_eq!(
        topic_config(&broker, "plain", "retention.ms").await,
        ("3600000".into(), "StaticBroker".into())
    );
    let described = broker
        .admin()
        .describe_configs([&ResourceSpecifier::Topic("plain")], &AdminOptions::new())
        .await
        .unwrap();
    assert!(
        described[0].as_ref().unwrap().entries.len() >= 15,
        "every setting is listed, defaults included"
    );

    // IncrementalAlterConfigs: small segments take effect without a restart.
    let mut raw = Raw::connect(&broker);
    assert_eq!(
        alter(&mut raw, "tuned", &[("segment.bytes", 0, Some("4096"))]),
        0
    );
    assert_eq!(
        topic_config(&broker, "tuned", "segment.bytes").await.0,
        "4096"
    );
    let producer = broker.producer(&[("linger.ms", "0")]);
    for i in 0..40 {
        producer
            .send(
                FutureRecord::<(), _>::to("tuned").payload(&format!("{i:0>500}")),
                T,
            )
            .await
            .unwrap();
    }
    let segments = std::fs::read_dir(broker.data_dir().join("tuned-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(segments >= 4, "segments rolled at 4096 bytes: {segments}");
    assert_eq!(
        alter(&mut raw, "tuned", &[("segment.bytes", 1, None)]),
        0,
        "DELETE restores the default"
    );
    assert_eq!(
        topic_config(&broker, "tuned", "segment.bytes").await.1,
        "Default"
    );
    assert_eq!(
        alter(&mut raw, "tuned", &[("cleanup.policy", 2, Some("compact"))]),
        0,
        "APPEND to a list"
    );
    assert_eq!(
        topic_config(&broker, "tuned", "cleanup.policy").await.0,
        "delete,compact"
    );
    assert_eq!(
        alter(&mut raw, "tuned", &[("segment.bytes", 0, Some("lots"))]),
        40,
        "INVALID_CONFIG"
    );
    assert_eq!(
        alter(&mut raw, "tuned", &[("no.such.setting", 0, Some("1"))]),
        40,
        "INVALID_CONFIG"
    );
    assert_eq!(
        alter(&mut raw, "nope", &[("segment.bytes", 0, Some("4096"))]),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    // Legacy AlterConfigs through rdkafka replaces the overrides.
    let r = broker
        .admin()
        .alter_configs(
            [&AlterConfig::new(ResourceSpecifier::Topic("tuned")).set("retention.ms", "5000")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(r[0].is_ok());
    assert_eq!(
        topic_config(&broker, "tuned", "retention.ms").await.0,
        "5000"
    );
    assert_eq!(
        topic_config(&broker, "tuned", "cleanup.policy").await.0,
        "delete"
    );

    // Broker settings are described too.
    let r = broker
        .admin()
        .describe_configs([&ResourceSpecifier::Broker(1)], &AdminOptions::new())
        .await
        .unwrap();
    let b = r[0].as_ref().unwrap();
    assert_eq!(
        b.get("log.retention.ms").unwrap().value.as_deref(),
        Some("3600000")
    );
    assert!(matches!(
        b.get("num.partitions").unwrap().source,
        ConfigSource::Default
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_cluster_names_this_broker() {
    let broker = Broker::start();
    let mut raw = Raw::connect(&broker);
    let c = raw.send(
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default(),
    );
    let r: DescribeClusterResponse = raw.receive_response(ApiKey::DescribeCluster, 1, c);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.controller_id.0, 1);
    assert_eq!(r.brokers.len(), 1);
    assert_eq!(r.brokers[0].port, broker.port as i32);
    assert!(!r.cluster_id.is_empty());
}

/// Topic creation writes files; it runs off the async threads, so other clients are served
/// while several large creates are under way.
#[tokio::test(flavor = "multi_thread")]
async fn large_topic_creates_do_not_stall_other_clients() {
    let broker = Broker::start();
    let creates: Vec<_> = (0..3)
        .map(|i| {
            let admin = broker.admin();
            tokio::spawn(async move {
                let name = format!("wide-{i}");
                let t = NewTopic::new(&name, 1500, TopicReplication::Fixed(1));
                let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)));
                admin.create_topics([&t], &opts).await.unwrap()[0]
                    .clone()
                    .expect("created");
            })
        })
        .collect();
    let mut raw = Raw::connect(&broker);
    let started = std::time::Instant::now();
    let mut slowest = Duration::ZERO;
    while !creates.iter().all(|c| c.is_finished()) {
        let asked = std::time::Instant::now();
        let c = raw.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let _: ApiVersionsResponse = raw.receive_response(ApiKey::ApiVersions, 3, c);
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    for c in creates {
        c.await.unwrap();
    }
    assert!(
        slowest < Duration::from_millis(300),
        "an ApiVersions waited {slowest:?} while creates ran for {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_outside_kafkas_ranges_are_refused() {
    let broker = Broker::start();
    for (name, value) in [
        ("retention.ms", "-5"),
        ("segment.ms", "0"),
        ("segment.bytes", "1"),
        ("flush.messages", "0"),
        ("min.cleanable.dirty.ratio", "2"),
        ("message.timestamp.after.max.ms", "-3"),
    ] {
        assert_eq!(
            broker
                .create_topic_error("ranged", 1, &[(name, value)])
                .await,
            RDKafkaErrorCode::InvalidConfig,
            "{name}={value}"
        );
    }
    assert!(!topic_names(&broker).contains(&"ranged".to_string()));
}

/// Admin tools call these at start-up: ACLs answer "security disabled" (no authorizer, as
/// Kafka without one), reassignments "none in progress", and both are advertised.
#[tokio::test(flavor = "multi_thread")]
async fn acls_and_reassignments_are_answered_honestly() {
    use kafka_protocol::messages::{
        DescribeAclsRequest, DescribeAclsResponse, ListPartitionReassignmentsRequest,
        ListPartitionReassignmentsResponse,
    };
    let broker = Broker::start();
    let mut raw = Raw::connect(&broker);
    let c = raw.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let versions: ApiVersionsResponse = raw.receive_response(ApiKey::ApiVersions, 3, c);
    for api in [ApiKey::DescribeAcls, ApiKey::ListPartitionReassignments] {
        assert!(
            versions.api_keys.iter().any(|k| k.api_key == api as i16),
            "{api:?} is advertised"
        );
    }
    let c = raw.send(
        ApiKey::DescribeAcls,
        2,
        &DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1),
    );
    let acls: DescribeAclsResponse = raw.receive_response(ApiKey::DescribeAcls, 2, c);
    assert_eq!(acls.error_code, 54, "SECURITY_DISABLED");
    assert!(acls.resources.is_empty());
    let c = raw.send(
        ApiKey::ListPartitionReassignments,
        0,
        &ListPartitionReassignmentsRequest::default().with_timeout_ms(1000),
    );
    let moving: ListPartitionReassignmentsResponse =
        raw.receive_response(ApiKey::ListPartitionReassignments, 0, c);
    assert_eq!(moving.error_code, 0);
    assert!(moving.topics.is_empty());
}

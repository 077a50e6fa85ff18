//! Group configs (Kafka 4's GROUP config resources): described with their defaults, changed
//! with IncrementalAlterConfigs within Kafka's ranges, kept across a restart, and applied to
//! the group's KIP-848 members.

mod common;

use common::raw::Raw;
use common::Broker;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

const GROUP: i8 = 32;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// (value, source) of every config of `group`.
fn describe(raw: &mut Raw, group: &str) -> Vec<(String, String, i8)> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(GROUP)
            .with_resource_name(s(group))
            .with_configuration_keys(None)]);
    let c = raw.send(ApiKey::DescribeConfigs, 4, &req);
    let r: DescribeConfigsResponse = raw.receive_response(ApiKey::DescribeConfigs, 4, c);
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
    r.results[0]
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_deref().unwrap_or("").to_string(),
                c.config_source,
            )
        })
        .collect()
}

fn value_of(configs: &[(String, String, i8)], name: &str) -> (String, i8) {
    let c = configs
        .iter()
        .find(|c| c.0 == name)
        .unwrap_or_else(|| panic!("{name} described"));
    (c.1.clone(), c.2)
}

/// Sets (op 0) or deletes (op 1) group configs; returns the error code.
fn alter(raw: &mut Raw, group: &str, ops: &[(&str, Option<&str>)]) -> i16 {
    let configs = ops
        .iter()
        .map(|(name, value)| {
            AlterableConfig::default()
                .with_name(s(name))
                .with_config_operation(if value.is_some() { 0 } else { 1 })
                .with_value(value.map(s))
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(GROUP)
            .with_resource_name(s(group))
            .with_configs(configs),
    ]);
    let c = raw.send(ApiKey::IncrementalAlterConfigs, 1, &req);
    let r: IncrementalAlterConfigsResponse =
        raw.receive_response(ApiKey::IncrementalAlterConfigs, 1, c);
    r.responses[0].error_code
}

#[tokio::test(flavor = "multi_thread")]
async fn group_configs_are_described_altered_kept_and_applied() {
    let mut broker = Broker::start_with_config("group.consumer.heartbeat.interval.ms = 4000\n");
    broker.create_topic("cfg", 1, &[]).await;
    let mut raw = Raw::connect(&broker);
    let configs = describe(&mut raw, "tuned");
    assert_eq!(
        value_of(&configs, "consumer.session.timeout.ms"),
        ("45000".into(), 5),
        "DEFAULT"
    );
    assert_eq!(
        value_of(&configs, "consumer.heartbeat.interval.ms"),
        ("4000".into(), 4),
        "STATIC_BROKER_CONFIG"
    );
    assert_eq!(
        value_of(&configs, "share.auto.offset.reset"),
        ("latest".into(), 5)
    );

    assert_eq!(
        alter(
            &mut raw,
            "tuned",
            &[
                ("consumer.heartbeat.interval.ms", Some("1234")),
                ("share.auto.offset.reset", Some("earliest"))
            ]
        ),
        0
    );
    let configs = describe(&mut raw, "tuned");
    assert_eq!(
        value_of(&configs, "consumer.heartbeat.interval.ms"),
        ("1234".into(), 8),
        "GROUP_CONFIG"
    );
    assert_eq!(
        value_of(&configs, "share.auto.offset.reset"),
        ("earliest".into(), 8)
    );
    // Another group keeps the defaults.
    assert_eq!(
        value_of(
            &describe(&mut raw, "other"),
            "consumer.heartbeat.interval.ms"
        )
        .0,
        "4000"
    );

    // Kafka's ranges and errors: INVALID_CONFIG (40), nothing changed.
    for bad in [
        ("consumer.heartbeat.interval.ms", "0"),
        ("consumer.heartbeat.interval.ms", "50000"), // not below the session timeout
        ("share.auto.offset.reset", "middle"),
        ("no.such.config", "1"),
    ] {
        assert_eq!(
            alter(&mut raw, "tuned", &[(bad.0, Some(bad.1))]),
            40,
            "{bad:?}"
        );
    }
    assert_eq!(
        value_of(
            &describe(&mut raw, "tuned"),
            "consumer.heartbeat.interval.ms"
        )
        .0,
        "1234"
    );

    // The group's KIP-848 members get its heartbeat interval.
    let join = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(kafka_protocol::messages::GroupId(s("tuned")))
        .with_member_id(s("member-one-0000000000"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30000)
        .with_subscribed_topic_names(Some(vec![TopicName(s("cfg"))]))
        .with_topic_partitions(Some(vec![]));
    let c = raw.send(ApiKey::ConsumerGroupHeartbeat, 0, &join);
    let r: ConsumerGroupHeartbeatResponse =
        raw.receive_response(ApiKey::ConsumerGroupHeartbeat, 0, c);
    assert_eq!(
        (r.error_code, r.heartbeat_interval_ms),
        (0, 1234),
        "{:?}",
        r.error_message
    );

    // Kept across a restart; DELETE goes back to the broker's value.
    drop(raw);
    broker.kill();
    broker.restart();
    let mut raw = Raw::connect(&broker);
    assert_eq!(
        value_of(
            &describe(&mut raw, "tuned"),
            "consumer.heartbeat.interval.ms"
        ),
        ("1234".into(), 8)
    );
    assert_eq!(
        alter(
            &mut raw,
            "tuned",
            &[("consumer.heartbeat.interval.ms", None)]
        ),
        0
    );
    assert_eq!(
        value_of(
            &describe(&mut raw, "tuned"),
            "consumer.heartbeat.interval.ms"
        ),
        ("4000".into(), 4)
    );
}

//! Three brokers and a real etcd: placement, routing, forwarding to the controller,
//! controller failover, restarts, duplicate node ids and etcd outages, driven with rdkafka.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::{
    coordinator_of, describe_cluster, leaders, metadata, stored_bytes, wait_until, Cluster,
};
use common::raw::Raw;
use common::{unsafe_kill, Broker};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterPartitionRequest, AlterPartitionResponse, BrokerId, CreatePartitionsRequest,
    CreatePartitionsResponse, ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    MetadataRequest, MetadataResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use rdkafka::Offset;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// CreateTopics sent to `b` itself (not to the controller, as rdkafka would): the error code.
fn create_topic_at(b: &Broker, topic: &str, partitions: i32) -> i16 {
    let mut raw = Raw::connect(b);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)])
        .with_timeout_ms(10_000);
    let c = raw.send(ApiKey::CreateTopics, 5, &req);
    let r: CreateTopicsResponse = raw.receive_response(ApiKey::CreateTopics, 5, c);
    r.topics[0].error_code
}

/// CreatePartitions sent to `b`, growing `topic` to `count` with `assignment`: the error code.
fn create_partitions_at(b: &Broker, topic: &str, count: i32, assignment: &[&[i32]]) -> i16 {
    let mut raw = Raw::connect(b);
    let assignments = assignment
        .iter()
        .map(|ids| {
            CreatePartitionsAssignment::default()
                .with_broker_ids(ids.iter().map(|&id| BrokerId(id)).collect())
        })
        .collect();
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name(topic))
            .with_count(count)
            .with_assignments(Some(assignments))])
        .with_timeout_ms(10_000);
    let c = raw.send(ApiKey::CreatePartitions, 3, &req);
    let r: CreatePartitionsResponse = raw.receive_response(ApiKey::CreatePartitions, 3, c);
    r.results[0].error_code
}

fn delete_topic_at(b: &Broker, topic: &str) -> i16 {
    let mut raw = Raw::connect(b);
    let req = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(name(topic)))
        ])
        .with_timeout_ms(10_000);
    let c = raw.send(ApiKey::DeleteTopics, 6, &req);
    let r: DeleteTopicsResponse = raw.receive_response(ApiKey::DeleteTopics, 6, c);
    r.responses[0].error_code
}

/// The coordinator `b` names for `group`, once it has one (the offsets topic exists).
fn coordinator_once_known(b: &Broker, group: &str) -> i32 {
    let mut node = -1;
    wait_until("the group has a coordinator", || {
        node = coordinator_of(b, group);
        node >= 0
    });
    node
}

async fn produce(b: &Broker, topic: &str, count: usize, tag: &str) {
    let producer = b.producer(&[]);
    let sends = (0..count).map(|i| {
        let value = format!("{tag}-{i}");
        let producer = &producer;
        async move {
            producer
                .send(
                    FutureRecord::to(topic).key(&value).payload(&value),
                    Duration::from_secs(30),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        }
    });
    for r in futures::future::join_all(sends).await {
        r.expect("acknowledged");
    }
}

/// One record to a given partition, acknowledged.
async fn send_one(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    partition: i32,
    value: &str,
) {
    producer
        .send(
            FutureRecord::to(topic)
                .partition(partition)
                .key(value)
                .payload(value),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("acknowledged");
}

/// Every value in `topic`'s `partitions` partitions, read through `b` from the beginning.
fn read_all(b: &Broker, topic: &str, partitions: i32, count: usize) -> BTreeSet<String> {
    let consumer: BaseConsumer = b.consumer(&[]);
    let mut values = BTreeSet::new();
    let all: Vec<i32> = (0..partitions).collect();
    common::consume(&consumer, topic, &all, Offset::Beginning, count, |m| {
        values.insert(String::from_utf8(common::payload(m)).unwrap());
    });
    values
}

/// `sluice cluster status --output json` asked of `b`: exit status and the report.
fn cluster_status(b: &Broker) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["cluster", "status", "--output", "json", "--bootstrap"])
        .arg(b.bootstrap())
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn expected(tag: &str, count: usize) -> BTreeSet<String> {
    (0..count).map(|i| format!("{tag}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_spread_evenly_and_clients_find_their_leaders() {
    let c = Cluster::start(3);
    let [b1, b2, b3] = [&c.brokers[0], &c.brokers[1], &c.brokers[2]];
    b3.create_topic("spread", 12, &[]).await;
    let placed = leaders(b3, "spread");
    let mut per_broker = BTreeMap::new();
    for leader in &placed {
        *per_broker.entry(*leader).or_insert(0) += 1;
    }
    assert_eq!(per_broker, BTreeMap::from([(1, 4), (2, 4), (3, 4)]));
    for b in [b1, b2] {
        wait_until("every broker sees the same leaders", || {
            leaders(b, "spread") == placed
        });
    }
    // Each client knows one broker only; Metadata leads it to all three.
    produce(b1, "spread", 1200, "v").await;
    assert_eq!(read_all(b2, "spread", 12, 1200), expected("v", 1200));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_is_coordinated_by_its_offsets_partition_leader() {
    let c = Cluster::start(3);
    let b1 = &c.brokers[0];
    b1.create_topic("orders", 3, &[]).await;
    produce(b1, "orders", 300, "o").await;
    // A group whose coordinator is not the broker the client bootstraps from.
    let group = (0..100)
        .map(|i| format!("group-{i}"))
        .find(|g| coordinator_once_known(b1, g) != 1)
        .unwrap();
    let coordinator = coordinator_once_known(b1, &group);
    let consumer: BaseConsumer =
        b1.consumer(&[("group.id", &group), ("auto.offset.reset", "earliest")]);
    consumer.subscribe(&["orders"]).unwrap();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 300 {
        assert!(Instant::now() < deadline, "consumed {} of 300", seen.len());
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            seen.insert(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(seen, expected("o", 300));
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(consumer);
    // The committed offsets are there, on the coordinator; another broker says so.
    let other = c
        .brokers
        .iter()
        .find(|b| b.port != c.brokers[(coordinator - 1) as usize].port)
        .unwrap();
    assert_eq!(
        committed_at(&c.brokers[(coordinator - 1) as usize], &group),
        (0, 300),
        "every record's offset is committed"
    );
    assert_eq!(
        committed_at(other, &group).0,
        16,
        "NOT_COORDINATOR elsewhere"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_created_and_deleted_at_any_broker_are_seen_by_all() {
    let c = Cluster::start(3);
    let controller = c.controller(&c.brokers[0]);
    assert!(controller > 0);
    let others: Vec<&Broker> = c
        .brokers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as i32 + 1 != controller)
        .map(|(_, b)| b)
        .collect();
    // Sent to a broker that is not the controller: forwarded to it.
    assert_eq!(create_topic_at(others[0], "forwarded", 6), 0);
    assert_eq!(
        create_topic_at(others[1], "forwarded", 6),
        36,
        "TOPIC_ALREADY_EXISTS"
    );
    for b in &c.brokers {
        wait_until("every broker sees the new topic", || {
            leaders(b, "forwarded").len() == 6
        });
    }
    let hosted = |b: &Broker| {
        std::fs::read_dir(b.data_dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("forwarded-")
            })
            .count()
    };
    let total: usize = c.brokers.iter().map(hosted).sum();
    assert_eq!(total, 6, "each partition has one replica, on its leader");
    // Auto-creation at a broker that is not the controller: the controller creates the topic
    // and the Metadata answer, from the asking broker, already has it.
    let mut raw = Raw::connect(others[1]);
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("auto")))
        ]))
        .with_allow_auto_topic_creation(true);
    let corr = raw.send(ApiKey::Metadata, 12, &req);
    let md: MetadataResponse = raw.receive_response(ApiKey::Metadata, 12, corr);
    assert_eq!(md.topics[0].error_code, 0);
    assert_eq!(md.topics[0].partitions.len(), 1);
    let leader = md.topics[0].partitions[0].leader_id.0;
    assert!(leader > 0);
    wait_until("the leader has the auto-created topic", || {
        leaders(&c.brokers[(leader - 1) as usize], "auto") == vec![leader]
    });
    // New partitions placed by hand, at a broker that is not the controller.
    assert_eq!(
        create_partitions_at(others[0], "forwarded", 8, &[&[9], &[1]]),
        39,
        "INVALID_REPLICA_ASSIGNMENT: no broker 9"
    );
    assert_eq!(
        create_partitions_at(others[0], "forwarded", 8, &[&[2], &[3]]),
        0
    );
    for b in &c.brokers {
        wait_until(
            "every broker sees the new partitions where they were put",
            || leaders(b, "forwarded")[6..] == [2, 3],
        );
    }
    assert_eq!(c.brokers.iter().map(hosted).sum::<usize>(), 8);
    assert_eq!(delete_topic_at(others[1], "forwarded"), 0);
    for b in &c.brokers {
        wait_until("every broker drops the deleted topic", || {
            leaders(b, "forwarded").is_empty() && hosted(b) == 0
        });
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_controller_is_replaced_and_topics_can_be_created_again() {
    let mut c = Cluster::start(3);
    let controller = c.controller(&c.brokers[0]);
    c.brokers[0].create_topic("before-failover", 3, &[]).await;
    let killed_at = Instant::now();
    c.broker(controller).kill();
    let survivor = c.brokers.iter().find(|b| b.child.is_some()).unwrap();
    wait_until("another controller is elected", || {
        let now = c.controller(survivor);
        now > 0 && now != controller
    });
    let elected = killed_at.elapsed();
    let mut created = Duration::ZERO;
    wait_until("a topic can be created", || {
        let code = create_topic_at(survivor, "after-failover", 2);
        created = killed_at.elapsed();
        code == 0
    });
    eprintln!(
        "controller SIGKILL -> new controller {:?}, -> CreateTopics succeeded {:?}",
        elected, created
    );
    assert!(elected < Duration::from_secs(15), "took {elected:?}");
    let md = describe_cluster(survivor);
    assert_eq!(
        md.brokers.len(),
        2,
        "the killed broker is gone from the cluster"
    );
    // Restarted at once, it waits out its previous registration, then rejoins as a broker.
    c.broker(controller).restart();
    let back = &c.brokers[(controller - 1) as usize];
    wait_until("the killed broker is back", || {
        metadata(back).brokers.len() == 3
    });
    assert_ne!(
        c.controller(back),
        controller,
        "the new controller keeps its role"
    );
    wait_until("its partitions have their leader back", || {
        let l = leaders(back, "before-failover");
        l.len() == 3 && !l.contains(&-1)
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_stopped_and_restarted_brings_its_partitions_back() {
    let mut c = Cluster::start(3);
    c.brokers[0].create_topic("durable", 6, &[]).await;
    produce(&c.brokers[0], "durable", 600, "d").await;
    let (status, report) = cluster_status(&c.brokers[2]);
    assert_eq!(status, 0, "{report}");
    assert_eq!(report["brokers"].as_array().unwrap().len(), 3);
    let controller = report["controller_id"].as_i64().unwrap();
    assert_eq!(controller, c.controller(&c.brokers[0]) as i64);
    let leads: Vec<i64> = report["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["leader_partitions"].as_i64().unwrap())
        .collect();
    assert_eq!(leads.iter().sum::<i64>(), 6, "{report}");
    assert_eq!(
        report["under_replicated_partitions"],
        serde_json::json!([]),
        "one replica each: none is missing"
    );
    c.broker(2).stop();
    let b1 = &c.brokers[0];
    wait_until("broker 2's partitions are offline", || {
        let md = metadata(b1);
        md.brokers.len() == 2 && leaders(b1, "durable").contains(&-1)
    });
    let (status, report) = cluster_status(b1);
    assert_eq!(
        status, 1,
        "offline partitions make the status fail: {report}"
    );
    let offline = report["offline_partitions"].as_array().unwrap();
    let offline_in_metadata = leaders(b1, "durable").iter().filter(|&&l| l == -1).count();
    assert_eq!(offline.len(), offline_in_metadata, "{report}");
    assert!(offline.len() >= 2, "broker 2 led some partitions: {report}");
    // The controller's /metrics counts them too.
    let controller = c.controller(b1);
    let at = &c.brokers[(controller - 1) as usize];
    let wanted = format!("sluice_offline_partitions {}\n", offline.len());
    wait_until(
        "the controller's metrics count the offline partitions",
        || common::http_get(at, "/metrics").1.contains(&wanted),
    );
    c.broker(2).restart();
    let b1 = &c.brokers[0];
    wait_until("every partition has its leader back", || {
        !leaders(b1, "durable").contains(&-1)
    });
    assert_eq!(read_all(b1, "durable", 6, 600), expected("d", 600));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_broker_with_a_live_node_id_is_refused() {
    let c = Cluster::start(2);
    let mut twin = c.member(2);
    twin.spawn_only();
    let status = twin.child.as_mut().unwrap().wait().unwrap();
    assert!(!status.success());
    let log = twin.log_text();
    assert!(
        log.contains("node id 2 is already registered"),
        "the error names the problem:\n{log}"
    );
    twin.child = None;
    // The first broker 2 is undisturbed.
    assert_eq!(metadata(&c.brokers[1]).brokers.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn brokers_serve_through_an_etcd_outage_and_recover_after_it() {
    let mut c = Cluster::start(3);
    c.brokers[0].create_topic("steady", 3, &[]).await;
    produce(&c.brokers[0], "steady", 300, "before").await;
    c.etcd.kill();
    // What each broker leads is still served: produce and consume go on.
    produce(&c.brokers[1], "steady", 300, "during").await;
    let mut both = expected("before", 300);
    both.extend(expected("during", 300));
    assert_eq!(read_all(&c.brokers[2], "steady", 3, 600), both);
    // Metadata changes wait for etcd, and fail meanwhile without harm.
    let controller = c.controller(&c.brokers[0]);
    assert_ne!(
        create_topic_at(&c.brokers[(controller - 1) as usize], "during-outage", 1),
        0
    );
    std::thread::sleep(Duration::from_secs(2));
    c.etcd.restart();
    wait_until("the cluster takes metadata changes again", || {
        let controller = c.controller(&c.brokers[0]);
        controller > 0
            && create_topic_at(&c.brokers[(controller - 1) as usize], "after-outage", 1) == 0
    });
    for b in &c.brokers {
        wait_until("every broker is back in the cluster", || {
            metadata(b).brokers.len() == 3 && leaders(b, "after-outage").len() == 1
        });
    }
}

#[test]
fn cluster_status_reports_an_unreachable_broker() {
    let port = common::free_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["cluster", "status", "--bootstrap"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn cluster_status_of_a_single_node() {
    let b = Broker::start();
    let (status, report) = cluster_status(&b);
    assert_eq!(status, 0, "{report}");
    assert_eq!(report["controller_id"], 1);
    assert_eq!(report["brokers"][0]["address"], b.bootstrap());
    // The table for people: one row per broker, the controller starred.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["cluster", "status", "--bootstrap", &b.bootstrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("BROKER  ADDRESS"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("1*") && l.contains(&b.bootstrap())),
        "{text}"
    );
}

/// Kafka's partition of a group in `__consumer_offsets` (Java's String.hashCode).
fn offsets_partition_of(group: &str, partitions: i32) -> usize {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    ((h & 0x7fff_ffff) % partitions) as usize
}

/// Moves the leadership of one `__consumer_offsets` partition to `leader`, as a controller
/// would: a new leader epoch in the topic's record in etcd, which every broker follows.
fn move_offsets_leader(c: &Cluster, partition: usize, leader: i32, other: i32) {
    let key = format!("/sluice/{}/topics/__consumer_offsets", c.name);
    let mut topic: serde_json::Value = serde_json::from_str(&c.etcd.get(&key).unwrap()).unwrap();
    let p = &mut topic["partitions"][partition];
    let epoch = p["leader_epoch"].as_i64().unwrap() + 1;
    p["leader"] = leader.into();
    p["leader_epoch"] = epoch.into();
    p["replicas"] = serde_json::json!([leader, other]);
    p["isr"] = serde_json::json!([leader]);
    c.etcd.put(&key, &topic.to_string());
}

/// The in-sync replicas of a partition as `b`'s metadata gives them.
fn isr_of(b: &Broker, topic: &str, partition: i32) -> Vec<i32> {
    metadata(b)
        .topics
        .iter()
        .filter(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == partition)
        .map(|p| p.isr_nodes.iter().map(|n| n.0).collect())
        .unwrap_or_default()
}

fn listed_groups(b: &Broker) -> Vec<String> {
    let mut raw = Raw::connect(b);
    let corr = raw.send(ApiKey::ListGroups, 3, &ListGroupsRequest::default());
    let r: ListGroupsResponse = raw.receive_response(ApiKey::ListGroups, 3, corr);
    r.groups.iter().map(|g| g.group_id.to_string()).collect()
}

/// Committed offsets of `group` as `b` answers: (error code, sum of committed offsets).
fn committed_at(b: &Broker, group: &str) -> (i16, i64) {
    let mut raw = Raw::connect(b);
    let req = OffsetFetchRequest::default()
        .with_group_id(kafka_protocol::messages::GroupId(StrBytes::from_string(
            group.to_string(),
        )))
        .with_topics(None);
    let corr = raw.send(ApiKey::OffsetFetch, 7, &req);
    let r: OffsetFetchResponse = raw.receive_response(ApiKey::OffsetFetch, 7, corr);
    let sum = r
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.committed_offset.max(0))
        .sum();
    (r.error_code, sum)
}

#[tokio::test(flavor = "multi_thread")]
async fn group_coordination_follows_the_offsets_partition_leader() {
    let c = Cluster::start(2);
    let b1 = &c.brokers[0];
    b1.create_topic("events", 1, &[]).await;
    let group = "followers";
    let coordinator = coordinator_once_known(b1, group);
    let other = 3 - coordinator;
    let (at, elsewhere) = (
        &c.brokers[(coordinator - 1) as usize],
        &c.brokers[(other - 1) as usize],
    );
    let commit = |offset: i64| {
        let consumer: BaseConsumer = b1.consumer(&[("group.id", group)]);
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset("events", 0, Offset::Offset(offset))
            .unwrap();
        consumer.commit(&tpl, CommitMode::Sync).unwrap();
    };
    commit(42);
    assert_eq!(committed_at(at, group), (0, 42));
    assert!(listed_groups(at).contains(&group.to_string()));

    // Leadership of the group's offsets partition moves: the group goes with it.
    let partition = offsets_partition_of(group, 50);
    move_offsets_leader(&c, partition, other, coordinator);
    wait_until("the coordinator moves", || {
        coordinator_once_known(b1, group) == other
    });
    wait_until("the old coordinator drops the group", || {
        !listed_groups(at).contains(&group.to_string())
    });
    assert_eq!(committed_at(at, group).0, 16, "NOT_COORDINATOR");
    // The new leader's replica of the partition was empty (the partition had one replica),
    // so it coordinates the group with nothing committed (once it has applied the change).
    wait_until("the new coordinator answers for the group", || {
        committed_at(elsewhere, group) == (0, 0)
    });

    // The old coordinator follows the partition now, its tail truncated to the new leader's
    // empty log. Once it is in sync, a commit at the new coordinator reaches both (acks=all).
    wait_until("the old coordinator is in sync again", || {
        isr_of(b1, "__consumer_offsets", partition as i32).len() == 2
    });
    commit(7);
    assert_eq!(committed_at(elsewhere, group), (0, 7));

    // Back again: the group is loaded from the log, its commit with it.
    move_offsets_leader(&c, partition, coordinator, other);
    wait_until("the coordinator moves back", || {
        coordinator_once_known(b1, group) == coordinator
    });
    wait_until("the group is loaded again", || {
        listed_groups(at).contains(&group.to_string())
    });
    assert_eq!(committed_at(at, group), (0, 7));
    wait_until("the other broker says NOT_COORDINATOR", || {
        committed_at(elsewhere, group).0 == 16
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn followers_copy_their_leaders_logs() {
    let c = Cluster::start(3);
    let b1 = &c.brokers[0];
    let topic =
        rdkafka::admin::NewTopic::new("copied", 3, rdkafka::admin::TopicReplication::Fixed(3));
    let created = b1
        .admin()
        .create_topics([&topic], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    created[0].as_ref().expect("created");
    wait_until("every broker knows the topic", || {
        c.brokers.iter().all(|b| leaders(b, "copied").len() == 3)
    });
    // acks=all: each record is acknowledged once all three replicas hold it.
    produce(b1, "copied", 600, "r").await;
    let (_, report) = cluster_status(b1);
    assert_eq!(
        report["under_replicated_partitions"],
        serde_json::json!([]),
        "{report}"
    );
    for partition in 0..3 {
        let leader = leaders(b1, "copied")[partition as usize];
        let on_leader = stored_bytes(&c.brokers[(leader - 1) as usize], "copied", partition);
        assert!(!on_leader.is_empty());
        for b in &c.brokers {
            wait_until("each follower holds the leader's bytes", || {
                stored_bytes(b, "copied", partition) == on_leader
            });
        }
    }
}

/// AlterPartition (as a partition leader sends it to the controller) sent to `b`:
/// (error code, ISR, partition epoch) of the one partition.
fn alter_isr_at(
    b: &Broker,
    topic_id: uuid::Uuid,
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: &[i32],
) -> (i16, Vec<i32>, i32) {
    use kafka_protocol::messages::alter_partition_request::{PartitionData, TopicData};
    let mut raw = Raw::connect(b);
    let req = AlterPartitionRequest::default()
        .with_broker_id(BrokerId(leader))
        .with_topics(vec![TopicData::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![PartitionData::default()
                .with_partition_index(0)
                .with_leader_epoch(leader_epoch)
                .with_partition_epoch(partition_epoch)
                .with_new_isr(isr.iter().map(|&id| BrokerId(id)).collect())])]);
    let c = raw.send(ApiKey::AlterPartition, 2, &req);
    let r: AlterPartitionResponse = raw.receive_response(ApiKey::AlterPartition, 2, c);
    let p = &r.topics[0].partitions[0];
    (
        p.error_code,
        p.isr.iter().map(|b| b.0).collect(),
        p.partition_epoch,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_changes_its_isr_through_the_controller() {
    let mut c = Cluster::start(3);
    let b1 = &c.brokers[0];
    let topic = rdkafka::admin::NewTopic::new(
        "isr",
        1,
        rdkafka::admin::TopicReplication::Variable(&[&[1, 2, 3]]),
    );
    let created = b1
        .admin()
        .create_topics([&topic], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    created[0].as_ref().expect("created");
    let isr_seen_by = |b: &Broker| {
        let md = metadata(b);
        let t = md
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "isr"))
            .cloned();
        t.map(|t| {
            (
                t.topic_id,
                t.partitions[0]
                    .isr_nodes
                    .iter()
                    .map(|b| b.0)
                    .collect::<Vec<_>>(),
            )
        })
    };
    wait_until("every broker knows the topic", || {
        c.brokers.iter().all(|b| isr_seen_by(b).is_some())
    });
    let (id, isr) = isr_seen_by(b1).unwrap();
    assert_eq!(
        isr,
        vec![1, 2, 3],
        "a new partition's replicas are all in sync"
    );
    // Refused, sent to any broker (it reaches the controller): an older partition epoch, a
    // broker that does not lead, an ISR without the leader, a future leader epoch.
    let at = &c.brokers[2];
    assert_eq!(
        alter_isr_at(at, id, 1, 0, 7, &[1]).0,
        95,
        "INVALID_UPDATE_VERSION"
    );
    assert_eq!(
        alter_isr_at(at, id, 2, 0, 0, &[1, 2]).0,
        6,
        "NOT_LEADER_OR_FOLLOWER"
    );
    assert_eq!(
        alter_isr_at(at, id, 1, 0, 0, &[2, 3]).0,
        42,
        "INVALID_REQUEST"
    );
    assert_eq!(
        alter_isr_at(at, id, 1, 3, 0, &[1]).0,
        6,
        "a future leader epoch"
    );

    // A follower that stops fetching (paused, for less than its session) leaves the ISR after
    // replica.lag.time.max.ms; resumed, it catches up and the leader adds it back.
    let follower = if c.controller(b1) == 2 { 3 } else { 2 };
    let producer = b1.producer(&[("acks", "all")]);
    let pid = c.brokers[(follower - 1) as usize].pid();
    unsafe_kill(pid, "STOP");
    let isr_without: Vec<i32> = [1, 2, 3].into_iter().filter(|&r| r != follower).collect();
    let shrunk = (0..40).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        isr_seen_by(&c.brokers[0]).map(|(_, isr)| isr) == Some(isr_without.clone())
    });
    unsafe_kill(pid, "CONT");
    assert!(shrunk, "the ISR drops a follower that stopped fetching");
    // Written while it was out: acknowledged by the two in sync, copied by it on return.
    send_one(&producer, "isr", 0, "while-out").await;
    for b in &c.brokers {
        wait_until("every broker sees the follower back in sync", || {
            isr_seen_by(b).map(|(_, isr)| isr) == Some(vec![1, 2, 3])
        });
    }
    let (_, report) = cluster_status(b1);
    assert_eq!(report["under_replicated_partitions"], serde_json::json!([]));

    // A broker that is gone cannot be in sync.
    c.broker(follower).kill();
    let b1 = &c.brokers[0];
    wait_until("the follower is gone", || metadata(b1).brokers.len() == 2);
    let (_, _) = isr_seen_by(b1).unwrap();
    let epoch = c.partition_epoch("isr", 0);
    assert_eq!(
        alter_isr_at(b1, id, 1, 0, epoch, &[1, 2, 3]).0,
        107,
        "INELIGIBLE_REPLICA"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn producer_id_blocks_come_from_the_controller() {
    use kafka_protocol::messages::{
        AllocateProducerIdsRequest, AllocateProducerIdsResponse, InitProducerIdRequest,
        InitProducerIdResponse,
    };
    let c = Cluster::start(3);
    // AllocateProducerIds sent to any broker reaches the controller: disjoint blocks.
    let mut blocks = Vec::new();
    for b in &c.brokers {
        let mut raw = Raw::connect(b);
        let req = AllocateProducerIdsRequest::default()
            .with_broker_id(BrokerId(9))
            .with_broker_epoch(-1);
        let corr = raw.send(ApiKey::AllocateProducerIds, 0, &req);
        let r: AllocateProducerIdsResponse =
            raw.receive_response(ApiKey::AllocateProducerIds, 0, corr);
        assert_eq!((r.error_code, r.producer_id_len), (0, 1000));
        blocks.push(r.producer_id_start.0);
    }
    blocks.sort();
    assert!(blocks.windows(2).all(|w| w[1] - w[0] >= 1000), "{blocks:?}");
    // Idempotent producers at every broker get ids from blocks the controller gave out:
    // distinct, and outside the blocks handed out above.
    let mut ids = BTreeSet::new();
    for b in &c.brokers {
        let mut raw = Raw::connect(b);
        let corr = raw.send(ApiKey::InitProducerId, 4, &InitProducerIdRequest::default());
        let r: InitProducerIdResponse = raw.receive_response(ApiKey::InitProducerId, 4, corr);
        assert_eq!(r.error_code, 0);
        let id = r.producer_id.0;
        assert!(blocks.iter().all(|s| !(*s..s + 1000).contains(&id)));
        assert!(ids.insert(id), "producer id {id} given twice");
    }
}

/// `sluice_metadata_records_skipped_total` on `b`'s /metrics.
fn skipped_records(b: &Broker) -> u64 {
    let (_, body) = common::http_get(b, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix("sluice_metadata_records_skipped_total "))
        .and_then(|v| v.parse().ok())
        .expect("the skipped-records counter")
}

/// Records written into etcd by hand, as anyone who reaches it could. Before the checks a
/// topic named `../x` made every broker create a directory beside its data directory (and
/// deleting the key deleted it with what it held), a registration made with etcdctl sent
/// clients to any address, and `controller` set to 99 made every CreateTopics fail.
#[tokio::test(flavor = "multi_thread")]
async fn records_written_into_etcd_by_hand_are_checked_skipped_and_counted() {
    let c = Cluster::start(2);
    let b1 = &c.brokers[0];
    let prefix = format!("/sluice/{}/", c.name);
    let outside = b1.data_dir().parent().unwrap().join("x-0");
    let escaping = r#"{"name":"../x","id":"00000000-0000-0000-0000-00000000000a","partitions":[{"replicas":[1,2],"leader":1,"leader_epoch":0,"isr":[1,2]}]}"#;
    c.etcd.put(&format!("{prefix}topics/../x"), escaping);
    c.etcd.put(
        &format!("{prefix}brokers/9"),
        r#"{"node_id":9,"host":"127.0.0.1","port":1}"#,
    );
    let controller = c.controller(b1);
    c.etcd.put(&format!("{prefix}controller"), "99");
    for b in &c.brokers {
        wait_until("each broker counts the three records it skipped", || {
            skipped_records(b) >= 3
        });
    }
    assert!(!outside.exists(), "{} was created", outside.display());
    assert_eq!(
        metadata(b1).brokers.len(),
        2,
        "the fake broker is not listed"
    );
    // The controller puts its key back; topics are created as before.
    wait_until("the controller key is restored", || {
        c.etcd.get(&format!("{prefix}controller")) == Some(controller.to_string())
    });
    for b in &c.brokers {
        assert_eq!(c.controller(b), controller);
    }
    assert_eq!(create_topic_at(&c.brokers[1], "after-tampering", 2), 0);
    // Deleting the record touches nothing either.
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), b"not the broker's").unwrap();
    c.etcd.etcdctl_del(&format!("{prefix}topics/../x"));
    c.etcd.etcdctl_del(&format!("{prefix}brokers/9"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(outside.join("keep").exists());
    for b in &c.brokers {
        assert!(b.log_text().contains("skipping an invalid metadata record"));
    }
}

/// Requests only brokers send, from a client at an address no broker has (127.0.0.5):
/// before, any client could shrink an ISR to the leader alone (acks=all producers then got
/// NOT_ENOUGH_REPLICAS), burn producer-id blocks, write markers and share state, or fetch as
/// a follower. Each is now refused with CLUSTER_AUTHORIZATION_FAILED and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn broker_only_requests_from_a_client_are_refused() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction;
    use kafka_protocol::messages::alter_partition_request::{PartitionData, TopicData};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use kafka_protocol::messages::*;
    const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    let c = Cluster::start(3);
    let b1 = &c.brokers[0];
    let topic =
        rdkafka::admin::NewTopic::new("guarded", 1, rdkafka::admin::TopicReplication::Fixed(3));
    b1.admin()
        .create_topics(&[topic], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    wait_until("every replica in sync", || {
        isr_of(b1, "guarded", 0) == vec![1, 2, 3]
    });
    let md = metadata(b1);
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "guarded"))
        .unwrap();
    let (id, leader) = (t.topic_id, t.partitions[0].leader_id.0);
    let at_leader = &c.brokers[(leader - 1) as usize];
    let controller = &c.brokers[(c.controller(b1) - 1) as usize];
    let name = || TopicName(StrBytes::from_static_str("guarded"));
    let client = |b: &Broker| Raw::connect_from(b, "127.0.0.5");

    let alter = AlterPartitionRequest::default()
        .with_broker_id(BrokerId(leader))
        .with_topics(vec![TopicData::default()
            .with_topic_id(id)
            .with_partitions(vec![PartitionData::default()
                .with_partition_index(0)
                .with_leader_epoch(0)
                .with_new_isr(vec![BrokerId(leader)])])]);
    for b in [controller, at_leader] {
        let mut raw = client(b);
        let cid = raw.send(ApiKey::AlterPartition, 2, &alter);
        let r: AlterPartitionResponse = raw.receive_response(ApiKey::AlterPartition, 2, cid);
        assert_eq!(r.error_code, CLUSTER_AUTHORIZATION_FAILED, "AlterPartition");
    }

    let allocate = AllocateProducerIdsRequest::default().with_broker_id(BrokerId(2));
    let mut raw = client(controller);
    let cid = raw.send(ApiKey::AllocateProducerIds, 0, &allocate);
    let r: AllocateProducerIdsResponse = raw.receive_response(ApiKey::AllocateProducerIds, 0, cid);
    assert_eq!(
        r.error_code, CLUSTER_AUTHORIZATION_FAILED,
        "AllocateProducerIds"
    );

    let markers =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(1))
            .with_transaction_result(false)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(name())
                .with_partition_indexes(vec![0])])]);
    let mut raw = client(at_leader);
    let cid = raw.send(ApiKey::WriteTxnMarkers, 1, &markers);
    let r: WriteTxnMarkersResponse = raw.receive_response(ApiKey::WriteTxnMarkers, 1, cid);
    assert_eq!(
        r.markers[0].topics[0].partitions[0].error_code, CLUSTER_AUTHORIZATION_FAILED,
        "WriteTxnMarkers"
    );

    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(2))
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name())
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let mut raw = client(at_leader);
    let cid = raw.send(ApiKey::Fetch, 12, &fetch);
    let r: FetchResponse = raw.receive_response(ApiKey::Fetch, 12, cid);
    assert_eq!(
        r.responses[0].partitions[0].error_code, CLUSTER_AUTHORIZATION_FAILED,
        "a follower's Fetch"
    );

    let epochs = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(2))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(name())
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_leader_epoch(0)])]);
    let mut raw = client(at_leader);
    let cid = raw.send(ApiKey::OffsetForLeaderEpoch, 4, &epochs);
    let r: OffsetForLeaderEpochResponse =
        raw.receive_response(ApiKey::OffsetForLeaderEpoch, 4, cid);
    assert_eq!(
        r.topics[0].partitions[0].error_code, CLUSTER_AUTHORIZATION_FAILED,
        "a follower's OffsetForLeaderEpoch"
    );

    let verify = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("t")))
            .with_verify_only(true),
    ]);
    let mut raw = client(at_leader);
    let cid = raw.send(ApiKey::AddPartitionsToTxn, 4, &verify);
    let r: AddPartitionsToTxnResponse = raw.receive_response(ApiKey::AddPartitionsToTxn, 4, cid);
    assert_eq!(
        r.error_code, CLUSTER_AUTHORIZATION_FAILED,
        "AddPartitionsToTxn v4"
    );

    // Nothing moved; a client at a broker's address (here, loopback) is still a broker's.
    assert_eq!(isr_of(b1, "guarded", 0), vec![1, 2, 3]);
    let mut raw = Raw::connect(controller);
    let cid = raw.send(ApiKey::AllocateProducerIds, 0, &allocate);
    let r: AllocateProducerIdsResponse = raw.receive_response(ApiKey::AllocateProducerIds, 0, cid);
    assert_eq!(r.error_code, 0);
}

/// Clients that take every place under `max.connections` do not cut brokers off: a broker's
/// connection on the inter-broker listener is admitted whatever the counts (KIP-402), so a
/// restarted follower gets back in and rejoins the ISR while clients hold every place.
#[tokio::test(flavor = "multi_thread")]
async fn brokers_get_in_when_clients_hold_every_connection() {
    let mut c = Cluster::start_with(2, "\"max.connections\" = 6\n");
    let topic = rdkafka::admin::NewTopic::new(
        "crowded",
        1,
        rdkafka::admin::TopicReplication::Variable(&[&[1, 2]]),
    );
    c.brokers[0]
        .admin()
        .create_topics(&[topic], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    wait_until("both replicas in sync", || {
        isr_of(&c.brokers[0], "crowded", 0) == vec![1, 2]
    });
    c.broker(2).kill();
    wait_until("broker 2 leaves the ISR", || {
        isr_of(&c.brokers[0], "crowded", 0) == vec![1]
    });
    // Clients from an address no broker has take every place at broker 1.
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut raw = Raw::connect_from(&c.brokers[0], "127.0.0.5");
        let cid = raw.send(
            ApiKey::Metadata,
            9,
            &MetadataRequest::default().with_topics(Some(vec![])),
        );
        let _: MetadataResponse = raw.receive_response(ApiKey::Metadata, 9, cid);
        held.push(raw);
    }
    let mut refused = Raw::connect_from(&c.brokers[0], "127.0.0.5");
    refused.send_raw(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    refused.assert_closed();
    c.broker(2).restart();
    c.wait_or_dump("broker 2 rejoins the ISR through the full broker", |c| {
        isr_of(&c.brokers[0], "crowded", 0) == vec![1, 2]
    });
    drop(held);
}

//! Consumer groups with librdkafka consumers (threads) and kcat (a separate process).

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::group::{assert_exactly_once, produce, union, wait_until, Member};
use common::Broker;
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(10);
/// Short session timeouts keep the tests quick.
const BROKER_CONFIG: &str = "group.min.session.timeout.ms = 500\n";

fn partitions(topic: &str, n: i32) -> BTreeSet<(String, i32)> {
    (0..n).map(|p| (topic.to_string(), p)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn members_split_partitions_and_rebalance_when_one_joins_or_leaves() {
    let broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("split", 4, &[]).await;
    produce(&broker, "split", 4, 400, "a").await;

    let a = Member::start(&broker, "g", &["split"], &[]);
    let b = Member::start(&broker, "g", &["split"], &[]);
    wait_until(20, "two members with two partitions each", || {
        a.assignment().len() == 2 && b.assignment().len() == 2
    });
    assert!(a.assignment().is_disjoint(&b.assignment()));
    wait_until(20, "all 400 read", || union(&[&a, &b]).len() >= 400);

    // A third member: a rebalance, then new records are still read exactly once.
    let c = Member::start(&broker, "g", &["split"], &[]);
    wait_until(20, "three members share four partitions", || {
        let (x, y, z) = (a.assignment(), b.assignment(), c.assignment());
        x.len() + y.len() + z.len() == 4 && !x.is_empty() && !y.is_empty() && !z.is_empty()
    });
    produce(&broker, "split", 4, 400, "b").await;
    wait_until(20, "all 800 read", || union(&[&a, &b, &c]).len() >= 800);
    std::thread::sleep(Duration::from_millis(300));
    assert_exactly_once(&union(&[&a, &b, &c]), 800);

    // A member leaving hands its partitions to the others.
    let c_seen = c.stop();
    wait_until(20, "two members cover all four partitions again", || {
        let mut all = a.assignment();
        all.extend(b.assignment());
        all == partitions("split", 4)
    });
    produce(&broker, "split", 4, 400, "c").await;
    wait_until(20, "all 1200 read", || {
        union(&[&a, &b]).len() + c_seen.len() >= 1200
    });
    let mut everything = union(&[&a, &b]);
    everything.extend(c_seen);
    assert_exactly_once(&everything, 1200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_beyond_the_partition_count_stays_idle() {
    let broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("narrow", 2, &[]).await;
    let members: Vec<Member> = (0..3)
        .map(|_| Member::start(&broker, "idle", &["narrow"], &[]))
        .collect();
    wait_until(20, "two partitions assigned across three members", || {
        members.iter().map(|m| m.assignment().len()).sum::<usize>() == 2
    });
    std::thread::sleep(Duration::from_millis(500));
    let sizes: Vec<usize> = members.iter().map(|m| m.assignment().len()).collect();
    assert_eq!(sizes.iter().filter(|&&n| n == 0).count(), 1, "{sizes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_groups_each_read_everything_and_a_group_can_span_topics() {
    let broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("left", 2, &[]).await;
    broker.create_topic("right", 3, &[]).await;
    produce(&broker, "left", 2, 100, "l").await;
    produce(&broker, "right", 3, 150, "r").await;
    let g1 = Member::start(&broker, "one", &["left"], &[]);
    let g2 = Member::start(&broker, "two", &["left"], &[]);
    let both = Member::start(&broker, "both", &["left", "right"], &[]);
    wait_until(20, "each group reads its records", || {
        g1.seen().len() >= 100 && g2.seen().len() >= 100 && both.seen().len() >= 250
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_exactly_once(&g1.seen(), 100);
    assert_exactly_once(&g2.seen(), 100);
    assert_exactly_once(&both.seen(), 250);
    let mut expected = partitions("left", 2);
    expected.extend(partitions("right", 3));
    assert_eq!(both.assignment(), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_offset_reset_earliest_and_latest() {
    let broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("reset", 1, &[]).await;
    produce(&broker, "reset", 1, 50, "old").await;
    let early = Member::start(
        &broker,
        "early",
        &["reset"],
        &[("auto.offset.reset", "earliest")],
    );
    let late = Member::start(
        &broker,
        "late",
        &["reset"],
        &[("auto.offset.reset", "latest")],
    );
    wait_until(20, "both assigned", || {
        early.assignment().len() == 1 && late.assignment().len() == 1
    });
    wait_until(20, "earliest reads the old records", || {
        early.seen().len() >= 50
    });
    std::thread::sleep(Duration::from_secs(1)); // let `latest` settle at the end
    produce(&broker, "reset", 1, 10, "new").await;
    wait_until(20, "latest reads only new records", || {
        late.seen().len() >= 10
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(late.seen().len(), 10);
    assert!(late.seen().iter().all(|(_, _, o)| *o >= 50));
}

fn committed(broker: &Broker, group: &str, topic: &str, n: i32) -> Vec<Offset> {
    let consumer: BaseConsumer = broker.config().set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition(topic, p);
    }
    let c = consumer.committed_offsets(tpl, T).unwrap();
    (0..n)
        .map(|p| c.find_partition(topic, p).unwrap().offset())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_offsets_survive_consumer_restart_and_broker_sigkill() {
    let mut broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("durable-offsets", 2, &[]).await;
    produce(&broker, "durable-offsets", 2, 100, "x").await;
    let m = Member::start(&broker, "keeper", &["durable-offsets"], &[]);
    wait_until(20, "100 read", || m.seen().len() >= 100);
    let first = m.stop();
    assert_eq!(
        committed(&broker, "keeper", "durable-offsets", 2),
        vec![Offset::Offset(50), Offset::Offset(50)]
    );

    broker.kill();
    broker.restart();
    assert_eq!(
        committed(&broker, "keeper", "durable-offsets", 2),
        vec![Offset::Offset(50), Offset::Offset(50)],
        "committed offsets survive a broker SIGKILL"
    );
    produce(&broker, "durable-offsets", 2, 20, "y").await;
    let m = Member::start(&broker, "keeper", &["durable-offsets"], &[]);
    wait_until(20, "the 20 new records", || m.seen().len() >= 20);
    std::thread::sleep(Duration::from_millis(300));
    let second = m.stop();
    assert_eq!(
        second.len(),
        20,
        "a restarted consumer resumes from its committed offsets"
    );
    assert!(second.iter().all(|s| !first.contains(s)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_member_process_is_evicted_after_its_session_timeout() {
    let broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("evict", 2, &[]).await;
    // kcat in its own process is one member; a thread is the other.
    let mut kcat = Command::new("kcat")
        .args([
            "-b",
            &broker.bootstrap(),
            "-G",
            "evict-group",
            "evict",
            "-q",
            "-X",
            "session.timeout.ms=2000",
            "-X",
            "heartbeat.interval.ms=300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kcat is installed");
    let survivor = Member::start(
        &broker,
        "evict-group",
        &["evict"],
        &[("session.timeout.ms", "2000")],
    );
    wait_until(30, "the thread member holds one of two partitions", || {
        survivor.assignment().len() == 1
    });
    kcat.kill().unwrap(); // SIGKILL: no LeaveGroup
    kcat.wait().unwrap();
    wait_until(
        30,
        "after the session timeout the survivor holds both",
        || survivor.assignment().len() == 2,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn static_membership_keeps_the_assignment_across_a_quick_restart() {
    let broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("static", 4, &[]).await;
    let fixed = [
        ("group.instance.id", "instance-a"),
        ("session.timeout.ms", "6000"),
    ];
    let a = Member::start(&broker, "static-group", &["static"], &fixed);
    let b = Member::start(
        &broker,
        "static-group",
        &["static"],
        &[("session.timeout.ms", "6000")],
    );
    wait_until(20, "two members, two partitions each", || {
        a.assignment().len() == 2 && b.assignment().len() == 2
    });
    std::thread::sleep(Duration::from_millis(500));
    let (a_before, b_before, b_rebalances) = (a.assignment(), b.assignment(), b.rebalances());
    a.close(); // a static member does not send LeaveGroup on close
    let a = Member::start(&broker, "static-group", &["static"], &fixed);
    wait_until(20, "the static member is back", || {
        a.assignment().len() == 2
    });
    assert_eq!(
        a.assignment(),
        a_before,
        "same partitions after the restart"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.assignment(), b_before);
    assert_eq!(
        b.rebalances(),
        b_rebalances,
        "the other member saw no rebalance"
    );
}

/// (state, member count) through ListGroups/DescribeGroups.
fn describe(broker: &Broker, group: &str) -> (String, usize) {
    let consumer: BaseConsumer = broker.config().create().unwrap();
    let list = consumer.fetch_group_list(Some(group), T).unwrap();
    let g = &list.groups()[0];
    (g.state().to_string(), g.members().len())
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_are_listed_described_and_deleted_through_the_admin_api() {
    let broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("visible", 2, &[]).await;
    produce(&broker, "visible", 2, 40, "v").await;
    let m = Member::start(
        &broker,
        "shown",
        &["visible"],
        &[("client.id", "shown-client")],
    );
    wait_until(20, "read everything", || m.seen().len() >= 40);

    let consumer: BaseConsumer = broker.config().create().unwrap();
    let list = consumer.fetch_group_list(None, T).unwrap();
    let names: Vec<&str> = list.groups().iter().map(|g| g.name()).collect();
    assert!(names.contains(&"shown"), "{names:?}");
    let list = consumer.fetch_group_list(Some("shown"), T).unwrap();
    let g = &list.groups()[0];
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.protocol_type(), "consumer");
    assert_eq!(
        g.protocol(),
        "range",
        "the chosen assignor (librdkafka's default list starts with range)"
    );
    assert_eq!(g.members().len(), 1);
    assert_eq!(g.members()[0].client_id(), "shown-client");
    assert!(g.members()[0].assignment().is_some_and(|a| !a.is_empty()));

    let admin = broker.admin();
    let r = admin
        .delete_groups(&["shown"], &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        rdkafka::types::RDKafkaErrorCode::NonEmptyGroup
    );
    m.stop();
    wait_until(20, "the group is empty", || {
        describe(&broker, "shown").0 == "Empty"
    });
    assert_eq!(
        committed(&broker, "shown", "visible", 2),
        vec![Offset::Offset(20), Offset::Offset(20)]
    );
    let r = admin
        .delete_groups(&["shown"], &AdminOptions::new())
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    assert_eq!(
        committed(&broker, "shown", "visible", 2),
        vec![Offset::Invalid, Offset::Invalid]
    );
    let r = admin
        .delete_groups(&["never-existed"], &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        rdkafka::types::RDKafkaErrorCode::GroupIdNotFound
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stable_group_survives_a_broker_sigkill() {
    let mut broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("through", 2, &[]).await;
    produce(&broker, "through", 2, 20, "before").await;
    let m = Member::start(&broker, "through-group", &["through"], &[]);
    wait_until(20, "20 read", || m.seen().len() >= 20);
    std::thread::sleep(Duration::from_millis(300));
    broker.kill();
    broker.restart();
    // The group and its member come back from __consumer_offsets.
    let (state, members) = describe(&broker, "through-group");
    assert_eq!((state.as_str(), members), ("Stable", 1));
    produce(&broker, "through", 2, 10, "after").await;
    wait_until(30, "the member reads on", || m.seen().len() >= 30);
    std::thread::sleep(Duration::from_millis(300));
    assert_exactly_once(&m.seen(), 30);
}

/// When the last member leaves, a classic group keeps its protocol type (only the protocol
/// name is cleared, as Kafka does), so admin clients still see a consumer group, not a
/// "simple" one, and so after a restart.
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_group_keeps_its_protocol_type_across_a_restart() {
    let mut broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("left", 1, &[]).await;
    produce(&broker, "left", 1, 5, "x").await;
    let m = Member::start(&broker, "left-group", &["left"], &[]);
    wait_until(20, "read everything", || m.seen().len() >= 5);
    m.stop();
    wait_until(20, "the group is empty", || {
        describe(&broker, "left-group").0 == "Empty"
    });
    let protocol = |broker: &Broker| {
        let consumer: BaseConsumer = broker.config().create().unwrap();
        let list = consumer.fetch_group_list(Some("left-group"), T).unwrap();
        let g = &list.groups()[0];
        (g.protocol_type().to_string(), g.protocol().to_string())
    };
    assert_eq!(protocol(&broker), ("consumer".to_string(), String::new()));
    broker.kill();
    broker.restart();
    assert_eq!(protocol(&broker), ("consumer".to_string(), String::new()));
}

/// Consumers that start together share one rebalance: the first join into an empty group
/// waits group.initial.rebalance.delay.ms (3 s by default) for the others, as Kafka does.
#[tokio::test(flavor = "multi_thread")]
async fn consumers_starting_together_share_one_rebalance() {
    let broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("together", 3, &[]).await;
    let started = std::time::Instant::now();
    let members: Vec<Member> = (0..3)
        .map(|_| {
            let m = Member::start(&broker, "together-group", &["together"], &[]);
            std::thread::sleep(Duration::from_millis(300));
            m
        })
        .collect();
    wait_until(30, "each member holds one partition", || {
        members.iter().all(|m| m.assignment().len() == 1)
    });
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "the first join waited for the others"
    );
    std::thread::sleep(Duration::from_millis(500));
    let rebalances: Vec<usize> = members.iter().map(|m| m.rebalances()).collect();
    assert_eq!(
        rebalances,
        vec![1, 1, 1],
        "one assignment each, no revocation"
    );
}

//! Consumer groups with the KIP-848 protocol (librdkafka `group.protocol=consumer`):
//! server-side assignment delivered through ConsumerGroupHeartbeat.

mod common;

use std::time::Duration;

use common::group::{assert_exactly_once, produce, union, wait_until, Member};
use common::raw::Raw;
use common::Broker;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId,
};
use kafka_protocol::protocol::StrBytes;

/// Fast heartbeats and short sessions keep the tests quick.
const BROKER_CONFIG: &str =
    "group.consumer.heartbeat.interval.ms = 200\ngroup.consumer.session.timeout.ms = 3000\n";
const KIP848: (&str, &str) = ("group.protocol", "consumer");

fn describe(broker: &Broker, group: &str) -> ConsumerGroupDescribeResponse {
    let mut raw = Raw::connect(broker);
    let req = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let c = raw.send(ApiKey::ConsumerGroupDescribe, 0, &req);
    raw.receive_response(ApiKey::ConsumerGroupDescribe, 0, c)
}

#[tokio::test(flavor = "multi_thread")]
async fn members_share_partitions_and_keep_theirs_while_others_join() {
    let broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("k848", 4, &[]).await;
    produce(&broker, "k848", 4, 400, "a").await;

    let a = Member::start(&broker, "g848", &["k848"], &[KIP848]);
    wait_until(20, "the first member owns all four partitions", || {
        a.assignment().len() == 4
    });
    wait_until(20, "it reads everything", || a.seen().len() >= 400);
    let b = Member::start(&broker, "g848", &["k848"], &[KIP848]);
    wait_until(20, "two members, two partitions each", || {
        a.assignment().len() == 2 && b.assignment().len() == 2
    });
    assert!(a.assignment().is_disjoint(&b.assignment()));
    let a_kept = a.assignment();
    let c = Member::start(&broker, "g848", &["k848"], &[KIP848]);
    wait_until(20, "three members cover four partitions", || {
        let n = [&a, &b, &c]
            .iter()
            .map(|m| m.assignment().len())
            .sum::<usize>();
        n == 4 && !c.assignment().is_empty()
    });
    assert!(
        a.assignment().is_subset(&a_kept),
        "incremental: a keeps partitions it had"
    );
    produce(&broker, "k848", 4, 400, "b").await;
    wait_until(20, "all 800 read", || union(&[&a, &b, &c]).len() >= 800);
    std::thread::sleep(Duration::from_millis(300));
    assert_exactly_once(&union(&[&a, &b, &c]), 800);

    let d = describe(&broker, "g848");
    let g = &d.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.members.len(), 3);
    assert_eq!(g.assignor_name.as_str(), "uniform");

    // A member leaving hands its partitions over.
    let c_seen = c.stop();
    wait_until(20, "two members cover all four again", || {
        a.assignment().len() + b.assignment().len() == 4
    });
    produce(&broker, "k848", 4, 200, "c").await;
    wait_until(20, "all 1000 read", || {
        union(&[&a, &b]).len() + c_seen.len() >= 1000
    });
    let mut all = union(&[&a, &b]);
    all.extend(c_seen);
    std::thread::sleep(Duration::from_millis(300));
    assert_exactly_once(&all, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_members_two_groups_and_resumed_offsets() {
    let broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("small848", 2, &[]).await;
    produce(&broker, "small848", 2, 100, "x").await;
    let members: Vec<Member> = (0..3)
        .map(|_| Member::start(&broker, "idle848", &["small848"], &[KIP848]))
        .collect();
    // The first member to join may hold both partitions until the others' joins rebalance
    // the group: wait for the spread, not just for both partitions to be owned.
    wait_until(
        20,
        "two partitions spread over two of three members",
        || members.iter().filter(|m| m.assignment().len() == 1).count() == 2,
    );
    wait_until(20, "the group reads everything", || {
        members.iter().map(|m| m.seen().len()).sum::<usize>() >= 100
    });
    assert_eq!(
        members.iter().filter(|m| m.assignment().is_empty()).count(),
        1,
        "one member idles"
    );

    let other = Member::start(&broker, "other848", &["small848"], &[KIP848]);
    wait_until(20, "another group reads everything too", || {
        other.seen().len() >= 100
    });
    let first = other.stop();
    produce(&broker, "small848", 2, 10, "y").await;
    let again = Member::start(&broker, "other848", &["small848"], &[KIP848]);
    wait_until(20, "the restarted member resumes after its commits", || {
        again.seen().len() >= 10
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(again.seen().len(), 10);
    assert!(again.seen().iter().all(|s| !first.contains(s)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_member_process_is_evicted_after_its_session_timeout() {
    let broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("evict848", 2, &[]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/group_member.py");
    let mut other = std::process::Command::new("python3")
        .args([
            script,
            &broker.bootstrap(),
            "evict848-group",
            "evict848",
            "consumer",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs");
    let survivor = Member::start(&broker, "evict848-group", &["evict848"], &[KIP848]);
    wait_until(30, "each member holds one partition", || {
        survivor.assignment().len() == 1
    });
    other.kill().unwrap(); // SIGKILL: no leave heartbeat
    other.wait().unwrap();
    wait_until(
        30,
        "after the session timeout the survivor holds both",
        || survivor.assignment().len() == 2,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn static_membership_keeps_the_assignment_across_a_quick_restart() {
    let broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("static848", 4, &[]).await;
    let fixed = [KIP848, ("group.instance.id", "instance-848")];
    let a = Member::start(&broker, "static848-group", &["static848"], &fixed);
    let b = Member::start(&broker, "static848-group", &["static848"], &[KIP848]);
    wait_until(20, "two partitions each", || {
        a.assignment().len() == 2 && b.assignment().len() == 2
    });
    std::thread::sleep(Duration::from_millis(500));
    let (a_before, b_before, b_rebalances) = (a.assignment(), b.assignment(), b.rebalances());
    a.close(); // a static member leaves with epoch -2: its place is kept
    let a = Member::start(&broker, "static848-group", &["static848"], &fixed);
    wait_until(20, "the static member is back", || {
        a.assignment().len() == 2
    });
    assert_eq!(a.assignment(), a_before);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.assignment(), b_before);
    assert_eq!(
        b.rebalances(),
        b_rebalances,
        "the other member saw no change"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_topics_latest_reset_and_a_broker_sigkill() {
    let mut broker = Broker::start_with_config(BROKER_CONFIG);
    broker.create_topic("t1-848", 2, &[]).await;
    broker.create_topic("t2-848", 1, &[]).await;
    produce(&broker, "t1-848", 2, 20, "before").await;
    let m = Member::start(
        &broker,
        "multi848",
        &["t1-848", "t2-848"],
        &[KIP848, ("auto.offset.reset", "latest")],
    );
    wait_until(20, "three partitions of two topics", || {
        m.assignment().len() == 3
    });
    std::thread::sleep(Duration::from_secs(1)); // let `latest` settle at the end
    produce(&broker, "t1-848", 2, 10, "after").await;
    produce(&broker, "t2-848", 1, 5, "after").await;
    wait_until(20, "only the new records", || m.seen().len() >= 15);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(m.seen().len(), 15);
    assert!(m.seen().iter().all(|(t, _, o)| t != "t1-848" || *o >= 10));

    // The broker dies; the member rejoins after the restart and resumes from its commits.
    broker.kill();
    broker.restart();
    // KIP-848 membership is not persisted: the member rejoins first (records it read before
    // that could not be committed and would come again; see docs/consumer-groups.md).
    wait_until(30, "the member rejoined", || {
        let g = &describe(&broker, "multi848").groups[0];
        g.members.len() == 1 && g.group_state.as_str() == "Stable"
    });
    produce(&broker, "t2-848", 1, 10, "restarted").await;
    wait_until(30, "the member reads on after the broker restart", || {
        m.seen().len() >= 25
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_exactly_once(&m.seen(), 25);
}

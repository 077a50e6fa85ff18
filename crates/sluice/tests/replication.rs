//! Replication and failover on three brokers and a real etcd: leaders SIGKILLed and paused
//! under an idempotent acks=all producer, min.insync.replicas with brokers down, group
//! offsets across a coordinator's loss, a rolling restart. After each, the checker reads every
//! partition back: nothing acknowledged lost, each record at its acknowledged offset, no
//! duplicates, order kept.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::checker::{self, Outcome};
use common::cluster::{
    coordinator_of, isr_of, leaders, metadata, stored_bytes, wait_until, Cluster, NAMESPACED_NODE,
    SESSION_TIMEOUT_MS,
};
use common::raw::{batch, Raw};
use common::{unsafe_kill, Broker};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};

fn idempotent_producer(c: &Cluster) -> FutureProducer {
    c.brokers[0].producer(&[
        ("bootstrap.servers", &c.bootstrap()),
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("message.timeout.ms", "120000"),
    ])
}

async fn create_topic(c: &Cluster, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(3));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let created = c.brokers[0]
        .admin()
        .create_topics([&new], &AdminOptions::new())
        .await
        .unwrap();
    created[0].as_ref().expect("created");
    for b in &c.brokers {
        wait_until("every broker knows the topic", || {
            leaders(b, topic).len() == partitions as usize
        });
    }
}

/// True when `b` reports every partition of `topic` with all three replicas in sync.
fn fully_in_sync(b: &Broker, topic: &str) -> bool {
    let md = metadata(b);
    md.topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .is_some_and(|t| {
            t.partitions
                .iter()
                .all(|p| p.isr_nodes.len() == 3 && p.leader_id.0 >= 0)
        })
}

/// Restarts a killed broker and waits until it is back in every ISR of `topic`. Its
/// restart returns once it has registered again (its old registration expired); the
/// controller then takes it out of the ISRs and moves its leaderships within a few election
/// rounds, so the ISRs are checked after those, or a broker still on its way back would pass
/// for in sync and the next kill would leave a partition with one replica.
fn restart_and_rejoin(c: &mut Cluster, victim: i32, topic: &str) {
    c.broker(victim).restart();
    std::thread::sleep(Duration::from_millis(1000));
    c.wait_or_dump("the killed broker is back in every ISR", |c| {
        c.brokers.iter().all(|b| fully_in_sync(b, topic))
    });
}

/// A live broker other than `not`.
fn live_other(c: &Cluster, not: i32) -> &Broker {
    &c.brokers[if not == 1 { 1 } else { 0 }]
}

/// Starts the checker's workload on `topic`; returns its stop flag and handle.
fn start_workload(
    c: &Cluster,
    topic: &str,
    partitions: i32,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Outcome>) {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = tokio::spawn(checker::produce_until(
        idempotent_producer(c),
        topic.to_string(),
        partitions,
        8,
        stop.clone(),
    ));
    (stop, handle)
}

/// The checker's verdict (idempotent producer); the brokers' logs go to the test's output
/// if it finds a violation.
fn check_or_dump(
    c: &Cluster,
    stored: &std::collections::BTreeMap<i32, Vec<(i64, u64)>>,
    outcome: &Outcome,
) -> usize {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        checker::check(stored, outcome, true)
    })) {
        Ok(count) => count,
        Err(panic) => {
            c.dump_logs();
            std::panic::resume_unwind(panic)
        }
    }
}

/// Every send was acknowledged (with idempotence and a long message timeout, a failover
/// must not fail one); else the brokers' logs go to the test's output.
fn expect_no_failures(c: &Cluster, outcome: &Outcome) {
    if !outcome.failed.is_empty() {
        c.dump_logs();
        panic!(
            "{} failed sends, the first: {:?}",
            outcome.failed.len(),
            &outcome.failed[..outcome.failed.len().min(5)]
        );
    }
}

/// How long after its leader's SIGKILL at `killed` `partition` acknowledged a record again
/// (the successor's first acknowledgement: answers the dead leader had already sent arrive
/// within the first milliseconds, so those are left out).
fn first_ack_after(
    outcome_acks: &[checker::Ack],
    partition: i32,
    killed: Instant,
) -> Option<Duration> {
    let from = killed + Duration::from_millis(100);
    outcome_acks
        .iter()
        .filter(|a| a.partition == partition && a.acked > from)
        .map(|a| a.acked - killed)
        .min()
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_repeated_leader_kills() {
    let mut c = Cluster::start(3);
    create_topic(&c, "ha", 6, &[("min.insync.replicas", "2")]).await;
    let (stop, workload) = start_workload(&c, "ha", 6);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut kills = Vec::new();
    for round in 0..10 {
        let partition = round % 6;
        let victim = leaders(&c.brokers[0], "ha")[partition as usize];
        assert!(victim > 0, "partition {partition} has a leader");
        let killed_at = Instant::now();
        let killed_wall = std::time::SystemTime::now();
        c.broker(victim).kill();
        restart_and_rejoin(&mut c, victim, "ha");
        kills.push((partition, victim, killed_at, killed_wall));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let outcome = workload.await.unwrap();
    let stored = checker::read_back(&c.brokers[0], "ha", 6);
    let count = check_or_dump(&c, &stored, &outcome);
    expect_no_failures(&c, &outcome);
    let mut resumed: Vec<Duration> = kills
        .iter()
        .map(|(p, victim, at, wall)| {
            let d = first_ack_after(&outcome.acks, *p, *at).expect("production resumed");
            let unix = wall.duration_since(std::time::UNIX_EPOCH).unwrap();
            eprintln!(
                "partition {p}: leader {victim} killed at {:.3} (unix), next acknowledgement after {d:?}",
                unix.as_secs_f64()
            );
            d
        })
        .collect();
    resumed.sort();
    eprintln!(
        "{} acknowledged, {count} stored; leader SIGKILL to first acknowledged produce: median {:?}, worst {:?}",
        outcome.acks.len(),
        resumed[resumed.len() / 2],
        resumed[resumed.len() - 1]
    );
    // SLUICE_TEST_DUMP=1 prints the brokers' logs even when the test passes.
    if std::env::var_os("SLUICE_TEST_DUMP").is_some() {
        c.dump_logs();
    }
    // The session timeout (the dead leader's registration must expire), an election round
    // and the client's retry: about 3.5 s; slack for a loaded CI machine.
    let bound = Duration::from_millis(SESSION_TIMEOUT_MS) + Duration::from_secs(5);
    assert!(
        resumed.iter().all(|d| *d < bound),
        "production resumed within {bound:?} of each kill: {resumed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_leader_is_replaced_and_rejoins_without_losing_acknowledged_writes() {
    let mut c = Cluster::start(3);
    create_topic(&c, "paused", 6, &[("min.insync.replicas", "2")]).await;
    let (stop, workload) = start_workload(&c, "paused", 6);
    for partition in [0, 3] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let victim = leaders(&c.brokers[0], "paused")[partition as usize];
        let pid = c.broker(victim).pid();
        unsafe_kill(pid, "STOP");
        // Past its session: the controller moves its leaderships away.
        let watcher = live_other(&c, victim);
        wait_until("another broker leads the partition", || {
            let l = leaders(watcher, "paused")[partition as usize];
            l > 0 && l != victim
        });
        std::thread::sleep(Duration::from_millis(500));
        unsafe_kill(pid, "CONT");
        c.wait_or_dump("the paused broker catches up and rejoins every ISR", |c| {
            c.brokers.iter().all(|b| fully_in_sync(b, "paused"))
        });
    }
    stop.store(true, Ordering::Relaxed);
    let outcome = workload.await.unwrap();
    let stored = checker::read_back(&c.brokers[0], "paused", 6);
    check_or_dump(&c, &stored, &outcome);
    expect_no_failures(&c, &outcome);
}

#[tokio::test(flavor = "multi_thread")]
async fn min_insync_replicas_refuses_writes_it_cannot_replicate_and_recovers() {
    let mut c = Cluster::start(3);
    create_topic(&c, "guarded", 1, &[("min.insync.replicas", "2")]).await;
    let leader = leaders(&c.brokers[0], "guarded")[0];
    let mut raw = Raw::connect(c.broker(leader));
    assert_eq!(raw.produce("guarded", batch(b"first")).error_code, 0);
    let down: Vec<i32> = (1..=3).filter(|&b| b != leader).collect();
    for &b in &down {
        c.broker(b).kill();
    }
    let survivor = &c.brokers[(leader - 1) as usize];
    wait_until("the controller drops the gone brokers from the ISR", || {
        isr_of(survivor, "guarded", 0) == vec![leader]
    });
    // The leader's metrics say so, by name.
    let (_, metrics) = common::http_get(survivor, "/metrics");
    assert!(
        metrics.contains("sluice_under_replicated_partitions 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_partition_under_replicated{topic=\"guarded\",partition=\"0\"} 1"),
        "{metrics}"
    );
    let mut raw = Raw::connect(survivor);
    let refused = raw.produce("guarded", batch(b"refused"));
    assert_eq!(refused.error_code, 19, "NOT_ENOUGH_REPLICAS");
    // One broker back: it catches up, rejoins the ISR, and writes are accepted again.
    c.broker(down[0]).restart();
    let survivor = &c.brokers[(leader - 1) as usize];
    wait_until("the returning broker rejoins the ISR", || {
        isr_of(survivor, "guarded", 0).len() == 2
    });
    let mut raw = Raw::connect(survivor);
    let accepted = raw.produce("guarded", batch(b"second"));
    assert_eq!(accepted.error_code, 0);
    assert_eq!(
        accepted.base_offset, 1,
        "the refused write was never stored"
    );
    // The returned follower holds both records: read them from it after the leader stops.
    let leader_broker = c.broker(leader);
    leader_broker.kill();
    let other = &c.brokers[(down[0] - 1) as usize];
    wait_until("the returned follower leads", || {
        leaders(other, "guarded")[0] == down[0]
    });
    let consumer: BaseConsumer = other.consumer(&[]);
    let mut values = Vec::new();
    common::consume(&consumer, "guarded", &[0], Offset::Beginning, 2, |m| {
        values.push(common::payload(m))
    });
    assert_eq!(values, vec![b"first".to_vec(), b"second".to_vec()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_keeps_its_committed_offsets_when_its_coordinator_is_killed() {
    let mut c = Cluster::start_with(3, "\"offsets.topic.replication.factor\" = 3\n");
    create_topic(&c, "tracked", 1, &[]).await;
    let group = "survivor";
    let consumer: BaseConsumer =
        c.brokers[0].consumer(&[("bootstrap.servers", &c.bootstrap()), ("group.id", group)]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("tracked", 0, Offset::Offset(42))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
    drop(consumer);
    let coordinator = coordinator_of(&c.brokers[0], group);
    c.broker(coordinator).kill();
    let other = live_other(&c, coordinator);
    wait_until("another broker coordinates the group", || {
        let now = coordinator_of(other, group);
        now > 0 && now != coordinator
    });
    let consumer: BaseConsumer = other.consumer(&[("group.id", group)]);
    let mut ask = TopicPartitionList::new();
    ask.add_partition("tracked", 0);
    let committed = consumer
        .committed_offsets(ask, Duration::from_secs(20))
        .unwrap();
    assert_eq!(
        committed.find_partition("tracked", 0).unwrap().offset(),
        Offset::Offset(42)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_under_load_loses_nothing() {
    let mut c = Cluster::start_with(3, "\"offsets.topic.replication.factor\" = 3\n");
    create_topic(&c, "rolling", 6, &[("min.insync.replicas", "2")]).await;
    let (stop, workload) = start_workload(&c, "rolling", 6);
    // A consumer group reads along through the restarts.
    let reading = Arc::new(AtomicBool::new(true));
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let reader = {
        let consumer: BaseConsumer = c.brokers[0].consumer(&[
            ("bootstrap.servers", &c.bootstrap()),
            ("group.id", "along"),
            ("auto.offset.reset", "earliest"),
        ]);
        let (reading, seen) = (reading.clone(), seen.clone());
        std::thread::spawn(move || {
            consumer.subscribe(&["rolling"]).unwrap();
            while reading.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                    let v = std::str::from_utf8(m.payload().unwrap_or_default()).unwrap();
                    seen.lock().unwrap().insert(v.parse::<u64>().unwrap());
                }
            }
        })
    };
    for id in 1..=3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.broker(id).stop();
        // A clean shutdown hands its leaderships over before it stops serving.
        let log = c.broker(id).log_text();
        assert!(
            !log.contains("shutting down while still leading"),
            "broker {id} stopped without handing its leaderships over"
        );
        c.broker(id).restart();
        c.wait_or_dump("the restarted broker rejoins every ISR", |c| {
            c.brokers.iter().all(|b| fully_in_sync(b, "rolling"))
        });
    }
    stop.store(true, Ordering::Relaxed);
    let outcome = workload.await.unwrap();
    let stored = checker::read_back(&c.brokers[0], "rolling", 6);
    check_or_dump(&c, &stored, &outcome);
    expect_no_failures(&c, &outcome);
    // The group's reader sees every acknowledged record (at least once).
    let wanted: BTreeSet<u64> = outcome.acks.iter().map(|a| a.seq).collect();
    wait_until(
        "the group's reader has seen every acknowledged record",
        || wanted.is_subset(&seen.lock().unwrap()),
    );
    reading.store(false, Ordering::Relaxed);
    reader.join().unwrap();
}

/// A Fetch of partition 0 of `topic` from offset 0 as a consumer (replica id -1), at
/// `version`, naming `rack`: (error code, preferred read replica, high watermark, bytes).
fn consumer_fetch(b: &Broker, topic: &str, version: i16, rack: &str) -> (i16, i32, i64, usize) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut raw = Raw::connect(b);
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_rack_id(StrBytes::from_string(rack.into()))
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let c = raw.send(ApiKey::Fetch, version, &req);
    let r: FetchResponse = raw.receive_response(ApiKey::Fetch, version, c);
    let p = &r.responses[0].partitions[0];
    (
        p.error_code,
        p.preferred_read_replica.0,
        p.high_watermark,
        p.records.as_ref().map_or(0, |r| r.len()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_reads_from_an_in_sync_replica_in_its_rack() {
    let c = Cluster::start_with(
        3,
        "\"broker.rack\" = \"rack-{id}\"\n\
         \"replica.selector.class\" = \"org.apache.kafka.common.replica.RackAwareReplicaSelector\"\n",
    );
    create_topic(&c, "nearby", 1, &[]).await;
    let leader = leaders(&c.brokers[0], "nearby")[0];
    let follower = leader % 3 + 1;
    let producer = idempotent_producer(&c);
    for i in 0..50 {
        let v = format!("v-{i}");
        producer
            .send(
                rdkafka::producer::FutureRecord::to("nearby")
                    .partition(0)
                    .key(&v)
                    .payload(&v),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("acknowledged");
    }
    let at_leader = &c.brokers[(leader - 1) as usize];
    let at_follower = &c.brokers[(follower - 1) as usize];
    // The leader sends a consumer in the follower's rack there, with no records.
    let (code, preferred, hw, bytes) =
        consumer_fetch(at_leader, "nearby", 12, &format!("rack-{follower}"));
    assert_eq!((code, preferred, hw, bytes), (0, follower, 50, 0));
    // A consumer in the leader's rack, or naming none, reads at the leader.
    let (_, preferred, _, bytes) =
        consumer_fetch(at_leader, "nearby", 12, &format!("rack-{leader}"));
    assert_eq!(preferred, -1);
    assert!(bytes > 0);
    // The follower serves it, up to the leader's high watermark.
    wait_until("the follower knows the leader's high watermark", || {
        consumer_fetch(at_follower, "nearby", 12, "").2 == 50
    });
    let (code, _, _, bytes) = consumer_fetch(at_follower, "nearby", 12, "");
    assert_eq!(code, 0);
    assert!(bytes > 0);
    // Before KIP-392 (Fetch v10), only the leader serves consumers.
    assert_eq!(
        consumer_fetch(at_follower, "nearby", 10, "").0,
        6,
        "NOT_LEADER_OR_FOLLOWER"
    );
    // librdkafka with client.rack follows the redirection and reads everything.
    let consumer: BaseConsumer = at_leader.consumer(&[
        ("bootstrap.servers", &c.bootstrap()),
        ("client.rack", &format!("rack-{follower}")),
    ]);
    let mut values = Vec::new();
    common::consume(&consumer, "nearby", &[0], Offset::Beginning, 50, |m| {
        values.push(String::from_utf8(common::payload(m)).unwrap())
    });
    let expected: Vec<String> = (0..50).map(|i| format!("v-{i}")).collect();
    assert_eq!(values, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_off_leader_acknowledges_nothing_and_truncates_its_tail_when_it_returns() {
    let c = match Cluster::start_partitionable() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED: this machine refuses network namespaces ({why})");
            return;
        }
    };
    let cut_off = NAMESPACED_NODE;
    // Broker 3, in the namespace, leads the partition.
    let replicas = [cut_off, 1, 2];
    let assignment = [&replicas[..]];
    let topic = NewTopic::new("cut", 1, TopicReplication::Variable(&assignment));
    let created = c.brokers[0]
        .admin()
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap();
    created[0].as_ref().expect("created");
    for b in &c.brokers {
        wait_until("every broker knows the topic", || {
            leaders(b, "cut") == vec![cut_off]
        });
    }
    c.wait_or_dump("all replicas in sync", |c| {
        c.brokers.iter().all(|b| fully_in_sync(b, "cut"))
    });
    let producer = c.brokers[0].producer(&[("acks", "all")]);
    for i in 0..20 {
        let v = format!("before-{i}");
        send(&producer, "cut", &v).await;
    }

    let net = c.netns.as_ref().unwrap();
    net.cut();
    // Still reachable by a client on its side: acks=all cannot be acknowledged (its
    // followers are gone and it cannot reach the controller to shrink the ISR); acks=1 is
    // written locally, a tail the cluster will not have.
    let port = c.brokers[(cut_off - 1) as usize].port;
    let mut isolated = Raw::connect_to(&net.client_ip, port);
    let refused = isolated.produce("cut", batch(b"never-acknowledged"));
    assert_ne!(
        refused.error_code, 0,
        "an acks=all write it could not replicate"
    );
    let c_ack1 = {
        use kafka_protocol::messages::{ApiKey, ProduceResponse};
        let corr = isolated.send(
            ApiKey::Produce,
            9,
            &common::raw::produce_request("cut", batch(b"divergent"), 1),
        );
        let r: ProduceResponse = isolated.receive_response(ApiKey::Produce, 9, corr);
        r.responses[0].partition_responses[0].error_code
    };
    assert_eq!(c_ack1, 0, "acks=1 is the leader's own write");

    // The others elect a new leader from the ISR and carry on.
    let b1 = &c.brokers[0];
    wait_until("a broker on the majority side leads", || {
        let l = leaders(b1, "cut")[0];
        l > 0 && l != cut_off
    });
    // (A new producer: the first one's requests to the cut-off leader hang until timeout.)
    let producer = c.brokers[0].producer(&[("acks", "all")]);
    for i in 0..20 {
        let v = format!("during-{i}");
        send(&producer, "cut", &v).await;
    }

    // Healed: the cut-off broker learns it follows, cuts its divergent tail, catches up and
    // rejoins the ISR.
    net.heal();
    c.wait_or_dump("the cut-off broker rejoins the ISR", |c| {
        c.brokers.iter().all(|b| fully_in_sync(b, "cut"))
    });
    let leader = leaders(b1, "cut")[0];
    let on_leader = stored_bytes(&c.brokers[(leader - 1) as usize], "cut", 0);
    c.wait_or_dump("its log matches the leader's", |c| {
        stored_bytes(&c.brokers[(cut_off - 1) as usize], "cut", 0) == on_leader
    });
    assert!(c.brokers[(cut_off - 1) as usize]
        .log_text()
        .contains("truncating a divergent tail"));
    let consumer: BaseConsumer = b1.consumer(&[]);
    let mut values = Vec::new();
    common::consume(&consumer, "cut", &[0], Offset::Beginning, 40, |m| {
        values.push(String::from_utf8(common::payload(m)).unwrap())
    });
    let expected: Vec<String> = (0..20)
        .map(|i| format!("before-{i}"))
        .chain((0..20).map(|i| format!("during-{i}")))
        .collect();
    assert_eq!(values, expected);
}

async fn send(producer: &FutureProducer, topic: &str, value: &str) {
    producer
        .send(
            rdkafka::producer::FutureRecord::to(topic)
                .partition(0)
                .key(value)
                .payload(value),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("acknowledged");
}

/// Creates `topic` with one partition on `replicas` (the first preferred as leader).
async fn create_placed(c: &Cluster, topic: &str, replicas: &[i32], configs: &[(&str, &str)]) {
    let assignment = [replicas];
    let mut new = NewTopic::new(topic, 1, TopicReplication::Variable(&assignment));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let created = c.brokers[0]
        .admin()
        .create_topics([&new], &AdminOptions::new())
        .await
        .unwrap();
    created[0].as_ref().expect("created");
    for b in &c.brokers {
        wait_until("every broker knows the topic", || {
            leaders(b, topic) == vec![replicas[0]]
        });
    }
}

/// The values of partition 0 of `topic`, read through `b` to the end.
fn values_of(b: &Broker, topic: &str) -> Vec<String> {
    let stored = offsets_and_values(b, topic);
    stored.into_iter().map(|(_, v)| v).collect()
}

fn offsets_and_values(b: &Broker, topic: &str) -> Vec<(i64, String)> {
    let consumer: BaseConsumer = b.consumer(&[]);
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    let mut out = Vec::new();
    if high > low {
        let count = (high - low) as usize;
        common::consume(&consumer, topic, &[0], Offset::Beginning, count, |m| {
            out.push((m.offset(), String::from_utf8(common::payload(m)).unwrap()))
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn preferred_leaders_return_and_unclean_election_is_opt_in() {
    let mut c = Cluster::start_with(3, "\"leader.imbalance.check.interval.seconds\" = 1\n");
    create_placed(&c, "clean", &[1, 2], &[]).await;
    create_placed(
        &c,
        "unclean",
        &[1, 2],
        &[("unclean.leader.election.enable", "true")],
    )
    .await;
    let producer = c.brokers[2].producer(&[("bootstrap.servers", &c.bootstrap())]);
    for t in ["clean", "unclean"] {
        send(&producer, t, "a").await;
    }
    let watcher = 2; // broker 3, never stopped, reports what it sees
    let led = |c: &Cluster, t: &str| leaders(&c.brokers[watcher], t)[0];

    // The preferred replica (1) dies, 2 takes over; once 1 is back in sync it leads again.
    c.broker(1).kill();
    c.wait_or_dump("broker 2 leads both", |c| {
        led(c, "clean") == 2 && led(c, "unclean") == 2
    });
    c.broker(1).restart();
    c.wait_or_dump("the preferred replica leads again", |c| {
        led(c, "clean") == 1 && led(c, "unclean") == 1
    });

    // 2 dies and leaves the ISRs; "b" is acknowledged by 1 alone; then 1 dies too.
    c.broker(2).kill();
    c.wait_or_dump("the ISRs are broker 1 alone", |c| {
        isr_of(&c.brokers[watcher], "clean", 0) == vec![1]
            && isr_of(&c.brokers[watcher], "unclean", 0) == vec![1]
    });
    let producer = c.brokers[2].producer(&[("bootstrap.servers", &c.bootstrap())]);
    for t in ["clean", "unclean"] {
        send(&producer, t, "b").await;
    }
    c.broker(1).kill();
    c.wait_or_dump("both partitions are offline", |c| {
        led(c, "clean") == -1 && led(c, "unclean") == -1
    });
    // 2 returns, out of sync: only the topic that allows it takes it as leader.
    c.broker(2).restart();
    c.wait_or_dump("the unclean topic is led by the out-of-sync replica", |c| {
        led(c, "unclean") == 2
    });
    assert_eq!(
        led(&c, "clean"),
        -1,
        "a clean topic waits for an in-sync replica"
    );
    // 1 returns. The clean topic has it back with everything. The unclean one lost "b": its
    // new leader has written nothing, yet its epoch tells 1 where its tail diverges, so 1
    // cuts "b" before it rejoins the ISR and, as the preferred replica, leads again.
    c.broker(1).restart();
    c.wait_or_dump("broker 1 leads both topics again", |c| {
        led(c, "clean") == 1 && led(c, "unclean") == 1
    });
    // (Read once the leaders' high watermarks are back: a new leader's starts low.)
    c.wait_or_dump("the clean topic holds a and b", |c| {
        values_of(&c.brokers[watcher], "clean") == ["a", "b"]
    });
    c.wait_or_dump("the unclean topic holds a alone", |c| {
        values_of(&c.brokers[watcher], "unclean") == ["a"]
    });
    let producer = c.brokers[2].producer(&[("bootstrap.servers", &c.bootstrap())]);
    send(&producer, "unclean", "c").await;
    c.wait_or_dump("c follows a where b was", |c| {
        offsets_and_values(&c.brokers[watcher], "unclean") == [(0, "a".into()), (1, "c".into())]
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_idempotent_producer_loses_nothing_across_leader_kills() {
    let mut c = Cluster::start(3);
    create_topic(&c, "py", 3, &[("min.insync.replicas", "2")]).await;
    let stop = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let stop_file = stop.to_path_buf();
    drop(stop); // the script stops once the file exists
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/failover_producer.py"
    );
    let child = std::process::Command::new("python3")
        .arg(script)
        .args([&c.bootstrap(), "py", "3"])
        .arg(&stop_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    for partition in [0, 1] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let victim = leaders(&c.brokers[0], "py")[partition];
        c.broker(victim).kill();
        restart_and_rejoin(&mut c, victim, "py");
    }
    std::fs::write(&stop_file, b"stop").unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&stop_file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'confluent_kafka'"),
        "confluent-kafka is missing: pip install -r crates/sluice/tests/python/requirements.txt"
    );
    let now = Instant::now();
    let acks: Vec<checker::Ack> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            checker::Ack {
                partition: f[0].parse().unwrap(),
                offset: f[1].parse().unwrap(),
                seq: f[2].parse().unwrap(),
                sent: now,
                acked: now,
            }
        })
        .collect();
    assert!(acks.len() > 100, "the producer made progress: {stderr}");
    let outcome = Outcome {
        acks,
        failed: Vec::new(),
    };
    let stored = checker::read_back(&c.brokers[0], "py", 3);
    check_or_dump(&c, &stored, &outcome);
    assert!(out.status.success(), "every record acknowledged: {stderr}");
}

/// A follower's Fetch (v12, as broker `replica`) of partition 0 of `topic` at `offset`, its
/// last batch from `last_fetched_epoch`: (error, diverging epoch and end offset, bytes).
fn follower_fetch(
    b: &Broker,
    topic: &str,
    replica: i32,
    broker_epoch: Option<i64>,
    leader_epoch: i32,
    offset: i64,
    last_fetched_epoch: i32,
) -> (i16, (i32, i64), usize) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
    use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let partition = FetchPartition::default()
        .with_partition(0)
        .with_current_leader_epoch(leader_epoch)
        .with_fetch_offset(offset)
        .with_last_fetched_epoch(last_fetched_epoch)
        .with_partition_max_bytes(1 << 20);
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20);
    // v15 (topic ids) carries the broker epoch, as Sluice's followers send it; v12 has none.
    let (req, version) = match broker_epoch {
        Some(epoch) => {
            let id = metadata(b)
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
                .expect("the topic exists")
                .topic_id;
            let req = req
                .with_replica_state(
                    ReplicaState::default()
                        .with_replica_id(BrokerId(replica))
                        .with_replica_epoch(epoch),
                )
                .with_topics(vec![FetchTopic::default()
                    .with_topic_id(id)
                    .with_partitions(vec![partition])]);
            (req, 15)
        }
        None => {
            let req =
                req.with_replica_id(BrokerId(replica))
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.into())))
                        .with_partitions(vec![partition])]);
            (req, 12)
        }
    };
    let mut raw = Raw::connect(b);
    let c = raw.send(ApiKey::Fetch, version, &req);
    let r: FetchResponse = raw.receive_response(ApiKey::Fetch, version, c);
    let p = &r.responses[0].partitions[0];
    (
        p.error_code,
        (p.diverging_epoch.epoch, p.diverging_epoch.end_offset),
        p.records.as_ref().map_or(0, |r| r.len()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_tells_a_diverging_follower_where_its_log_parts() {
    let mut c = Cluster::start(3);
    create_placed(&c, "parted", &[1, 2, 3], &[]).await;
    let producer = c.brokers[1].producer(&[("bootstrap.servers", &c.bootstrap())]);
    for i in 0..5 {
        send(&producer, "parted", &format!("e0-{i}")).await;
    }
    c.broker(1).kill();
    let b2 = &c.brokers[1];
    wait_until("broker 2 leads in epoch 1", || {
        leaders(b2, "parted") == vec![2]
    });
    let producer = b2.producer(&[("bootstrap.servers", &b2.bootstrap())]);
    for i in 0..3 {
        send(&producer, "parted", &format!("e1-{i}")).await;
    }
    // A follower (broker 3, with its broker epoch) whose log holds epoch 0 up to offset 8
    // (as broker 1's would, had it written more alone): epoch 0 ends at 5 on the leader, so
    // the leader says so and sends nothing.
    let epoch3 = Some(c.broker_epoch(3));
    assert_eq!(
        follower_fetch(b2, "parted", 3, epoch3, 1, 8, 0),
        (0, (0, 5), 0)
    );
    // Cut at 5, it fetches on: epoch 0 ends where its log does, records come.
    let (code, diverging, bytes) = follower_fetch(b2, "parted", 3, epoch3, 1, 5, 0);
    assert_eq!((code, diverging), (0, (-1, -1)));
    assert!(bytes > 0);
    // Broker 1 itself, restarted, cuts nothing it should keep and catches up.
    c.broker(1).restart();
    c.wait_or_dump("broker 1 rejoins the ISR", |c| {
        c.brokers.iter().all(|b| fully_in_sync(b, "parted"))
    });
    let on_leader = stored_bytes(&c.brokers[1], "parted", 0);
    c.wait_or_dump("broker 1 holds the leader's log", |c| {
        stored_bytes(&c.brokers[0], "parted", 0) == on_leader
    });
}

/// DeleteRecords (v2) of partition 0 of `topic` before `offset`, at `b`: the error code.
fn delete_records_at(b: &Broker, topic: &str, offset: i64) -> i16 {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::{
        ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let mut raw = Raw::connect(b);
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    let c = raw.send(ApiKey::DeleteRecords, 2, &req);
    let r: DeleteRecordsResponse = raw.receive_response(ApiKey::DeleteRecords, 2, c);
    r.topics[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_left_behind_the_leaders_log_start_starts_over_there() {
    let mut c = Cluster::start(3);
    create_placed(&c, "trimmed", &[1, 2, 3], &[]).await;
    let producer = c.brokers[0].producer(&[("bootstrap.servers", &c.bootstrap())]);
    for i in 0..10 {
        send(&producer, "trimmed", &format!("a-{i}")).await;
    }
    // Broker 3 is away while the leader deletes records past everything it has.
    c.broker(3).kill();
    let b1 = &c.brokers[0];
    wait_until("broker 3 leaves the ISR", || {
        isr_of(b1, "trimmed", 0) == vec![1, 2]
    });
    for i in 0..10 {
        send(&producer, "trimmed", &format!("b-{i}")).await;
    }
    assert_eq!(delete_records_at(b1, "trimmed", 15), 0);
    c.broker(3).restart();
    c.wait_or_dump(
        "broker 3 starts over at the leader's log start and rejoins",
        |c| c.brokers.iter().all(|b| fully_in_sync(b, "trimmed")),
    );
    assert!(c.brokers[2]
        .log_text()
        .contains("behind the leader's log start: starting over there"));
    // It leads what it holds: offsets 15-19.
    c.broker(1).kill();
    c.broker(2).kill();
    let b3 = &c.brokers[2];
    wait_until("broker 3 leads", || leaders(b3, "trimmed") == vec![3]);
    let values: Vec<(i64, String)> = offsets_and_values(b3, "trimmed");
    let expected: Vec<(i64, String)> = (15..20).map(|o| (o, format!("b-{}", o - 10))).collect();
    assert_eq!(values, expected);
}

/// A client that pretends to be the followers (Fetch with their replica ids, at an offset
/// the leader never wrote) while they are paused: before the fix the leader counted those
/// offsets as the followers' log ends and answered acks=all for a record only it had, which
/// the next leader then lacked. Now such fetches get OFFSET_OUT_OF_RANGE and move nothing,
/// and a fetch at the log end counts only with the follower's broker epoch (KIP-903).
#[tokio::test(flavor = "multi_thread")]
async fn forged_follower_fetches_do_not_let_acks_all_through() {
    let c = Cluster::start(3);
    create_placed(&c, "forged", &[1, 2, 3], &[("min.insync.replicas", "2")]).await;
    let leader = &c.brokers[0];
    let mut raw = Raw::connect(leader);
    assert_eq!(raw.produce("forged", batch(b"replicated")).error_code, 0);
    wait_until("every replica in sync", || fully_in_sync(leader, "forged"));
    let followers = [c.brokers[1].pid(), c.brokers[2].pid()];
    for pid in followers {
        unsafe_kill(pid, "STOP");
    }
    let epochs = [(2, c.broker_epoch(2)), (3, c.broker_epoch(3))];
    let forging = AtomicBool::new(true);
    let (answer, codes) = std::thread::scope(|s| {
        let forger = s.spawn(|| {
            let mut codes = BTreeSet::new();
            while forging.load(Ordering::Relaxed) {
                for (replica, epoch) in epochs {
                    // Past the leader's log end, with the follower's real broker epoch.
                    let past =
                        follower_fetch(leader, "forged", replica, Some(epoch), -1, 1 << 40, -1);
                    codes.insert(("past the log end", past.0));
                    // At the log end once the produce is written, as the follower (without
                    // a broker epoch, or with a wrong one) would fetch after copying it.
                    let none = follower_fetch(leader, "forged", replica, None, -1, 2, -1);
                    codes.insert(("no broker epoch", none.0));
                    let wrong =
                        follower_fetch(leader, "forged", replica, Some(epoch + 1), -1, 2, -1);
                    codes.insert(("a wrong broker epoch", wrong.0));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            codes
        });
        std::thread::sleep(Duration::from_millis(200));
        let answer = raw.produce("forged", batch(b"only on the leader"));
        forging.store(false, Ordering::Relaxed);
        (answer, forger.join().unwrap())
    });
    for pid in followers {
        unsafe_kill(pid, "CONT");
    }
    assert_ne!(
        answer.error_code, 0,
        "acks=all was answered with both followers paused"
    );
    const OFFSET_OUT_OF_RANGE: i16 = 1;
    const STALE_BROKER_EPOCH: i16 = 77;
    assert_eq!(
        codes,
        BTreeSet::from([
            ("past the log end", OFFSET_OUT_OF_RANGE),
            ("no broker epoch", STALE_BROKER_EPOCH),
            ("a wrong broker epoch", STALE_BROKER_EPOCH),
        ]),
        "forged fetches answered"
    );
}

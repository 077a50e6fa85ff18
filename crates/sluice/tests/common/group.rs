//! Consumer-group members running in their own threads, recording what they read.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;

use std::collections::HashSet;

use rdkafka::producer::FutureRecord;

use super::Broker;

/// Counts the rebalances a member goes through.
struct Counting(Arc<AtomicUsize>);

impl ClientContext for Counting {}

impl ConsumerContext for Counting {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// (topic, partition, offset) of one consumed record.
pub type Seen = (String, i32, i64);

pub struct Member {
    stop: Arc<AtomicBool>,
    /// Leave the group on stop (false: just drop the connection, like a crash).
    leave: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    assignment: Arc<Mutex<BTreeSet<(String, i32)>>>,
    rebalances: Arc<AtomicUsize>,
}

impl Member {
    /// Subscribes to `topics` in `group`, commits each record synchronously after reading it.
    pub fn start(broker: &Broker, group: &str, topics: &[&str], extra: &[(&str, &str)]) -> Member {
        let mut config = broker.config();
        config.set("group.id", group);
        // With group.protocol=consumer (KIP-848) the broker sets session and heartbeat timing.
        if !extra
            .iter()
            .any(|(k, v)| *k == "group.protocol" && *v == "consumer")
        {
            config
                .set("session.timeout.ms", "3000")
                .set("heartbeat.interval.ms", "300");
        }
        config
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        let rebalances = Arc::new(AtomicUsize::new(0));
        let consumer: BaseConsumer<Counting> = config
            .create_with_context(Counting(rebalances.clone()))
            .expect("consumer");
        consumer.subscribe(topics).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let leave = Arc::new(AtomicBool::new(true));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let assignment: Arc<Mutex<BTreeSet<(String, i32)>>> = Arc::default();
        let handle = {
            let (stop, leave, seen, assignment) = (
                stop.clone(),
                leave.clone(),
                seen.clone(),
                assignment.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                        seen.lock().unwrap().push((
                            m.topic().to_string(),
                            m.partition(),
                            m.offset(),
                        ));
                        if let Err(e) = consumer.commit_message(&m, CommitMode::Sync) {
                            eprintln!(
                                "COMMIT FAILED {} {} {}: {e}",
                                m.topic(),
                                m.partition(),
                                m.offset()
                            );
                        }
                    }
                    if let Ok(a) = consumer.assignment() {
                        *assignment.lock().unwrap() = a
                            .elements()
                            .iter()
                            .map(|e| (e.topic().to_string(), e.partition()))
                            .collect();
                    }
                }
                if leave.load(Ordering::Relaxed) {
                    consumer.unsubscribe(); // sends LeaveGroup
                }
                // Closing: a dynamic member leaves; a static one (group.instance.id) does not
                // (KIP-345), so its place waits for its session timeout.
                drop(consumer);
            })
        };
        Member {
            stop,
            leave,
            handle: Some(handle),
            seen,
            assignment,
            rebalances,
        }
    }

    pub fn assignment(&self) -> BTreeSet<(String, i32)> {
        self.assignment.lock().unwrap().clone()
    }

    /// Rebalance callbacks so far (each assignment and each revocation counts).
    pub fn rebalances(&self) -> usize {
        self.rebalances.load(Ordering::Relaxed)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops and leaves the group.
    pub fn stop(mut self) -> Vec<Seen> {
        self.halt(true);
        self.seen()
    }

    /// Stops by closing the consumer without unsubscribing first.
    pub fn close(mut self) -> Vec<Seen> {
        self.halt(false);
        self.seen()
    }

    fn halt(&mut self, leave: bool) {
        self.leave.store(leave, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.halt(true);
    }
}

/// Polls `cond` until it holds, failing the test with `what` after `secs` seconds.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Produces `count` records spread round-robin over `partitions`, valued `{tag}-{i}`.
pub async fn produce(broker: &Broker, topic: &str, partitions: i32, count: usize, tag: &str) {
    let producer = broker.producer(&[("linger.ms", "1")]);
    let sends: Vec<_> = (0..count)
        .map(|i| {
            let producer = producer.clone();
            let (topic, value) = (topic.to_string(), format!("{tag}-{i}"));
            async move {
                producer
                    .send(
                        FutureRecord::<(), _>::to(&topic)
                            .partition(i as i32 % partitions)
                            .payload(&value),
                        Duration::from_secs(10),
                    )
                    .await
                    .expect("delivered");
            }
        })
        .collect();
    futures::future::join_all(sends).await;
}

/// Everything the members have read.
pub fn union(members: &[&Member]) -> Vec<Seen> {
    members.iter().flat_map(|m| m.seen()).collect()
}

pub fn assert_exactly_once(seen: &[Seen], expected: usize) {
    let unique: HashSet<&Seen> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a record was read twice");
    assert_eq!(seen.len(), expected, "every record read");
}

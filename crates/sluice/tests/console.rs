//! The web console, loaded in headless Chromium (Debian's `chromium`, installed by the test
//! command) from the real binary: the topics, a record and a group's lag appear on the page,
//! and a screenshot is saved (target/test-artifacts/console.png).

mod common;

use std::process::Command;

use common::group::{produce, wait_until, Member};
use common::share::holding_queue;
use common::Broker;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

/// Chromium's rendering of `url` once its scripts ran (`--dump-dom`), or a screenshot.
fn chromium(args: &[&str], url: &str) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (the test command installs Debian's chromium)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_shows_topics_a_record_and_a_groups_lag() {
    // The test member asks for a 3 s session (below the 6 s minimum by default).
    let broker = Broker::start_with_config("group.min.session.timeout.ms = 500\n");
    broker
        .create_topic("orders", 2, &[("retention.ms", "600000")])
        .await;
    produce(&broker, "orders", 1, 7, "order").await; // order-0 .. order-6 in partition 0
    let consumer = broker.consumer(&[("group.id", "billing")]);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("orders", 0, Offset::Offset(4))
        .unwrap();
    consumer.commit(&commit, CommitMode::Sync).unwrap();

    // A live group member, assigned both partitions.
    let member = Member::start(&broker, "live", &["orders"], &[]);
    wait_until(30, "the member is assigned", || {
        member.assignment().len() == 2
    });

    // A producer with a transaction open.
    let open = common::txn::txn_producer(broker.config(), "console-txn", &[]);
    open.begin_transaction().unwrap();
    common::txn::send(&open, "orders", 1, "pending");
    open.flush(common::txn::TIMEOUT).unwrap();

    // A queue whose member holds its five jobs.
    let _holder = holding_queue(&broker, "jobs", "workers", 5).await;
    wait_until(15, "the queue's state shows them acquired", || {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args([
                "queue",
                "describe",
                "workers",
                "--output",
                "json",
                "--bootstrap",
            ])
            .arg(broker.bootstrap())
            .output()
            .unwrap();
        let q: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        q["partitions"][0]["acquired"] == 5
    });

    let url = format!(
        "http://127.0.0.1:{}/#topic=orders&partition=0&offset=0&group=live",
        broker.http_port
    );
    let dom = chromium(&["--dump-dom"], &url);
    let text = dom.replace(['\n', ' '], "");
    assert!(dom.contains("cluster "), "the cluster id is shown");
    assert!(
        text.contains("<td>orders</td><tdclass=\"num\">2</td>"),
        "the topic with 2 partitions: {dom}"
    );
    assert!(
        dom.contains("order-0") && dom.contains("order-6"),
        "its records: {dom}"
    );
    assert!(dom.contains("retention.ms=600000"), "its configs");
    assert!(
        dom.contains(" B</td>") || dom.contains(" KiB</td>"),
        "its partitions' sizes: {dom}"
    );
    assert!(
        text.contains("<td>billing</td><td>EMPTY</td><tdclass=\"num\">3</td>"),
        "the group's lag (7 - 4): {dom}"
    );
    assert!(dom.contains("controller"));
    assert!(
        dom.contains("records/s") && dom.contains("bytes/s"),
        "the live charts' legends"
    );
    assert!(!dom.contains("&lt;span"), "no markup shown as text: {dom}");
    // The queue: 1 member, 5 unfinished, 5 acquired, delivered once.
    assert!(
        text.contains("<td>workers</td><td>STABLE</td><tdclass=\"num\">1</td><td>jobs</td><tdclass=\"num\">0</td><tdclass=\"num\">0</td><tdclass=\"num\">5</td><tdclass=\"num\">5</td><tdclass=\"num\">5</td>"),
        "the queue row: {dom}"
    );
    assert!(text.contains("1x:5"), "{dom}");
    // The open transaction.
    assert!(
        text.contains("<td>console-txn</td><td>Ongoing</td>"),
        "the transaction row: {dom}"
    );
    // The live group's member and what it is assigned.
    assert!(
        text.contains("<td>orders-0,orders-1</td>"),
        "the member's assignment: {dom}"
    );
    assert!(
        !text.contains("<td>workers</td><td>STABLE</td><tdclass=\"num\">0</td>"),
        "a queue is not a consumer group: {dom}"
    );

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("console.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &[
            "--window-size=1280,1100",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real picture"
    );
    eprintln!(
        "console screenshot: {}",
        shot.canonicalize().unwrap().display()
    );
}

//! `sluice transaction`: listing and describing transactions, a partition's producers, and
//! aborting a hanging transaction at a partition (which lets read_committed consumers past
//! it), against the real binary with librdkafka transactional producers.

mod common;

use common::txn::{read_all, send, txn_producer, TIMEOUT};
use common::{sluice_at, sluice_json, Broker};
use rdkafka::producer::{FutureRecord, Producer};

#[test]
fn transactions_are_listed_described_and_a_hanging_one_aborted() {
    let broker = Broker::start();
    let done = txn_producer(broker.config(), "cli-done", &[]);
    done.begin_transaction().unwrap();
    send(&done, "hang", 0, "committed-0");
    done.commit_transaction(TIMEOUT).unwrap();
    // A transaction left open (its producer stays alive, its timeout far away).
    let hanging = txn_producer(
        broker.config(),
        "cli-hang",
        &[("transaction.timeout.ms", "600000")],
    );
    hanging.begin_transaction().unwrap();
    send(&hanging, "hang", 0, "pending-0");
    hanging.flush(TIMEOUT).unwrap();
    let plain = broker.producer(&[]);
    futures::executor::block_on(
        plain.send(
            FutureRecord::<(), str>::to("hang")
                .partition(0)
                .payload("plain-after"),
            TIMEOUT,
        ),
    )
    .unwrap();

    let listed = sluice_json(&broker, "transaction", &["list"]);
    let state_of = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["transactional_id"] == id)
            .map(|t| t["state"].as_str().unwrap().to_string())
    };
    assert_eq!(state_of("cli-done").as_deref(), Some("CompleteCommit"));
    assert_eq!(state_of("cli-hang").as_deref(), Some("Ongoing"));
    let open = sluice_json(&broker, "transaction", &["list", "--state", "Ongoing"]);
    assert_eq!(open.as_array().unwrap().len(), 1);
    let (code, text, _) = sluice_at(&broker, "transaction", &["list"]);
    assert_eq!(code, 0);
    assert!(
        text.starts_with("TRANSACTIONAL_ID") && text.contains("cli-hang"),
        "{text}"
    );

    let d = sluice_json(&broker, "transaction", &["describe", "cli-hang"]);
    assert_eq!(d["state"], "Ongoing");
    assert_eq!(d["partitions"], serde_json::json!(["hang-0"]));
    let (code, _, err) = sluice_at(&broker, "transaction", &["describe", "nobody"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("TRANSACTIONAL_ID_NOT_FOUND"), "{err}");

    let producers = sluice_json(&broker, "transaction", &["producers", "--topic", "hang"]);
    let open_row = producers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["current_txn_start_offset"] == 2)
        .unwrap_or_else(|| panic!("{producers}"))
        .clone();
    let pid = open_row["producer_id"].as_i64().unwrap().to_string();
    assert_eq!(
        read_all(broker.config(), "hang", 1, "read_committed")[&0],
        ["committed-0"],
        "held back at the open transaction"
    );

    // `sluice consume` reads committed records unless asked for all.
    let consume = |extra: &[&str]| {
        let mut args = vec!["hang", "--from-beginning", "--exit-at-end"];
        args.extend_from_slice(extra);
        let (code, out, err) = sluice_at(&broker, "consume", &args);
        assert_eq!(code, 0, "{err}");
        out
    };
    assert_eq!(consume(&[]), "committed-0\n");
    assert_eq!(
        consume(&["--read-uncommitted"]),
        "committed-0\npending-0\nplain-after\n"
    );

    let (code, out, err) = sluice_at(
        &broker,
        "transaction",
        &[
            "abort",
            "--topic",
            "hang",
            "--partition",
            "0",
            "--producer-id",
            &pid,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("aborted"), "{out}");
    assert_eq!(
        read_all(broker.config(), "hang", 1, "read_committed")[&0],
        ["committed-0", "plain-after"],
        "the aborted records stay hidden, the later one shows"
    );
    let (code, _, err) = sluice_at(
        &broker,
        "transaction",
        &[
            "abort",
            "--topic",
            "hang",
            "--partition",
            "0",
            "--producer-id",
            &pid,
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("no open transaction"), "{err}");
    let (code, _, err) = sluice_at(&broker, "transaction", &["producers", "--topic", "nope"]);
    assert_eq!(code, 2, "{err}");
    drop(hanging);
}

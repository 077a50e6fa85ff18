//! `sluice topic ...` against the real broker: output (tables and JSON), exit codes, and bad
//! input (a topic that exists or does not, an unreachable broker, malformed arguments).

mod common;

use std::process::Command;

use common::group::produce;
use common::Broker;
use serde_json::Value;

fn topic(broker: &Broker, args: &[&str]) -> (i32, String, String) {
    common::sluice_at(broker, "topic", args)
}

fn json(broker: &Broker, args: &[&str]) -> Value {
    common::sluice_json(broker, "topic", args)
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_are_created_described_changed_and_deleted() {
    let broker = Broker::start();
    let (code, out, err) = topic(
        &broker,
        &[
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=60000",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "created: orders\n"), "{err}");
    let (code, _, err) = topic(&broker, &["create", "orders"]);
    assert_eq!(code, 1);
    assert!(err.contains("TOPIC_ALREADY_EXISTS (36)"), "{err}");

    let listed = json(&broker, &["list"]);
    let orders = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders")
        .expect("listed");
    assert_eq!(orders["partitions"], 3);
    let (code, table, _) = topic(&broker, &["list"]);
    assert_eq!(code, 0);
    assert!(table.starts_with("TOPIC"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("orders") && l.contains(" 3 ")),
        "{table}"
    );

    produce(&broker, "orders", 1, 5, "o").await;
    let described = json(&broker, &["describe", "orders"]);
    let t = &described[0];
    assert_eq!(t["configs"]["retention.ms"], "60000");
    assert_eq!(t["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(t["partitions"][0]["end_offset"], 5);
    assert_eq!(t["partitions"][0]["start_offset"], 0);
    assert_eq!(t["partitions"][0]["leader"], 1);

    let (code, _, err) = topic(
        &broker,
        &[
            "alter-config",
            "orders",
            "--set",
            "retention.ms=120000",
            "--set",
            "cleanup.policy=compact",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let t = &json(&broker, &["describe", "orders"])[0];
    assert_eq!(t["configs"]["retention.ms"], "120000");
    assert_eq!(t["configs"]["cleanup.policy"], "compact");
    let (code, _, _) = topic(
        &broker,
        &["alter-config", "orders", "--delete", "cleanup.policy"],
    );
    assert_eq!(code, 0);
    let t = &json(&broker, &["describe", "orders"])[0];
    assert!(t["configs"].get("cleanup.policy").is_none(), "{t}");
    let (code, _, err) = topic(
        &broker,
        &["alter-config", "orders", "--set", "retention.ms=soon"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("INVALID_CONFIG"), "{err}");

    let (code, _, err) = topic(&broker, &["add-partitions", "orders", "--total", "5"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json(&broker, &["describe", "orders"])[0]["partitions"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let (code, _, err) = topic(&broker, &["add-partitions", "orders", "--total", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("INVALID_PARTITIONS"), "{err}");

    let (code, out, _) = topic(&broker, &["delete", "orders"]);
    assert_eq!((code, out.as_str()), (0, "deleted: orders\n"));
    let (code, _, err) = topic(&broker, &["describe", "orders"]);
    assert_eq!(code, 1);
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
    let (code, _, err) = topic(&broker, &["delete", "orders"]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn bad_arguments_and_an_unreachable_broker_exit_with_2() {
    let unreachable = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("topic")
            .args(args)
            .output()
            .unwrap()
    };
    let out = unreachable(&["list", "--bootstrap", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach a broker at 127.0.0.1:1"));
    let out = unreachable(&["create", "x", "--config", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not name=value"));
    let out = unreachable(&["create", "x", "--partitions", "many"]);
    assert_eq!(out.status.code(), Some(2));
}

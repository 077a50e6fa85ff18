//! `sluice produce` and `sluice consume` against the real broker: lines in, records out in
//! the formats asked, from where asked, alone or in a group; and the exit codes of errors.

mod common;

use std::process::{Command, Output, Stdio};

use common::Broker;
use serde_json::Value;

fn sluice(broker: &Broker, args: &[&str], stdin: &str) -> Output {
    let bootstrap = broker.bootstrap();
    let mut all = args.to_vec();
    all.extend(["--bootstrap", &bootstrap]);
    common::sluice_with_stdin(&all, stdin)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_go_in_as_records_and_come_out_as_asked() {
    let broker = Broker::start();
    broker.create_topic("lines", 1, &[]).await;
    let o = sluice(
        &broker,
        &[
            "produce",
            "lines",
            "--key-separator",
            ":",
            "--header",
            "src=cli",
            "--compression",
            "lz4",
        ],
        "k1:first\nk2:second\nthird\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("produced 3 of 3 records"),
        "{}",
        stderr(&o)
    );
    // The same from a file, after the first three.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("more.txt");
    std::fs::write(&file, "fourth\nfifth\n").unwrap();
    let o = sluice(
        &broker,
        &["produce", "lines", "--file", file.to_str().unwrap()],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let o = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--from-beginning",
            "--exit-at-end",
            "--format",
            "%p:%o %k=%v [%h]\\n",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "0:0 k1=first [src=cli]\n0:1 k2=second [src=cli]\n0:2 =third [src=cli]\n0:3 =fourth []\n0:4 =fifth []\n"
    );
    // JSON lines, and --count.
    let o = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--from-beginning",
            "--count",
            "2",
            "--output",
            "json",
        ],
        "",
    );
    let records: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["key"], "k1");
    assert_eq!(records[0]["value"], "first");
    assert_eq!(records[0]["headers"]["src"], "cli");
    assert_eq!(records[1]["offset"], 1);
    assert!(records[0]["timestamp"].as_i64().unwrap() > 0);
    // From an offset, and from a time (every record is newer than 0, none than the future).
    let o = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--partition",
            "0",
            "--offset",
            "3",
            "--exit-at-end",
        ],
        "",
    );
    assert_eq!(stdout(&o), "fourth\nfifth\n");
    let o = sluice(
        &broker,
        &["consume", "lines", "--from-timestamp", "0", "--exit-at-end"],
        "",
    );
    assert_eq!(stdout(&o).lines().count(), 5);

    // As a group member: everything once, committed, then nothing new.
    let o = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--group",
            "cli-readers",
            "--from-beginning",
            "--exit-at-end",
        ],
        "",
    );
    assert_eq!(stdout(&o).lines().count(), 5, "{}", stderr(&o));
    let o = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--group",
            "cli-readers",
            "--exit-at-end",
        ],
        "",
    );
    assert_eq!(stdout(&o), "", "committed: nothing again");
    let o = sluice(
        &broker,
        &["group", "describe", "cli-readers", "--output", "json"],
        "",
    );
    let d: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(d["partitions"][0]["committed"], 5);

    // Errors: a topic that does not exist, a partition that does not, no broker.
    let o = sluice(&broker, &["consume", "nope", "--exit-at-end"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{}",
        stderr(&o)
    );
    let o = sluice(&broker, &["produce", "lines", "--partition", "7"], "x\ny\n");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("line 1:"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("produced 0 of 2 records"),
        "{}",
        stderr(&o)
    );
    for args in [&["produce", "lines"][..], &["consume", "lines"][..]] {
        let o = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .args(["--bootstrap", "127.0.0.1:1"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot reach a broker"),
            "{}",
            stderr(&o)
        );
    }
}

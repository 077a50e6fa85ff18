//! Smoke test with Debian's kcat (librdkafka 2.0.2): produce, consume and list metadata.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Broker;

fn kcat(broker: &Broker, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("kcat")
        .arg("-b")
        .arg(broker.bootstrap())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed (apt-get install kcat; .ci/run does this)");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn kcat_produces_consumes_and_lists() {
    let broker = Broker::start();
    let input: String = (0..100).map(|i| format!("key{i}:line {i}\n")).collect();
    kcat(
        &broker,
        &["-t", "smoke", "-P", "-K:", "-z", "snappy"],
        Some(&input),
    );
    kcat(
        &broker,
        &["-t", "smoke", "-P", "-z", "gzip"],
        Some("plain 1\nplain 2\n"),
    );
    let out = kcat(
        &broker,
        &["-t", "smoke", "-C", "-e", "-q", "-f", "%k=%s@%o\n"],
        None,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 102);
    assert_eq!(lines[0], "key0=line 0@0");
    assert_eq!(lines[99], "key99=line 99@99");
    assert_eq!(lines[101], "=plain 2@101");
    // Reading from an offset in the middle of a stored batch returns exactly the rest.
    let tail = kcat(
        &broker,
        &["-t", "smoke", "-C", "-e", "-q", "-o", "50", "-f", "%o\n"],
        None,
    );
    assert_eq!(tail.lines().next(), Some("50"));
    assert_eq!(tail.lines().count(), 52);
    let metadata = kcat(&broker, &["-L", "-t", "smoke"], None);
    assert!(
        metadata.contains("topic \"smoke\" with 1 partitions"),
        "{metadata}"
    );
}

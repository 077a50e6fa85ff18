//! Runs the kafka-python smoke test (tests/python/) against the real binary.

mod common;

use std::process::Command;

use common::Broker;

#[test]
fn kafka_python_client_works() {
    let broker = Broker::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/kafka_python_smoke.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(broker.bootstrap())
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'kafka'"),
        "kafka-python is missing: pip install -r crates/sluice/tests/python/requirements.txt (.ci/run does this)"
    );
    assert!(
        out.status.success(),
        "kafka-python smoke test failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

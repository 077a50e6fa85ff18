//! The CLI and `sluice bench` on secured listeners: Kafka client properties in
//! `--command-config` (librdkafka's and Java's spellings), the same as flags, SCRAM and PLAIN
//! over TLS. Every client subcommand against a SASL_SSL-only path, and a wrong password
//! refused with a message that names it.

mod common;

use std::process::Command;

use common::secure::{Ca, Files};
use common::Broker;

/// A broker with PLAINTEXT (its usual port) and SASL_SSL and SSL listeners; the CA in
/// `ca.pem`.
fn secured_broker(files: &Files, ca: &Ca) -> (Broker, u16, u16) {
    let keystore = common::secure::broker_keystore(files, ca);
    let (sasl_ssl, ssl) = (common::free_port(), common::free_port());
    let b = Broker::start_naming_port(|port| {
        format!(
            "listeners = \"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_ssl},SSL://127.0.0.1:{ssl}\"\n\
             \"ssl.keystore.location\" = \"{}\"\n",
            keystore.display()
        )
    });
    (b, sasl_ssl, ssl)
}

/// `sluice <args>` with stdin; exit code, stdout, stderr.
fn sluice(args: &[&str], stdin: &str) -> (i32, String, String) {
    let out = common::sluice_with_stdin(args, stdin);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_client_subcommand_and_the_bench_work_over_sasl_ssl_with_a_command_config() {
    let ca = Ca::new("Sluice test CA");
    let files = Files::new();
    let (broker, sasl_ssl, _) = secured_broker(&files, &ca);
    let (code, out, err) = common::sluice_at(
        &broker,
        "user",
        &["create", "alice", "--password", "alice-pw"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let config = files.write(
        "client.properties",
        &format!(
            "# as kafka-topics.sh --command-config takes it\n\
             security.protocol=SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-256\n\
             sasl.username=alice\n\
             sasl.password=alice-pw\n\
             ssl.ca.location={}\n",
            files.path("ca.pem")
        ),
    );
    let at = format!("127.0.0.1:{sasl_ssl}");
    let cfg = config.display().to_string();
    let secured = |args: &[&str], stdin: &str| {
        let mut all = args.to_vec();
        all.extend(["--bootstrap", &at, "--command-config", &cfg]);
        sluice(&all, stdin)
    };

    let (code, out, err) = secured(&["topic", "create", "orders", "--partitions", "2"], "");
    assert_eq!(code, 0, "topic create: {out}{err}");
    let (code, out, err) = secured(
        &["produce", "orders", "--key-separator", ":"],
        "a:one\nb:two\nc:three\n",
    );
    assert_eq!(code, 0, "produce (librdkafka): {out}{err}");
    let (code, out, err) = secured(
        &[
            "consume",
            "orders",
            "--from-beginning",
            "--exit-at-end",
            "--group",
            "readers",
        ],
        "",
    );
    assert_eq!(code, 0, "consume (librdkafka): {err}");
    let mut seen: Vec<&str> = out.lines().collect();
    seen.sort();
    assert_eq!(seen, ["one", "three", "two"]);
    for args in [
        &["topic", "list"][..],
        &["topic", "describe", "orders"],
        &["group", "list"],
        &["group", "describe", "readers"],
        &["transaction", "list"],
        &["cluster", "status"],
        &["user", "list"],
    ] {
        let (code, out, err) = secured(args, "");
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    let (code, out, _) = secured(&["group", "describe", "readers", "--output", "json"], "");
    assert_eq!(code, 0);
    assert!(out.contains("orders"), "{out}");

    // kcat (Debian's, librdkafka 2.0) reads the same file: it checks for SaslHandshake v0
    // before it logs in with v1.
    let kcat = Command::new("kcat")
        .args([
            "-b", &at, "-F", &cfg, "-C", "-t", "orders", "-e", "-q", "-f", "%s\n",
        ])
        .output()
        .expect("kcat runs");
    let mut read: Vec<String> = String::from_utf8_lossy(&kcat.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    read.sort();
    assert_eq!(
        read,
        ["one", "three", "two"],
        "kcat: {}",
        String::from_utf8_lossy(&kcat.stderr)
    );

    // The bench measures the same listener with the same settings.
    for mode in ["produce", "consume"] {
        let (code, out, err) = secured(
            &[
                "bench",
                mode,
                "--topic",
                "bench",
                "--records",
                "2000",
                "--progress-interval",
                "0",
            ],
            "",
        );
        assert_eq!(code, 0, "bench {mode}: {out}{err}");
        assert!(out.contains("2000 records"), "bench {mode}: {out}");
    }
    let (code, out, err) = secured(&["bench", "connect", "--records", "5"], "");
    assert_eq!(code, 0, "bench connect: {out}{err}");
    assert!(out.contains("connect: 5 records"), "{out}");

    // Flags win over the file: a wrong password is refused, and said so.
    let (code, _, err) = secured(&["topic", "list", "--sasl-password", "wrong"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("authentication failed"), "{err}");
    let (code, _, err) = secured(
        &[
            "bench",
            "connect",
            "--records",
            "1",
            "--sasl-password",
            "wrong",
        ],
        "",
    );
    assert_ne!(code, 0);
    assert!(err.contains("authentication failed"), "{err}");
}

#[test]
fn java_client_properties_and_flags_alone_reach_tls_and_sasl_listeners() {
    let ca = Ca::new("Sluice test CA");
    let files = Files::new();
    let (broker, sasl_ssl, ssl) = secured_broker(&files, &ca);
    let (code, out, err) =
        common::sluice_at(&broker, "user", &["create", "bob", "--password", "bob-pw"]);
    assert_eq!(code, 0, "{out}{err}");
    // Java's spelling: sasl.jaas.config and a PEM truststore.
    let java = files.write(
        "java.properties",
        &format!(
            "security.protocol=SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"bob\" password=\"bob-pw\";\n\
             ssl.truststore.type=PEM\n\
             ssl.truststore.location={}\n",
            files.path("ca.pem")
        ),
    );
    let (code, out, err) = sluice(
        &[
            "topic",
            "create",
            "java",
            "--bootstrap",
            &format!("127.0.0.1:{sasl_ssl}"),
            "--command-config",
            &java.display().to_string(),
        ],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    // Flags only: PLAIN over TLS, then SSL without a login.
    let ca_path = files.path("ca.pem");
    let (code, out, err) = sluice(
        &[
            "topic",
            "list",
            "--bootstrap",
            &format!("127.0.0.1:{sasl_ssl}"),
            "--security-protocol",
            "SASL_SSL",
            "--sasl-mechanism",
            "PLAIN",
            "--sasl-username",
            "bob",
            "--sasl-password",
            "bob-pw",
            "--ssl-ca-location",
            &ca_path,
        ],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("java"), "{out}");
    let (code, out, err) = sluice(
        &[
            "cluster",
            "status",
            "--bootstrap",
            &format!("127.0.0.1:{ssl}"),
            "--security-protocol",
            "SSL",
            "--ssl-ca-location",
            &ca_path,
        ],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    // A CA that did not sign the broker's certificate: refused before any request.
    let other = Ca::new("Another CA");
    let other_ca = files.write("other.pem", &other.pem());
    let (code, _, err) = sluice(
        &[
            "topic",
            "list",
            "--bootstrap",
            &format!("127.0.0.1:{ssl}"),
            "--security-protocol",
            "SSL",
            "--ssl-ca-location",
            &other_ca.display().to_string(),
        ],
        "",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("TLS handshake"), "{err}");
    // A properties file that names a missing CA is named in the error.
    let (code, _, err) = sluice(
        &[
            "topic",
            "list",
            "--bootstrap",
            &format!("127.0.0.1:{ssl}"),
            "--security-protocol",
            "SSL",
            "--ssl-ca-location",
            "/nonexistent/ca.pem",
        ],
        "",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

//! Brokers reaching a secured etcd: TLS with client certificates (certificates made here),
//! and etcd's own user authentication. A broker without what etcd asks for does not start,
//! and says why.

mod common;

use common::cluster::{metadata, wait_until, Etcd};
use common::secure::{Ca, Files};
use common::Broker;

/// A broker (node `id`) of cluster "secured" at `etcd`, with `flags`; not started.
fn member(etcd: &Etcd, id: i32, flags: &[String]) -> Broker {
    let mut args = vec![
        "--node-id".to_string(),
        id.to_string(),
        "--etcd".to_string(),
        etcd.url(),
        "--cluster-name".to_string(),
        "secured".to_string(),
    ];
    args.extend(flags.iter().cloned());
    Broker::unstarted("\"broker.session.timeout.ms\" = 3000\n", args)
}

/// Starts `b`, expecting it to fail: its log.
fn refused_start(b: &mut Broker) -> String {
    b.spawn_only();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(status) = b.child.as_mut().unwrap().try_wait().unwrap() {
            assert!(!status.success());
            b.child = None;
            return b.log_text();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the broker started:\n{}",
            b.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn brokers_join_an_etcd_that_requires_tls_client_certificates() {
    let ca = Ca::new("etcd CA");
    let files = Files::new();
    let (etcd, flags) = common::secure::etcd_requiring_client_certificates(&ca, &files);
    let mut brokers: Vec<Broker> = (1..=2).map(|id| member(&etcd, id, &flags)).collect();
    for b in &mut brokers {
        b.restart();
    }
    for b in &brokers {
        wait_until("each broker sees both", || metadata(b).brokers.len() == 2);
    }
    assert!(etcd.get("/sluice/secured/brokers/1").is_some());
    // Without a client certificate, etcd refuses it.
    let mut without = member(&etcd, 3, &flags[..2]);
    let log = refused_start(&mut without);
    assert!(log.contains("cannot join the cluster"), "{log}");
}

#[test]
fn brokers_log_in_to_an_etcd_with_authentication() {
    let etcd = Etcd::start();
    etcd.etcdctl(&["user", "add", "root:root-pw"]);
    etcd.etcdctl(&["user", "grant-role", "root", "root"]);
    etcd.etcdctl(&["auth", "enable"]);
    let flags = vec![
        "--etcd-user".to_string(),
        "root".to_string(),
        "--etcd-password".to_string(),
        "root-pw".to_string(),
    ];
    let mut b = member(&etcd, 1, &flags);
    b.restart();
    wait_until("the broker serves", || metadata(&b).brokers.len() == 1);
    let mut wrong = member(
        &etcd,
        2,
        &[
            "--etcd-user".into(),
            "root".into(),
            "--etcd-password".into(),
            "nope".into(),
        ],
    );
    let log = refused_start(&mut wrong);
    assert!(
        log.contains("cannot join the cluster") || log.contains("cannot reach etcd"),
        "{log}"
    );
}

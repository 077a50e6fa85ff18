//! Cluster harness: a real etcd (Debian's etcd-server) on free loopback ports with its own
//! directory, and `sluice serve` processes joined to it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::raw::Raw;
use super::{free_port, Broker};

/// Brokers of the test clusters drop out of the cluster this long after they stop answering.
pub const SESSION_TIMEOUT_MS: u64 = 3000;
/// Short, so the ISR tests see a follower drop out well within its session.
pub const REPLICA_LAG_MS: u64 = 1000;

/// The broker `Cluster::start_partitionable` puts in a network namespace.
pub const NAMESPACED_NODE: i32 = 3;

pub struct Etcd {
    child: Option<Child>,
    /// The address it listens on.
    pub host: String,
    pub client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
    /// A secured etcd: the flags it is started with, and those etcdctl needs to reach it.
    secure: Option<Secure>,
}

/// What makes an etcd secure (TLS, client certificates, authentication).
pub struct Secure {
    pub server_args: Vec<String>,
    pub client_args: Vec<String>,
    /// Clients speak TLS (https://).
    pub tls: bool,
}

fn etcd_binary() -> PathBuf {
    for candidate in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("etcd is not installed: scripts/test.sh installs Debian's etcd-server");
}

impl Etcd {
    pub fn start() -> Etcd {
        Etcd::start_on("127.0.0.1")
    }

    /// An etcd listening on `host`.
    pub fn start_on(host: &str) -> Etcd {
        let mut etcd = Etcd {
            child: None,
            host: host.to_string(),
            client_port: free_port(),
            peer_port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            secure: None,
        };
        etcd.restart();
        etcd
    }

    /// An etcd on loopback started with `secure`'s flags.
    pub fn start_secure(secure: Secure) -> Etcd {
        let mut etcd = Etcd {
            child: None,
            host: "127.0.0.1".into(),
            client_port: free_port(),
            peer_port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            secure: Some(secure),
        };
        etcd.restart();
        etcd
    }

    pub fn url(&self) -> String {
        let scheme = match &self.secure {
            Some(s) if s.tls => "https",
            _ => "http",
        };
        format!("{scheme}://{}:{}", self.host, self.client_port)
    }

    /// Starts etcd (again, on the same ports and data) and waits until it is healthy.
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let client = self.url();
        let peer = format!("http://{}:{}", self.host, self.peer_port);
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).unwrap();
        let child = Command::new(etcd_binary())
            .args(["--name", "test", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(self.secure.iter().flat_map(|s| s.server_args.iter()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.healthy() {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn healthy(&self) -> bool {
        if let Some(secure) = &self.secure {
            return Command::new("etcdctl")
                .args(["--endpoints", &self.url()])
                .args(&secure.client_args)
                .args(["endpoint", "health"])
                .env("ETCDCTL_API", "3")
                .output()
                .is_ok_and(|o| o.status.success());
        }
        let Ok(mut s) = TcpStream::connect((self.host.as_str(), self.client_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        let mut answer = String::new();
        s.write_all(request.as_bytes()).is_ok()
            && s.read_to_string(&mut answer).is_ok()
            && answer.contains("\"health\":\"true\"")
    }

    /// Runs etcdctl against this etcd; its output.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let out = Command::new("etcdctl")
            .args(["--endpoints", &self.url()])
            .args(self.secure.iter().flat_map(|s| s.client_args.iter()))
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .expect("etcdctl (Debian's etcd-client) runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// One key's value (None if absent).
    pub fn get(&self, key: &str) -> Option<String> {
        let value = self.etcdctl(&["get", "--print-value-only", key]);
        let value = value.trim_end_matches('\n');
        (!value.is_empty()).then(|| value.to_string())
    }

    /// The revision that created `key` (None if absent).
    pub fn create_revision(&self, key: &str) -> Option<i64> {
        let out = self.etcdctl(&["get", "-w", "json", key]);
        let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
        answer["kvs"][0]["create_revision"].as_i64()
    }

    pub fn etcdctl_del(&self, key: &str) {
        self.etcdctl(&["del", key]);
    }

    pub fn put(&self, key: &str, value: &str) {
        self.etcdctl(&["put", key, value]);
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    pub brokers: Vec<Broker>,
    pub name: String,
    /// Broker settings (TOML lines) every member gets besides the test defaults.
    pub settings: String,
    // Dropped after the brokers: they go before their coordination service.
    pub etcd: Etcd,
    /// With `start_partitionable`: the namespace of the last broker (dropped last).
    pub netns: Option<super::netns::Netns>,
}

impl Cluster {
    /// `n` brokers, node ids 1..=n, in one cluster; waits until each sees all of them.
    pub fn start(n: i32) -> Cluster {
        Cluster::start_with(n, "")
    }

    /// `start`, every broker with `settings` (TOML lines) too.
    pub fn start_with(n: i32, settings: &str) -> Cluster {
        Cluster::start_in(n, settings, None)
    }

    /// Three brokers, broker 3 (`NAMESPACED_NODE`) in a network namespace of its own that
    /// `netns.cut()` cuts off from etcd and the others; Err when the machine refuses
    /// namespaces.
    pub fn start_partitionable() -> Result<Cluster, String> {
        let netns = super::netns::Netns::create()?;
        Ok(Cluster::start_in(3, "", Some(netns)))
    }

    fn start_in(n: i32, settings: &str, netns: Option<super::netns::Netns>) -> Cluster {
        let etcd = match &netns {
            Some(net) => Etcd::start_on(&net.services_ip),
            None => Etcd::start(),
        };
        let mut cluster = Cluster {
            brokers: Vec::new(),
            name: "test".into(),
            settings: settings.to_string(),
            etcd,
            netns,
        };
        for id in 1..=n {
            let mut b = cluster.member(id);
            b.restart();
            cluster.brokers.push(b);
        }
        for b in &cluster.brokers {
            wait_until("every broker sees the others", || {
                metadata(b).brokers.len() == n as usize
            });
        }
        cluster
    }

    /// A broker (not started) that joins this cluster as `node_id`. `{id}` in the
    /// cluster's settings stands for the node id (`"broker.rack" = "rack-{id}"`).
    pub fn member(&self, node_id: i32) -> Broker {
        let mut b = self.member_here(node_id);
        if let Some(net) = &self.netns {
            // Broker 3 lives in the namespace; the others where etcd listens.
            if node_id == NAMESPACED_NODE {
                b.host = net.cluster_ip.clone();
                b.listen_host = Some("0.0.0.0".into());
                b.wrapper = net.wrapper();
            } else {
                b.host = net.services_ip.clone();
            }
        }
        b
    }

    fn member_here(&self, node_id: i32) -> Broker {
        Broker::unstarted(
            &format!(
                "\"broker.session.timeout.ms\" = {SESSION_TIMEOUT_MS}\n\
                 \"replica.lag.time.max.ms\" = {REPLICA_LAG_MS}\n{}",
                self.settings.replace("{id}", &node_id.to_string())
            ),
            vec![
                "--node-id".into(),
                node_id.to_string(),
                "--etcd".into(),
                self.etcd.url(),
                "--cluster-name".into(),
                self.name.clone(),
            ],
        )
    }

    /// The broker with `node_id`.
    pub fn broker(&mut self, node_id: i32) -> &mut Broker {
        &mut self.brokers[(node_id - 1) as usize]
    }

    /// Prints every broker's log (for CI's record of a failure).
    pub fn dump_logs(&self) {
        for b in &self.brokers {
            eprintln!("--- broker log ({}) ---\n{}", b.bootstrap(), b.log_text());
        }
    }

    /// `wait_until`, printing every broker's log if it times out.
    pub fn wait_or_dump(&self, what: &str, mut done: impl FnMut(&Cluster) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            if Instant::now() >= deadline {
                self.dump_logs();
                panic!("timed out waiting until {what}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The controller as `via` sees it (-1: none).
    pub fn controller(&self, via: &Broker) -> i32 {
        describe_cluster(via).controller_id.0
    }

    /// Every broker of the cluster, as a client's bootstrap list.
    pub fn bootstrap(&self) -> String {
        let all: Vec<String> = self.brokers.iter().map(|b| b.bootstrap()).collect();
        all.join(",")
    }

    /// Broker `node`'s epoch: the etcd revision of its current registration.
    pub fn broker_epoch(&self, node: i32) -> i64 {
        self.etcd
            .create_revision(&format!("/sluice/{}/brokers/{node}", self.name))
            .expect("the broker is registered")
    }

    /// A partition's epoch as the controller stored it in etcd.
    pub fn partition_epoch(&self, topic: &str, partition: usize) -> i32 {
        let stored = self
            .etcd
            .get(&format!("/sluice/{}/topics/{topic}", self.name))
            .expect("the topic is in etcd");
        let meta: serde_json::Value = serde_json::from_str(&stored).unwrap();
        meta["partitions"][partition]["partition_epoch"]
            .as_i64()
            .unwrap() as i32
    }
}

/// A partition's ISR as `b` reports it, sorted.
pub fn isr_of(b: &Broker, topic: &str, partition: i32) -> Vec<i32> {
    let md = metadata(b);
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .expect("topic known");
    let p = t
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .expect("partition known");
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort();
    isr
}

/// The coordinator `b` names for `group` (-1 while it has none).
pub fn coordinator_of(b: &Broker, group: &str) -> i32 {
    let mut raw = Raw::connect(b);
    let c = raw.send(
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.into())),
    );
    let r: FindCoordinatorResponse = raw.receive_response(ApiKey::FindCoordinator, 3, c);
    if r.error_code != 0 {
        return -1;
    }
    r.node_id.0
}

pub fn metadata(b: &Broker) -> MetadataResponse {
    let mut raw = Raw::connect(b);
    let c = raw.send(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    raw.receive_response(ApiKey::Metadata, 12, c)
}

pub fn describe_cluster(b: &Broker) -> DescribeClusterResponse {
    let mut raw = Raw::connect(b);
    let c = raw.send(
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    );
    raw.receive_response(ApiKey::DescribeCluster, 0, c)
}

/// Leaders of a topic's partitions, by partition index, as `b` reports them.
pub fn leaders(b: &Broker, topic: &str) -> Vec<i32> {
    let md = metadata(b);
    let Some(t) = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
    else {
        return Vec::new();
    };
    let mut parts: Vec<_> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, l)| l).collect()
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A partition's records as stored in a broker's data directory: every segment's bytes, in
/// offset order (segments may roll at different offsets on different replicas).
pub fn stored_bytes(b: &Broker, topic: &str, partition: i32) -> Vec<u8> {
    let dir = b.data_dir().join(format!("{topic}-{partition}"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut logs: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs.iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

//! A network namespace for one broker, joined to this one by a veth pair, so a test can cut
//! that broker off from etcd and the other brokers and heal it again (needs root and
//! iproute2, as CI has).
//!
//! Addresses (A and B from this process id and a count, so concurrent runs differ):
//! - 10.A.B.1 / 10.A.B.2: the veth pair; the namespaced broker listens on 0.0.0.0 and
//!   advertises 10.A.B.2 to the cluster;
//! - 10.A.(B+1).1 / .2: a second subnet on the same pair, never cut: the test reaches the
//!   namespaced broker there while the cluster cannot;
//! - 10.A.(B+2).1/32 on this namespace's loopback: where etcd and the other brokers listen;
//!   the namespace reaches it through the veth pair.
//!
//! A cut is blackhole routes (here to 10.A.B.2; there to 10.A.B.1 and 10.A.(B+2).0/24):
//! packets are dropped as in a real partition, and established connections hang until they
//! time out.

use std::process::Command;

pub struct Netns {
    pub name: String,
    veth: String,
    /// Where etcd and the brokers outside the namespace listen.
    pub services_ip: String,
    /// What the namespaced broker advertises to the cluster (cut by `cut`).
    pub cluster_ip: String,
    /// Where the test reaches the namespaced broker, cut or not.
    pub client_ip: String,
    root_ip: String,
    services_net: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Makes the namespace and its links, or says why the machine refuses.
    pub fn create() -> Result<Netns, String> {
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let pid = std::process::id();
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let a = 100 + pid % 100;
        let b = ((pid / 100 + n) % 80) * 3;
        let name = format!("sluice{pid}-{n}");
        let net = Netns {
            veth: format!("s{pid}{n}r"),
            services_ip: format!("10.{a}.{}.1", b + 2),
            cluster_ip: format!("10.{a}.{b}.2"),
            client_ip: format!("10.{a}.{}.2", b + 1),
            root_ip: format!("10.{a}.{b}.1"),
            services_net: format!("10.{a}.{}.0/24", b + 2),
            name,
        };
        let peer = format!("s{pid}{n}n");
        ip(&["netns", "add", &net.name])?;
        // From here on, Drop cleans up whatever was made.
        let root_client = format!("10.{a}.{}.1/24", b + 1);
        let ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &net.name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        ip(&[
            "link", "add", &net.veth, "type", "veth", "peer", "name", &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &net.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.root_ip),
            "dev",
            &net.veth,
        ])?;
        ip(&["addr", "add", &root_client, "dev", &net.veth])?;
        ip(&["link", "set", &net.veth, "up"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/32", net.services_ip),
            "dev",
            "lo",
        ])?;
        ns(&[
            "addr",
            "add",
            &format!("{}/24", net.cluster_ip),
            "dev",
            &peer,
        ])?;
        ns(&[
            "addr",
            "add",
            &format!("{}/24", net.client_ip),
            "dev",
            &peer,
        ])?;
        ns(&["link", "set", &peer, "up"])?;
        ns(&["link", "set", "lo", "up"])?;
        ns(&["route", "add", &net.services_net, "via", &net.root_ip])?;
        Ok(net)
    }

    /// The command prefix that runs a program inside the namespace.
    pub fn wrapper(&self) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.name.clone(),
        ]
    }

    fn in_ns(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Cuts the namespaced broker off from etcd and the other brokers, both ways: nothing
    /// it sends reaches them (connections they opened to it come from 10.A.B.1, so that is
    /// cut too), nothing they send reaches it.
    pub fn cut(&self) {
        let cluster = format!("{}/32", self.cluster_ip);
        let root = format!("{}/32", self.root_ip);
        ip(&["route", "add", "blackhole", &cluster]).unwrap();
        self.in_ns(&["route", "replace", "blackhole", &self.services_net])
            .unwrap();
        self.in_ns(&["route", "add", "blackhole", &root]).unwrap();
    }

    pub fn heal(&self) {
        let cluster = format!("{}/32", self.cluster_ip);
        let root = format!("{}/32", self.root_ip);
        self.in_ns(&["route", "del", "blackhole", &root]).unwrap();
        self.in_ns(&["route", "replace", &self.services_net, "via", &self.root_ip])
            .unwrap();
        ip(&["route", "del", "blackhole", &cluster]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&[
            "route",
            "del",
            "blackhole",
            &format!("{}/32", self.cluster_ip),
        ]);
        let _ = ip(&[
            "addr",
            "del",
            &format!("{}/32", self.services_ip),
            "dev",
            "lo",
        ]);
        let _ = ip(&["link", "del", &self.veth]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

//! Test harness: starts the real `sluice` binary on a free loopback port with its own data
//! directory, and builds rdkafka clients pointed at it.

#![allow(dead_code)]

pub mod checker;
pub mod cluster;
pub mod group;
pub mod netns;
pub mod raw;
pub mod secure;
pub mod share;
pub mod txn;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};

pub struct Broker {
    pub child: Option<Child>,
    pub port: u16,
    /// Its HTTP listener's port (`/metrics`, `/healthz`, `/readyz`).
    pub http_port: u16,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    config_file: Option<PathBuf>,
    /// RLIMIT_NOFILE (soft and hard) for the broker process, when a test sets one.
    fd_limit: Option<u64>,
    /// More `sluice serve` arguments (a cluster member's node id and etcd).
    pub extra_args: Vec<String>,
    /// The address clients and other brokers reach it at (advertised): 127.0.0.1 unless a
    /// test puts it on another interface.
    pub host: String,
    /// The address it listens on, when not `host` (0.0.0.0 in a network namespace).
    pub listen_host: Option<String>,
    /// A command the broker runs under (`ip netns exec NAME`).
    pub wrapper: Vec<String>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    pub fn start() -> Broker {
        Self::start_with_config("")
    }

    /// Starts a broker whose config file holds `settings` (TOML, Kafka names).
    pub fn start_with_config(settings: &str) -> Broker {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let config_file = if settings.is_empty() {
            None
        } else {
            let p = tmp.path().join("sluice.toml");
            std::fs::write(&p, settings).unwrap();
            Some(p)
        };
        let mut b = Broker {
            child: None,
            port: free_port(),
            http_port: free_port(),
            data_dir,
            _tmp: Some(tmp),
            config_file,
            fd_limit: None,
            extra_args: Vec::new(),
            host: "127.0.0.1".into(),
            listen_host: None,
            wrapper: Vec::new(),
        };
        b.spawn();
        b
    }

    /// Starts a broker whose settings name its own Kafka port (`listeners`, say):
    /// `settings(port)` is its config file.
    pub fn start_naming_port(settings: impl FnOnce(u16) -> String) -> Broker {
        let mut b = Broker::unstarted_naming_port(settings, Vec::new());
        b.restart();
        b
    }

    /// `unstarted`, with settings that name the broker's own port (`listeners`).
    pub fn unstarted_naming_port(
        settings: impl FnOnce(u16) -> String,
        extra_args: Vec<String>,
    ) -> Broker {
        let b = Broker::unstarted("", extra_args);
        std::fs::write(b.config_file.as_ref().unwrap(), settings(b.port)).unwrap();
        b
    }

    /// A broker that is not started yet (`restart` starts it), with these extra arguments.
    pub fn unstarted(settings: &str, extra_args: Vec<String>) -> Broker {
        let tmp = tempfile::tempdir().unwrap();
        let config_file = tmp.path().join("sluice.toml");
        std::fs::write(&config_file, settings).unwrap();
        Broker {
            child: None,
            port: free_port(),
            http_port: free_port(),
            data_dir: tmp.path().join("data"),
            _tmp: Some(tmp),
            config_file: Some(config_file),
            fd_limit: None,
            extra_args,
            host: "127.0.0.1".into(),
            listen_host: None,
            wrapper: Vec::new(),
        }
    }

    /// Starts the process without waiting for it to listen; `wait_listening` waits.
    pub fn spawn_only(&mut self) {
        assert!(self.child.is_none(), "stop or kill first");
        let mut cmd = self.command();
        self.child = Some(cmd.spawn().expect("start sluice"));
    }

    /// Waits until this process serves: it logged that its listener is ready (after byte
    /// `log_from` of its log, where this run's lines start) and its port answers ApiVersions
    /// (the port is bound before the data is open). False if it could not bind its port
    /// because another process took it while this broker was down (an answer there is not
    /// this broker's); panics if it exits for any other reason.
    fn wait_listening_since(&mut self, log_from: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        let this_run = |b: &Broker| b.log_text().get(log_from..).unwrap_or_default().to_string();
        while !(this_run(self).contains("Kafka listener ready") && self.answers_api_versions()) {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                if this_run(self).contains("Address already in use") && self.listen_host.is_none() {
                    return false;
                }
                panic!("broker exited with {status}:\n{}", self.log_text());
            }
            assert!(Instant::now() < deadline, "broker did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    fn answers_api_versions(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = TcpStream::connect((self.host.as_str(), self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        // ApiVersions v0, correlation id 1, no client id.
        let request = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
        let mut size = [0u8; 4];
        s.write_all(&request).is_ok() && s.read_exact(&mut size).is_ok()
    }

    /// Starts a broker that may open at most `limit` files (it cannot raise the limit).
    pub fn start_with_fd_limit(settings: &str, limit: u64) -> Broker {
        let mut b = Self::start_with_config(settings);
        b.kill();
        b.fd_limit = Some(limit);
        b.spawn();
        b
    }

    /// The broker's resident memory, in KB.
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Descriptors the broker process has open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Starts the broker and waits until it serves. A port another process took while the
    /// broker was down (a restart) is replaced by a free one.
    fn spawn(&mut self) {
        for _ in 0..5 {
            let log_from = self.log_text().len();
            self.spawn_only();
            if self.wait_listening_since(log_from) {
                return;
            }
            self.child = None;
            self.port = free_port();
            self.http_port = free_port();
        }
        panic!("no free port for the broker");
    }

    fn command(&self) -> Command {
        let bin = env!("CARGO_BIN_EXE_sluice");
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let listen = self.listen_host.as_deref().unwrap_or(&self.host);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("{listen}:{}", self.port))
            .arg("--http-listen")
            .arg(format!("{listen}:{}", self.http_port))
            .arg("--advertised")
            .arg(self.bootstrap())
            .arg("--data-dir")
            .arg(&self.data_dir)
            // SLUICE_TEST_LOG (a SLUICE_LOG filter) makes the brokers of a test run more verbose.
            // The listener's ready line is how `spawn` knows this process serves.
            .env(
                "SLUICE_LOG",
                std::env::var("SLUICE_TEST_LOG")
                    .map(|f| format!("{f},sluice_kafka=info"))
                    .unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(self.log_file())
            .args(&self.extra_args);
        if let Some(c) = &self.config_file {
            cmd.arg("--config").arg(c);
        }
        if let Some(limit) = self.fd_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let l = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    /// The broker's log goes to a file beside its data; it is printed if the test fails.
    fn log_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap()
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.with_file_name("broker.log")
    }

    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill(c.id() as i32, "TERM");
            let status = c.wait().unwrap();
            assert!(status.success(), "broker exited with {status}");
        }
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill first");
        self.spawn();
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What the broker has logged so far (every run of it).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap());
        c
    }

    pub fn producer(&self, extra: &[(&str, &str)]) -> FutureProducer {
        let mut c = self.config();
        c.set("linger.ms", "5").set("message.timeout.ms", "30000");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c.create().expect("producer")
    }

    pub fn consumer(&self, extra: &[(&str, &str)]) -> BaseConsumer {
        let mut c = self.config();
        // assign() needs a group id in librdkafka; nothing is committed (groups are a
        // later capability), so the group is never joined.
        c.set("enable.partition.eof", "false")
            .set("group.id", "sluice-test-assign")
            .set("enable.auto.commit", "false");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c.create().expect("consumer")
    }

    pub fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.config().create().expect("admin client")
    }

    pub async fn create_topic(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in configs {
            t = t.set(k, v);
        }
        let r = self
            .admin()
            .create_topics([&t], &AdminOptions::new())
            .await
            .unwrap();
        r[0].as_ref().expect("topic created");
    }

    /// The error a CreateTopics of `name` gets; panics if the topic is created.
    pub async fn create_topic_error(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> rdkafka::types::RDKafkaErrorCode {
        let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in configs {
            t = t.set(k, v);
        }
        let r = self
            .admin()
            .create_topics([&t], &AdminOptions::new())
            .await
            .unwrap();
        r[0].as_ref().expect_err("the create is refused").1
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            eprintln!("--- broker log ({}) ---\n{log}", self.bootstrap());
        }
    }
}

pub fn unsafe_kill(pid: i32, signal: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Reads `count` messages from the given partitions starting at `offset`, calling `f` on each.
pub fn consume(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    offset: Offset,
    count: usize,
    mut f: impl FnMut(&BorrowedMessage),
) {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, offset).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < count {
        assert!(
            Instant::now() < deadline,
            "timed out after {seen} of {count} messages"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            f(&m);
            seen += 1;
        }
    }
}

pub fn payload(m: &BorrowedMessage) -> Vec<u8> {
    m.payload().unwrap_or_default().to_vec()
}

/// A GET on a broker's HTTP listener: the status code and the body.
pub fn http_get(broker: &Broker, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect((broker.host.as_str(), broker.http_port))
        .expect("HTTP listener");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, body.to_string())
}

/// Runs `sluice ARGS` with `stdin` as its input (SLUICE_BOOTSTRAP unset): its output.
pub fn sluice_with_stdin(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env_remove("SLUICE_BOOTSTRAP")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `sluice SUBCOMMAND ARGS --bootstrap B`: exit code, stdout, stderr.
pub fn sluice_at(broker: &Broker, subcommand: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg(subcommand)
        .args(args)
        .args(["--bootstrap", &broker.bootstrap()])
        .output()
        .expect("sluice runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The same with `--output json`, which must succeed: its JSON.
pub fn sluice_json(broker: &Broker, subcommand: &str, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let (code, out, err) = sluice_at(broker, subcommand, &all);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

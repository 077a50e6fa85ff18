//! The `sluice` binary: `sluice serve` runs a broker (a single node, or a cluster member with
//! `--etcd`); `bench`, `log` and `cluster` are tools.

mod admin_client;
mod cli;
mod cluster_cmd;
mod consume_cmd;
mod group_cmd;
mod http;
mod http_auth;
mod http_guard;
mod http_tls;
mod log_cmd;
mod produce_cmd;
mod prometheus;
mod queue_cmd;
mod rest;
mod settings;
mod topic_cmd;
mod transaction_cmd;
mod user_cmd;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A Kafka-compatible message broker in one binary"
)]
struct Cli {
    /// Log lines as `text` (for people) or `json` (one object per line, for log pipelines).
    /// Levels per module come from SLUICE_LOG (e.g. `info,sluice_kafka=debug`).
    #[arg(long, global = true, env = "SLUICE_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (embedded single node).
    Serve(ServeArgs),
    /// Measure a Kafka-compatible broker: produce, consume or end-to-end load.
    Bench(sluice_bench::BenchArgs),
    /// Inspect a data directory's logs.
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
    /// Inspect a running cluster (any Kafka-compatible one) through one of its brokers.
    #[command(subcommand)]
    Cluster(cluster_cmd::ClusterCommand),
    /// Inspect queues (share groups) through any broker of the cluster.
    #[command(subcommand)]
    Queue(queue_cmd::QueueCommand),
    /// Create, list, describe, change and delete topics through any broker of the cluster.
    #[command(subcommand)]
    Topic(topic_cmd::TopicCommand),
    /// List, describe (with lag), delete consumer groups and reset their offsets.
    #[command(subcommand)]
    Group(group_cmd::GroupCommand),
    /// List and describe transactions, show a partition's producers, abort a hanging one.
    #[command(subcommand)]
    Transaction(transaction_cmd::TransactionCommand),
    /// Create, list and delete SCRAM users (for SASL listeners).
    #[command(subcommand)]
    User(user_cmd::UserCommand),
    /// Write records to a topic, one per line of stdin or a file.
    Produce(produce_cmd::ProduceArgs),
    /// Print a topic's records as they come.
    Consume(consume_cmd::ConsumeArgs),
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on for Kafka clients.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:9092")]
    pub listen: String,
    /// host:port given to clients in Metadata (default: the listen address).
    #[arg(long, env = "SLUICE_ADVERTISED")]
    pub advertised: Option<String>,
    /// Where partitions and metadata are kept.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    pub data_dir: PathBuf,
    /// This broker's id.
    #[arg(long, env = "SLUICE_NODE_ID", default_value_t = 1)]
    pub node_id: i32,
    /// TOML file of broker settings by their Kafka names (see docs/configuration.md).
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Join a cluster coordinated by etcd at these endpoints (comma-separated); without it
    /// the broker runs as a single node. See docs/cluster.md.
    #[arg(long, env = "SLUICE_ETCD", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// The CA certificate (PEM) etcd's certificate is checked against (TLS to etcd).
    #[arg(long, env = "SLUICE_ETCD_CACERT")]
    pub etcd_cacert: Option<PathBuf>,
    /// This broker's client certificate (PEM) for an etcd that asks for one.
    #[arg(long, env = "SLUICE_ETCD_CERT")]
    pub etcd_cert: Option<PathBuf>,
    /// The key (PEM) of --etcd-cert.
    #[arg(long, env = "SLUICE_ETCD_KEY")]
    pub etcd_key: Option<PathBuf>,
    /// etcd's own authentication: the user (with --etcd-password).
    #[arg(long, env = "SLUICE_ETCD_USER")]
    pub etcd_user: Option<String>,
    /// The password of --etcd-user (SLUICE_ETCD_PASSWORD keeps it out of the process list).
    #[arg(long, env = "SLUICE_ETCD_PASSWORD", hide_env_values = true)]
    pub etcd_password: Option<String>,
    /// The cluster's name in etcd (its keys' prefix): brokers with the same name form one
    /// cluster.
    #[arg(long, env = "SLUICE_CLUSTER_NAME", default_value = "sluice")]
    pub cluster_name: String,
    /// Address of the HTTP listener (/metrics, /healthz, /readyz), or `off`. Default
    /// 127.0.0.1:8080, skipped with a warning if that port is taken; an address given here
    /// must be free.
    #[arg(long, env = "SLUICE_HTTP_LISTEN")]
    pub http_listen: Option<String>,
}

fn main() {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Bench(args) => sluice_bench::run(args),
        Command::Cluster(command) => exit_with(cluster_cmd::run(command)),
        Command::Queue(command) => exit_with(queue_cmd::run(command)),
        Command::Transaction(command) => exit_with(transaction_cmd::run(command)),
        Command::User(command) => exit_with(user_cmd::run(command)),
        Command::Group(command) => exit_with(group_cmd::run(command)),
        Command::Produce(args) => exit_with(produce_cmd::run(args)),
        Command::Consume(args) => exit_with(consume_cmd::run(args)),
        Command::Topic(command) => exit_with(topic_cmd::run(command)),
        Command::Log(command) => exit_with(log_cmd::run(command)),
    };
    if let Err(e) = result {
        eprintln!("sluice: {e:#}");
        std::process::exit(1);
    }
}

/// Ends a client subcommand with its status; 2 when it could not ask (cli.rs).
fn exit_with(result: anyhow::Result<i32>) -> ! {
    match result {
        Ok(status) => std::process::exit(status),
        Err(e) => {
            eprintln!("sluice: {e:#}");
            std::process::exit(2);
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = settings::broker_config(&args)?;
    warn_of_open_listeners(&config);
    let files = raise_open_file_limit();
    // A quarter of the descriptors (at least 256) stays for connections and everything else;
    // beyond the rest, the least recently used segment files are closed before another opens.
    let reserve = (files / 4).max(256);
    sluice_broker::set_segment_file_budget(files.saturating_sub(reserve).max(64) as usize);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Bound before the broker opens: clients that reach it meanwhile wait for their
        // answer instead of being refused (librdkafka backs off up to 10 s from a broker that
        // refuses connections).
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let socket = tokio::net::TcpListener::bind(l.bind)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {} ({}): {e}", l.bind, l.name))?;
            listeners.push(sluice_kafka::BoundListener {
                listener: l.clone(),
                socket,
            });
        }
        let opened = http::Opened::default();
        if let Some(http) = bind_http(args.http_listen.as_deref()).await? {
            let addr = http.local_addr().ok();
            let keystore = config.string_setting("http.ssl.keystore.location");
            let http = if keystore.is_empty() {
                tracing::info!(?addr, "HTTP listener ready");
                http::Socket::Plain(http)
            } else {
                let settings = sluice_kafka::tls::TlsSettings {
                    keystore: keystore.into(),
                    truststore: None,
                    client_auth: "none".into(),
                    protocols: sluice_kafka::tls::TlsSettings::from_config(&config).protocols,
                    principal_rules: "DEFAULT".into(),
                };
                let tls = sluice_kafka::tls::Tls::new(settings).map_err(|e| anyhow::anyhow!(e))?;
                tracing::info!(?addr, "HTTPS listener ready");
                http::Socket::Tls(http_tls::TlsListener::new(http, std::sync::Arc::new(tls))?)
            };
            let auth = http_auth::HttpAuth::from_config(&config, opened.clone())
                .map_err(|e| anyhow::anyhow!(e))?;
            let guard = http_guard::Guard::new(config.string_setting("http.allowed.hosts"), auth);
            tokio::spawn(http::serve(http, opened.clone(), guard));
        }
        let broker = open_broker(config, &args).await?;
        let _ = opened.set(broker.clone());
        broker.spawn_background_tasks();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Caught before the listener says it is ready: a SIGTERM right after is a clean
        // shutdown, not the default kill.
        let stop_signal = stop_signals();
        let mut server = tokio::spawn(sluice_kafka::serve(listeners, broker.clone(), stop_rx));
        tokio::select! {
            _ = stop_signal => {}
            served = &mut server => {
                if let Ok(Err(e)) = served {
                    broker.shutdown();
                    anyhow::bail!("cannot serve: {e}");
                }
            }
        }
        tracing::info!("shutting down");
        hand_over_leaderships(&broker).await;
        let _ = stop_tx.send(true);
        let _ = server.await;
        broker.shutdown();
        Ok(())
    })
}

/// Warns of each listener that takes clients from the network without authenticating them
/// (bound beyond loopback, neither SASL nor TLS with required client certificates).
fn warn_of_open_listeners(config: &sluice_broker::BrokerConfig) {
    let client_auth = config.string_setting("ssl.client.auth");
    for l in &config.listeners {
        if l.open_to_anyone(client_auth) {
            tracing::warn!(
                listener = %l.name,
                addr = %l.bind,
                protocol = l.protocol.name(),
                "this listener takes clients from the network without authenticating them: anyone who reaches it may produce, consume and change topics (see docs/security.md)"
            );
        }
    }
}

/// The HTTP listener's socket: none when `off`; the default address is skipped with a
/// warning when taken (a second broker on one machine), an address given must be free.
async fn bind_http(asked: Option<&str>) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    const DEFAULT: &str = "127.0.0.1:8080";
    match asked {
        Some("off") => Ok(None),
        Some(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {addr}: {e}")),
        None => match tokio::net::TcpListener::bind(DEFAULT).await {
            Ok(l) => Ok(Some(l)),
            Err(e) => {
                tracing::warn!(addr = DEFAULT, error = %e, "no HTTP listener (set --http-listen)");
                Ok(None)
            }
        },
    }
}

/// A clean shutdown in a cluster leaves it first (the registration goes at once), so the
/// controller elects new leaders from the in-sync followers while this broker still serves:
/// clients in the middle of a request are redirected rather than cut off. Waits until its
/// replicated partitions are led elsewhere, at most `HANDOVER_TIMEOUT`.
async fn hand_over_leaderships(broker: &sluice_broker::Broker) {
    const HANDOVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    broker.leave_cluster().await;
    let deadline = tokio::time::Instant::now() + HANDOVER_TIMEOUT;
    let mut left = broker.replicas.leaderships_to_hand_over();
    if left > 0 {
        tracing::info!(partitions = left, "handing leaderships over");
    }
    while left > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        left = broker.replicas.leaderships_to_hand_over();
    }
    if left > 0 {
        tracing::warn!(
            partitions = left,
            "shutting down while still leading partitions"
        );
    }
}

/// Opens the broker: a single node, or a member of the etcd cluster `args` names.
async fn open_broker(
    config: sluice_broker::BrokerConfig,
    args: &ServeArgs,
) -> anyhow::Result<std::sync::Arc<sluice_broker::Broker>> {
    use anyhow::anyhow;
    if args.etcd.is_empty() {
        return sluice_broker::Broker::open(config)
            .map_err(|e| anyhow!("cannot open the data directory: {e}"));
    }
    let dir_lock = sluice_broker::lock_data_dir(&config.data_dir)
        .map_err(|e| anyhow!("cannot open the data directory: {e}"))?;
    let settings = sluice_etcd::EtcdSettings {
        endpoints: args.etcd.clone(),
        cluster_name: args.cluster_name.clone(),
        session_timeout: config.broker_session_timeout(),
        checks: sluice_broker::metadata_config_checks(),
        tls: sluice_etcd::EtcdTls {
            ca: args.etcd_cacert.clone(),
            cert: args.etcd_cert.clone(),
            key: args.etcd_key.clone(),
        },
        user: match (&args.etcd_user, &args.etcd_password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            _ => return Err(anyhow!("--etcd-user and --etcd-password go together")),
        },
    };
    let coordinator = sluice_etcd::EtcdCoordinator::join(settings, config.broker_info())
        .await
        .map_err(|e| anyhow!("cannot join the cluster: {e}"))?;
    let cluster_id = coordinator.cluster_id();
    sluice_cluster::MetadataFile::identity(&config.data_dir, config.node_id, Some(&cluster_id))
        .map_err(|e| anyhow!("cannot join the cluster: {e}"))?;
    tracing::info!(cluster = %args.cluster_name, %cluster_id, node_id = config.node_id, "joined the cluster");
    sluice_broker::Broker::open_with(config, dir_lock, coordinator)
        .map_err(|e| anyhow!("cannot open the data directory: {e}"))
}

/// Every segment and every client connection is a file descriptor: take the hard limit
/// rather than the (often 1024) soft one.
/// Raises the open file limit to its hard limit; returns the limit in force.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur >= limit.rlim_max {
            return limit.rlim_cur;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            tracing::info!(
                from = limit.rlim_cur,
                to = limit.rlim_max,
                "raised the open file limit"
            );
            return limit.rlim_max;
        }
        limit.rlim_cur
    }
}

/// SIGTERM and SIGINT, caught from this call on; the future resolves at the first.
fn stop_signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
    }
}

//! Broker and topic settings, by their Kafka names.
//!
//! Every topic-level setting has a broker-level default (`log.segment.bytes` for
//! `segment.bytes`, ...). A topic's effective value is its own override, else the broker's
//! setting from the config file, else the built-in default.
//!
//! One job, hence its length: the tables of every setting (name, type, range, default,
//! documentation, as DescribeConfigs reports them) and a typed accessor per setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use sluice_log::records::TargetCompression;
use sluice_log::LogConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    Int,
    Long,
    Double,
    String,
    List,
}

/// One known topic-level setting.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub broker_name: &'static str,
    pub default: &'static str,
    pub kind: ConfigType,
    /// Allowed values for enumerated settings.
    pub allowed: &'static [&'static str],
    /// Allowed numeric values.
    pub range: Range,
    pub doc: &'static str,
}

/// The values a numeric setting may take (Kafka's validators).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    Any,
    AtLeast(i64),
    Between(i64, i64),
    /// A double in [0, 1].
    Fraction,
}

impl Range {
    pub fn check(self, name: &str, value: &str) -> Result<(), String> {
        let fits = match self {
            Range::Any => true,
            Range::AtLeast(min) => value.parse::<i64>().is_ok_and(|v| v >= min),
            Range::Between(min, max) => {
                value.parse::<i64>().is_ok_and(|v| (min..=max).contains(&v))
            }
            Range::Fraction => value.parse::<f64>().is_ok_and(|v| (0.0..=1.0).contains(&v)),
        };
        if fits {
            return Ok(());
        }
        let expected = match self {
            Range::Any => String::new(),
            Range::AtLeast(min) => format!("at least {min}"),
            Range::Between(min, max) => format!("between {min} and {max}"),
            Range::Fraction => "between 0 and 1".into(),
        };
        Err(format!(
            "invalid value {value:?} for {name}: must be {expected}"
        ))
    }
}

/// Smallest `segment.bytes`: Kafka 4 asks for 1 MiB; Sluice allows small segments (tests,
/// tiny deployments) but not the 1-byte segment that would roll on every batch.
pub const MIN_SEGMENT_BYTES: i64 = 1024;

const LONG_MAX: &str = "9223372036854775807";

/// Topic-level settings. Retention and compaction settings are stored and described; they
/// are enforced by the log lifecycle (see docs/configuration.md for what is enforced today).
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef { name: "cleanup.policy", broker_name: "log.cleanup.policy", default: "delete", kind: ConfigType::List, allowed: &["delete", "compact", "compact,delete", "delete,compact"], range: Range::Any, doc: "delete and/or compact old segments" },
    TopicConfigDef { name: "compression.type", broker_name: "compression.type", default: "producer", kind: ConfigType::String, allowed: &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"], range: Range::Any, doc: "producer: batches are stored as the producer compressed them; a codec: batches in another codec are recompressed with it" },
    TopicConfigDef { name: "compression.gzip.level", broker_name: "compression.gzip.level", default: "-1", kind: ConfigType::Int, allowed: &[], range: Range::Between(-1, 9), doc: "gzip level when compression.type=gzip (-1: the default, 6)" },
    TopicConfigDef { name: "compression.lz4.level", broker_name: "compression.lz4.level", default: "9", kind: ConfigType::Int, allowed: &[], range: Range::Between(1, 17), doc: "lz4 level when compression.type=lz4" },
    TopicConfigDef { name: "compression.zstd.level", broker_name: "compression.zstd.level", default: "3", kind: ConfigType::Int, allowed: &[], range: Range::Between(-131072, 22), doc: "zstd level when compression.type=zstd" },
    TopicConfigDef { name: "delete.retention.ms", broker_name: "log.cleaner.delete.retention.ms", default: "86400000", kind: ConfigType::Long, allowed: &[], range: Range::AtLeast(0), doc: "how long tombstones are kept in compacted topics" },
    TopicConfigDef { name: "flush.messages", broker_name: "log.flush.interval.messages", default: "1", kind: ConfigType::Long, allowed: &[], range: Range::AtLeast(1), doc: "1: every acknowledged write is fsynced first (group commit); N>1: fsync after N messages or flush.ms, acknowledge on write" },
    TopicConfigDef { name: "flush.ms", broker_name: "log.flush.interval.ms", default: LONG_MAX, kind: ConfigType::Long, allowed: &[], range: Range::AtLeast(0), doc: "with flush.messages>1: fsync at least this often" },
    TopicConfigDef { name: "index.interval.bytes", broker_name: "log.index.interval.bytes", default: "4096", kind: ConfigType::Int, allowed: &[], range: Range::AtLeast(0), doc: "bytes between offset index entries" },
    TopicConfigDef { name: "max.compaction.lag.ms", broker_name: "log.cleaner.max.compaction.lag.ms", default: LONG_MAX, kind: ConfigType::Long, allowed: &[], range: Range::AtLeast(1), doc: "longest time a record stays uncompacted" },
    TopicConfigDef { name: "max.message.bytes", broker_name: "message.max.bytes", default: "1048588", kind: ConfigType::Int, allowed: &[], range: Range::AtLeast(0), doc: "largest record batch accepted" },
    TopicConfigDef { name: "message.timestamp.after.max.ms", broker_name: "log.message.timestamp.after.max.ms", default: "3600000", kind: ConfigType::Long, allowed: &[], range: Range::AtLeast(0), doc: "CreateTime only: how far after the broker's time a record's timestamp may lie (INVALID_TIMESTAMP beyond)" },
    TopicConfigDef { name: "message.timestamp.before.max.ms", broker_name: "log.message.timestamp.before.max.ms", default: LONG_MAX, kind: ConfigType::Long, allowed: &[], range: Range::AtLeast(0), doc: "CreateTime only: how far before the broker's time a record's timestamp may lie (INVALID_TIMESTAMP beyond)" },
    TopicConfigDef { name: "message.timestamp.type", broker_name: "log.message.timestamp.type", default: "CreateTime", kind: ConfigType::String, allowed: &["CreateTime", "LogAppendTime"], range: Range::Any, doc: "CreateTime keeps the producer's timestamp; LogAppendTime stamps the broker's time" },
    TopicConfigDef { name: "min.cleanable.dirty.ratio", broker_name: "log.cleaner.min.cleanable.ratio", default: "0.5", kind: ConfigType::Double, allowed: &[], range: Range::Fraction, doc: "dirty share of the log that triggers compaction" },
    TopicConfigDef { name: "min.compaction.lag.ms", broker_name: "log.cleaner.min.compaction.lag.ms", default: "0", kind: ConfigType::Long, allowed: &[], range: Range::AtLeast(0), doc: "shortest time a record stays uncompacted" },
    TopicConfigDef { name: "min.insync.replicas", broker_name: "min.insync.replicas", default: "1", kind: ConfigType::Int, allowed: &[], range: Range::AtLeast(1), doc: "replicas that must acknowledge an acks=all write" },
    TopicConfigDef { name: "retention.bytes", broker_name: "log.retention.bytes", default: "-1", kind: ConfigType::Long, allowed: &[], range: Range::Any, doc: "largest size of a partition before old segments are deleted (-1: no limit)" },
    TopicConfigDef { name: "retention.ms", broker_name: "log.retention.ms", default: "604800000", kind: ConfigType::Long, allowed: &[], range: Range::AtLeast(-1), doc: "age after which old segments are deleted (-1: no limit)" },
    TopicConfigDef { name: "segment.bytes", broker_name: "log.segment.bytes", default: "1073741824", kind: ConfigType::Int, allowed: &[], range: Range::AtLeast(MIN_SEGMENT_BYTES), doc: "size at which a segment is rolled" },
    TopicConfigDef { name: "segment.ms", broker_name: "log.roll.ms", default: "604800000", kind: ConfigType::Long, allowed: &[], range: Range::AtLeast(1), doc: "age at which a segment is rolled" },
    TopicConfigDef { name: "unclean.leader.election.enable", broker_name: "unclean.leader.election.enable", default: "false", kind: ConfigType::Boolean, allowed: &[], range: Range::Any, doc: "allow an out-of-sync replica to become leader" },
];

/// Broker-only settings (not topic defaults) with their defaults.
pub static BROKER_SETTINGS: &[(&str, &str, ConfigType, Range, &str)] = &[
    (
        "listeners",
        "",
        ConfigType::List,
        Range::Any,
        "NAME://HOST:PORT,... where the broker listens (empty: --listen, one PLAINTEXT listener)",
    ),
    (
        "advertised.listeners",
        "",
        ConfigType::List,
        Range::Any,
        "NAME://HOST:PORT,... given to clients in Metadata for each listener (default: its bind address)",
    ),
    (
        "listener.security.protocol.map",
        crate::listeners::DEFAULT_PROTOCOL_MAP,
        ConfigType::List,
        Range::Any,
        "NAME:PROTOCOL,... each listener's security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)",
    ),
    (
        "inter.broker.listener.name",
        "",
        ConfigType::String,
        Range::Any,
        "the listener brokers reach each other on (default: the one named PLAINTEXT)",
    ),
    (
        "http.allowed.hosts",
        "",
        ConfigType::List,
        Range::Any,
        "names the HTTP listener answers to besides addresses and localhost (its Host header; * for any)",
    ),
    (
        "http.ssl.keystore.location",
        "",
        ConfigType::String,
        Range::Any,
        "HTTPS for the HTTP listener: a PEM file with its certificate chain and private key (read again when it changes); empty: plain HTTP",
    ),
    (
        "http.authentication",
        "none",
        ConfigType::List,
        Range::Any,
        "who may use the HTTP listener: none, basic (users of the SCRAM store), bearer (JWTs checked with the OAUTHBEARER settings), or basic,bearer; /healthz stays open",
    ),
    (
        "http.metrics.authenticated",
        "true",
        ConfigType::Boolean,
        Range::Any,
        "false: /metrics answers without authentication even when http.authentication asks for it",
    ),
    (
        "sasl.enabled.mechanisms",
        "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        ConfigType::List,
        Range::Any,
        "SASL mechanisms SASL_PLAINTEXT and SASL_SSL listeners offer (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)",
    ),
    (
        "super.users",
        "",
        ConfigType::List,
        Range::Any,
        "principals (User:name;User:other) that are brokers or administrators: they may send broker-only requests",
    ),
    (
        "connections.max.reauth.ms",
        "0",
        ConfigType::Long,
        Range::AtLeast(0),
        "how long a SASL login lasts before the client must log in again on its connection (KIP-368; OAUTHBEARER: no longer than the token); 0: for ever",
    ),
    (
        "connection.failed.authentication.delay.ms",
        "100",
        ConfigType::Int,
        Range::AtLeast(0),
        "how long a failed authentication waits before its answer (and the connection's close)",
    ),
    (
        "sasl.oauthbearer.jwks.endpoint.url",
        "",
        ConfigType::String,
        Range::Any,
        "OAUTHBEARER: the JWKS (file:///path) whose keys sign clients' tokens; read again when it changes",
    ),
    (
        "sasl.oauthbearer.expected.audience",
        "",
        ConfigType::List,
        Range::Any,
        "OAUTHBEARER: audiences a token's aud claim must name one of (empty: not checked)",
    ),
    (
        "sasl.oauthbearer.expected.issuer",
        "",
        ConfigType::String,
        Range::Any,
        "OAUTHBEARER: the iss a token must carry (empty: not checked)",
    ),
    (
        "sasl.oauthbearer.sub.claim.name",
        "sub",
        ConfigType::String,
        Range::Any,
        "OAUTHBEARER: the claim whose value is the principal's name (User:name)",
    ),
    (
        "sasl.oauthbearer.clock.skew.seconds",
        "30",
        ConfigType::Int,
        Range::AtLeast(0),
        "OAUTHBEARER: seconds of clock difference allowed when checking exp and nbf",
    ),
    (
        "sasl.mechanism.inter.broker.protocol",
        "PLAIN",
        ConfigType::String,
        Range::Any,
        "the SASL mechanism this broker logs in with on a SASL inter-broker listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)",
    ),
    (
        "sasl.jaas.config",
        "",
        ConfigType::String,
        Range::Any,
        "this broker's login on a SASL inter-broker listener, as Kafka writes it: ...LoginModule required username=\"broker\" password=\"...\"; (never shown by DescribeConfigs)",
    ),
    (
        "ssl.endpoint.identification.algorithm",
        "https",
        ConfigType::String,
        Range::Any,
        "https: a broker connecting to another over TLS checks that the certificate names the address it connects to; empty: it does not",
    ),
    (
        "ssl.principal.mapping.rules",
        "DEFAULT",
        ConfigType::String,
        Range::Any,
        "how a client certificate's subject (RFC 2253: CN=alice,O=Example) becomes its principal on SSL listeners: RULE:pattern/replacement/[LU] rules and DEFAULT (the subject as it is)",
    ),
    (
        "ssl.keystore.type",
        "PEM",
        ConfigType::String,
        Range::Any,
        "PEM: ssl.keystore.location is a PEM file with the certificate chain and the private key",
    ),
    (
        "ssl.keystore.location",
        "",
        ConfigType::String,
        Range::Any,
        "the PEM file with this broker's certificate chain and private key (SSL and SASL_SSL listeners); read again when it changes",
    ),
    (
        "ssl.truststore.type",
        "PEM",
        ConfigType::String,
        Range::Any,
        "PEM: ssl.truststore.location is a PEM file of CA certificates",
    ),
    (
        "ssl.truststore.location",
        "",
        ConfigType::String,
        Range::Any,
        "the PEM file of the CA certificates client certificates are checked against",
    ),
    (
        "ssl.client.auth",
        "none",
        ConfigType::String,
        Range::Any,
        "none, requested or required: whether clients of SSL listeners present a certificate",
    ),
    (
        "ssl.enabled.protocols",
        "TLSv1.2,TLSv1.3",
        ConfigType::List,
        Range::Any,
        "TLS versions the SSL listeners accept",
    ),
    (
        "auto.create.topics.enable",
        "true",
        ConfigType::Boolean,
        Range::Any,
        "create unknown topics when clients ask for their metadata",
    ),
    (
        "default.replication.factor",
        "1",
        ConfigType::Int,
        Range::Between(1, 32767),
        "replicas of a topic created without a replication factor (auto-created ones too)",
    ),
    (
        "offsets.topic.replication.factor",
        "1",
        ConfigType::Int,
        Range::Between(1, 32767),
        "replicas of each __consumer_offsets partition",
    ),
    (
        "share.coordinator.state.topic.replication.factor",
        "1",
        ConfigType::Int,
        Range::Between(1, 32767),
        "replicas of each __share_group_state partition (queue state)",
    ),
    (
        "broker.session.timeout.ms",
        "9000",
        ConfigType::Int,
        Range::Between(2000, 3_600_000),
        "in a cluster: how long a broker that stopped answering the coordination service stays registered (whole seconds)",
    ),
    (
        "replica.lag.time.max.ms",
        "30000",
        ConfigType::Long,
        Range::AtLeast(100),
        "in a cluster: a follower that has not caught up with its leader for this long leaves the in-sync replicas",
    ),
    (
        "auto.leader.rebalance.enable",
        "true",
        ConfigType::Boolean,
        Range::Any,
        "in a cluster: the controller gives each partition's leadership back to its preferred (first) replica once that is in sync",
    ),
    (
        "leader.imbalance.check.interval.seconds",
        "300",
        ConfigType::Long,
        Range::AtLeast(1),
        "in a cluster: how often the controller restores preferred leaders",
    ),
    (
        "replica.selector.class",
        "",
        ConfigType::String,
        Range::Any,
        "in a cluster: org.apache.kafka.common.replica.RackAwareReplicaSelector (or \"rack\") lets consumers that set client.rack read from an in-sync replica in their rack (KIP-392); empty: consumers read from leaders",
    ),
    (
        "broker.rack",
        "",
        ConfigType::String,
        Range::Any,
        "this broker's rack: replicas of a partition go to different racks where they can",
    ),
    (
        "num.partitions",
        "1",
        ConfigType::Int,
        Range::AtLeast(1),
        "partitions of an auto-created topic",
    ),
    (
        "socket.request.max.bytes",
        "104857600",
        ConfigType::Int,
        Range::AtLeast(1024),
        "largest request frame; a larger length prefix closes the connection",
    ),
    (
        "max.broker.partitions",
        "100000",
        ConfigType::Int,
        Range::AtLeast(1),
        "partitions this broker hosts at most; creating more is refused with POLICY_VIOLATION (KIP-578's name)",
    ),
    (
        "connections.max.idle.ms",
        "600000",
        ConfigType::Long,
        Range::AtLeast(1),
        "a connection that sends no request for this long is closed",
    ),
    (
        "socket.request.read.timeout.ms",
        "60000",
        ConfigType::Long,
        Range::AtLeast(1),
        "a request whose bytes have not all arrived this long after its length closes its connection (Sluice only)",
    ),
    (
        "max.connections",
        "2147483647",
        ConfigType::Int,
        Range::AtLeast(0),
        "connections the broker accepts at once; beyond it new connections are closed",
    ),
    (
        "max.connection.creation.rate.per.ip",
        "2147483647",
        ConfigType::Int,
        Range::AtLeast(1),
        "new connections one IP address may open per second (bursts of as many); beyond it they are closed at once. The default of Kafka's connection_creation_rate IP quota",
    ),
    (
        "max.connections.per.ip",
        "2147483647",
        ConfigType::Int,
        Range::AtLeast(0),
        "connections one IP address may hold at once; beyond it new connections are closed",
    ),
    (
        "max.connections.per.ip.overrides",
        "",
        ConfigType::String,
        Range::Any,
        "per-IP exceptions to max.connections.per.ip, as \"ip:count,ip:count\"",
    ),
    (
        "queued.max.request.bytes",
        "268435456",
        ConfigType::Long,
        Range::AtLeast(-1),
        "bytes of requests being handled at once, broker-wide; a connection waits before reading a request that does not fit (Kafka's default is no limit)",
    ),
    (
        "group.min.session.timeout.ms",
        "6000",
        ConfigType::Int,
        Range::AtLeast(0),
        "shortest session timeout a group member may ask for",
    ),
    (
        "group.max.session.timeout.ms",
        "1800000",
        ConfigType::Int,
        Range::AtLeast(0),
        "longest session timeout a group member may ask for",
    ),
    (
        "group.initial.rebalance.delay.ms",
        "3000",
        ConfigType::Int,
        Range::AtLeast(0),
        "the first join into an empty classic group waits this long for more members (each one joining meanwhile extends it, up to the rebalance timeout)",
    ),
    (
        "group.consumer.session.timeout.ms",
        "45000",
        ConfigType::Int,
        Range::AtLeast(1),
        "session timeout of members using the KIP-848 protocol (group.protocol=consumer)",
    ),
    (
        "group.consumer.heartbeat.interval.ms",
        "5000",
        ConfigType::Int,
        Range::AtLeast(1),
        "heartbeat interval the coordinator gives KIP-848 members",
    ),
    (
        "group.share.session.timeout.ms",
        "45000",
        ConfigType::Int,
        Range::AtLeast(1),
        "session timeout of share group members (queues), unless the group sets share.session.timeout.ms",
    ),
    (
        "group.share.heartbeat.interval.ms",
        "5000",
        ConfigType::Int,
        Range::AtLeast(1),
        "heartbeat interval given to share group members, unless the group sets share.heartbeat.interval.ms",
    ),
    (
        "group.share.record.lock.duration.ms",
        "30000",
        ConfigType::Int,
        Range::Between(1000, 3_600_000),
        "how long a share group member holds a record before it is offered again, unless the group sets share.record.lock.duration.ms",
    ),
    (
        "group.share.delivery.count.limit",
        "5",
        ConfigType::Int,
        Range::Between(2, 10),
        "deliveries of a record before a share group archives it, unless the group sets share.delivery.count.limit",
    ),
    (
        "group.share.partition.max.record.locks",
        "2000",
        ConfigType::Int,
        Range::Between(100, 10000),
        "records of one partition a share group may have in flight, unless the group sets share.partition.max.record.locks",
    ),
    (
        "transaction.state.log.num.partitions",
        "50",
        ConfigType::Int,
        Range::Between(1, 1000),
        "partitions of __transaction_state (fixed once the topic exists)",
    ),
    (
        "transaction.state.log.replication.factor",
        "1",
        ConfigType::Int,
        Range::Between(1, 32767),
        "replicas of each __transaction_state partition",
    ),
    (
        "transaction.max.timeout.ms",
        "900000",
        ConfigType::Int,
        Range::AtLeast(1),
        "the longest transaction.timeout.ms a producer may ask for",
    ),
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "10000",
        ConfigType::Int,
        Range::AtLeast(1),
        "how often the transaction coordinator aborts transactions open past their timeout",
    ),
    (
        "transaction.version",
        "2",
        ConfigType::Int,
        Range::Between(1, 2),
        "the transaction protocol offered to clients: 2 lets those that speak it use KIP-890's transactions v2 (an epoch per transaction, partitions added by the first write); 1 only the original one",
    ),
    (
        "transactional.id.expiration.ms",
        "604800000",
        ConfigType::Int,
        Range::AtLeast(1),
        "how long an idle transactional id is kept",
    ),
    (
        "offsets.topic.num.partitions",
        "50",
        ConfigType::Int,
        Range::Between(1, 1000),
        "partitions of __consumer_offsets (fixed once the topic exists)",
    ),
    (
        "offsets.retention.minutes",
        "10080",
        ConfigType::Int,
        Range::AtLeast(1),
        "committed offsets of an empty group are dropped this long after the group emptied or the commit, whichever is later",
    ),
    (
        "offsets.retention.check.interval.ms",
        "600000",
        ConfigType::Long,
        Range::AtLeast(1),
        "how often offsets are checked for expiry",
    ),
    (
        "offset.metadata.max.bytes",
        "4096",
        ConfigType::Int,
        Range::AtLeast(0),
        "longest metadata string stored with a committed offset",
    ),
    (
        "log.retention.check.interval.ms",
        "300000",
        ConfigType::Long,
        Range::AtLeast(1),
        "how often partitions are checked against retention.ms and retention.bytes",
    ),
    (
        "log.cleaner.backoff.ms",
        "15000",
        ConfigType::Long,
        Range::AtLeast(0),
        "how often compacted partitions are checked for cleaning",
    ),
    (
        "log.cleaner.dedupe.buffer.size",
        "134217728",
        ConfigType::Long,
        Range::AtLeast(0),
        "memory for the cleaner's key map (24 bytes a key); a pass cleans as many segments as it covers",
    ),
    (
        "log.flush.offset.checkpoint.interval.ms",
        "60000",
        ConfigType::Long,
        Range::AtLeast(0),
        "how often each partition's recovery point is saved (crash recovery checks only what follows it)",
    ),
    (
        "fetch.max.bytes",
        "57671680",
        ConfigType::Int,
        Range::AtLeast(0),
        "largest fetch response (the first batch is returned whole even if larger)",
    ),
    (
        "log.flush.scheduler.interval.ms",
        "1000",
        ConfigType::Long,
        Range::AtLeast(0),
        "how often partitions are checked against flush.ms",
    ),
];

pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks that `value` parses as the setting's type and is an allowed value.
pub fn validate_value(
    kind: ConfigType,
    allowed: &[&str],
    name: &str,
    value: &str,
) -> Result<(), String> {
    let ok = match kind {
        ConfigType::Boolean => value == "true" || value == "false",
        ConfigType::Int => value.parse::<i32>().is_ok(),
        ConfigType::Long => value.parse::<i64>().is_ok(),
        ConfigType::Double => value.parse::<f64>().is_ok_and(|v| v.is_finite()),
        ConfigType::String | ConfigType::List => true,
    };
    if !ok {
        return Err(format!(
            "invalid value {value:?} for {name}: expected {kind:?}"
        ));
    }
    if !allowed.is_empty() && !allowed.contains(&value) {
        return Err(format!(
            "invalid value {value:?} for {name}: allowed are {}",
            allowed.join(", ")
        ));
    }
    Ok(())
}

/// The TLS settings make sense for the listeners: a keystore where a listener uses TLS, known
/// values for the client-auth and protocol settings, PEM stores.
/// Settings whose values are secrets.
const SECRET_SETTINGS: &[&str] = &["sasl.jaas.config"];

/// How this broker reaches the inter-broker listener of the others: TLS trusting
/// `ssl.truststore.location` and presenting `ssl.keystore.location` (for listeners that ask
/// for a certificate), and on SASL listeners the login of `sasl.jaas.config` with
/// `sasl.mechanism.inter.broker.protocol`.
fn inter_broker_security(
    settings: &BTreeMap<String, String>,
    protocol: crate::listeners::SecurityProtocol,
) -> Result<sluice_client::ClientSecurity, String> {
    let value = |name: &str| settings.get(name).cloned().unwrap_or_default();
    let mut props = BTreeMap::from([
        ("security.protocol".to_string(), protocol.name().to_string()),
        (
            "sasl.mechanism".to_string(),
            settings
                .get("sasl.mechanism.inter.broker.protocol")
                .cloned()
                .unwrap_or_else(|| "PLAIN".into()),
        ),
        ("sasl.jaas.config".to_string(), value("sasl.jaas.config")),
        (
            "ssl.truststore.location".to_string(),
            value("ssl.truststore.location"),
        ),
        (
            "ssl.endpoint.identification.algorithm".to_string(),
            settings
                .get("ssl.endpoint.identification.algorithm")
                .cloned()
                .unwrap_or_else(|| "https".into()),
        ),
    ]);
    if protocol.tls() && value("ssl.client.auth") != "none" && !value("ssl.client.auth").is_empty()
    {
        props.insert(
            "ssl.keystore.location".into(),
            value("ssl.keystore.location"),
        );
    }
    if protocol == crate::listeners::SecurityProtocol::Ssl
        && !matches!(value("ssl.client.auth").as_str(), "required" | "requested")
    {
        return Err("the inter-broker listener is SSL: set ssl.client.auth to required or requested (brokers are known by their certificates; their principals in super.users)".into());
    }
    if protocol.sasl() && value("sasl.jaas.config").is_empty() {
        return Err(format!(
            "the inter-broker listener is {}: set sasl.jaas.config to this broker's login (username=\"...\" password=\"...\") and its principal in super.users",
            protocol.name()
        ));
    }
    sluice_client::ClientSecurity::from_properties(&props)
        .map_err(|e| format!("the inter-broker listener's client settings: {e:#}"))
}

fn check_ssl_settings(
    settings: &BTreeMap<String, String>,
    listeners: &[crate::listeners::Listener],
) -> Result<(), String> {
    let value = |name: &str| settings.get(name).map_or("", String::as_str);
    for name in ["ssl.keystore.type", "ssl.truststore.type"] {
        if !matches!(value(name), "" | "PEM") {
            return Err(format!(
                "{name} {:?}: only PEM stores are read (KIP-651)",
                value(name)
            ));
        }
    }
    if !matches!(
        value("ssl.client.auth"),
        "" | "none" | "requested" | "required"
    ) {
        return Err(format!(
            "ssl.client.auth {:?}: none, requested or required",
            value("ssl.client.auth")
        ));
    }
    for p in value("ssl.enabled.protocols").split(',').map(str::trim) {
        if !matches!(p, "" | "TLSv1.2" | "TLSv1.3") {
            return Err(format!(
                "ssl.enabled.protocols: {p:?} (TLSv1.2 and TLSv1.3 are served)"
            ));
        }
    }
    if let Some(l) = listeners.iter().find(|l| l.protocol.tls()) {
        if value("ssl.keystore.location").is_empty() {
            return Err(format!(
                "listener {} is {}: set ssl.keystore.location (a PEM file with the certificate chain and the private key)",
                l.name,
                l.protocol.name()
            ));
        }
    }
    if value("ssl.client.auth") == "required" && value("ssl.truststore.location").is_empty() {
        return Err("ssl.client.auth=required: set ssl.truststore.location (the CA certificates client certificates are checked against)".into());
    }
    Ok(())
}

/// Parses "ip:count,ip:count" (IPv6 addresses in brackets or bare: the count follows the
/// last colon).
pub fn parse_ip_overrides(text: &str) -> Result<Vec<(std::net::IpAddr, usize)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let bad = || format!("invalid entry {entry:?} in max.connections.per.ip.overrides: expected ip:count");
            let (ip, count) = entry.rsplit_once(':').ok_or_else(bad)?;
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            Ok((ip.parse().map_err(|_| bad())?, count.parse().map_err(|_| bad())?))
        })
        .collect()
}

/// Where a setting's effective value comes from (Kafka's DescribeConfigs sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicOverride,
    GroupOverride,
    StaticBroker,
    Default,
}

/// The broker's configuration: identity, listener, data directory and Kafka-named settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// The inter-broker listener's bind address.
    pub listen: SocketAddr,
    /// The inter-broker listener's advertised host:port: what the broker registers and
    /// other brokers connect to.
    pub advertised: (String, u16),
    /// Every listener (`listeners`, or the `--listen` shorthand).
    pub listeners: Vec<crate::listeners::Listener>,
    /// The listener brokers use to reach each other (an index into `listeners`).
    pub inter_broker_listener: usize,
    /// How this broker connects to the others' inter-broker listener (TLS, its login).
    pub inter_broker_security: std::sync::Arc<sluice_client::ClientSecurity>,
    pub data_dir: PathBuf,
    /// Settings from the config file, by Kafka name (validated).
    settings: BTreeMap<String, String>,
}

impl BrokerConfig {
    /// Builds a config, rejecting unknown setting names and bad values.
    pub fn new(
        node_id: i32,
        listen: SocketAddr,
        advertised: (String, u16),
        data_dir: PathBuf,
        settings: BTreeMap<String, String>,
    ) -> Result<BrokerConfig, String> {
        for (name, value) in &settings {
            if let Some(def) = TOPIC_CONFIGS.iter().find(|d| d.broker_name == name) {
                validate_value(def.kind, def.allowed, name, value)?;
                def.range.check(name, value)?;
            } else if let Some((_, _, kind, range, _)) =
                BROKER_SETTINGS.iter().find(|s| s.0 == name)
            {
                validate_value(*kind, &[], name, value)?;
                range.check(name, value)?;
                if name == "max.connections.per.ip.overrides" {
                    parse_ip_overrides(value)?;
                }
            } else {
                return Err(format!(
                    "unknown setting {name:?} (see docs/configuration.md)"
                ));
            }
        }
        let value = |name: &str| settings.get(name).map_or("", String::as_str);
        let (listeners, inter_broker_listener) = crate::listeners::parse(
            &crate::listeners::ListenerSettings {
                listeners: value("listeners"),
                advertised_listeners: value("advertised.listeners"),
                protocol_map: value("listener.security.protocol.map"),
                inter_broker: value("inter.broker.listener.name"),
            },
            listen,
            advertised,
        )?;
        let inter = &listeners[inter_broker_listener];
        check_ssl_settings(&settings, &listeners)?;
        let inter_broker_security =
            std::sync::Arc::new(inter_broker_security(&settings, inter.protocol)?);
        for m in value("sasl.enabled.mechanisms").split(',').map(str::trim) {
            if !m.is_empty() && crate::auth::Mechanism::parse(m).is_none() {
                return Err(format!(
                    "sasl.enabled.mechanisms: {m} is not served (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)"
                ));
            }
            if m == "OAUTHBEARER" && value("sasl.oauthbearer.jwks.endpoint.url").is_empty() {
                return Err("sasl.enabled.mechanisms has OAUTHBEARER: set sasl.oauthbearer.jwks.endpoint.url (the keys tokens are checked against)".into());
            }
        }
        Ok(BrokerConfig {
            node_id,
            listen: inter.bind,
            advertised: inter.advertised.clone(),
            inter_broker_listener,
            inter_broker_security,
            listeners,
            data_dir,
            settings,
        })
    }

    fn broker_value(&self, name: &str) -> &str {
        if let Some(v) = self.settings.get(name) {
            return v;
        }
        BROKER_SETTINGS
            .iter()
            .find(|s| s.0 == name)
            .map(|s| s.1)
            .or_else(|| {
                TOPIC_CONFIGS
                    .iter()
                    .find(|d| d.broker_name == name)
                    .map(|d| d.default)
            })
            .unwrap_or_else(|| panic!("{name} is not a known setting"))
    }

    /// The SASL mechanisms SASL listeners offer.
    pub fn sasl_mechanisms(&self) -> Vec<String> {
        self.broker_value("sasl.enabled.mechanisms")
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect()
    }

    /// `super.users`: principals such as `User:admin`, separated by `;` (Kafka's form) or `,`.
    pub fn super_users(&self) -> Vec<String> {
        self.broker_value("super.users")
            .split([';', ','])
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// `connections.max.reauth.ms`: how long a SASL login lasts (KIP-368); None: for ever.
    pub fn max_reauthentication(&self) -> Option<std::time::Duration> {
        match self.int_setting("connections.max.reauth.ms", 0) {
            n if n > 0 => Some(std::time::Duration::from_millis(n as u64)),
            _ => None,
        }
    }

    pub fn failed_authentication_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.int_setting("connection.failed.authentication.delay.ms", 100)
                .max(0) as u64,
        )
    }

    /// A string setting (its default when not set).
    pub fn string_setting(&self, name: &str) -> &str {
        self.broker_value(name)
    }

    /// What this broker registers as: node id, advertised address, rack.
    pub fn broker_info(&self) -> sluice_cluster::BrokerInfo {
        let rack = self.broker_value("broker.rack");
        sluice_cluster::BrokerInfo {
            node_id: self.node_id,
            host: self.advertised.0.clone(),
            port: self.advertised.1,
            rack: (!rack.is_empty()).then(|| rack.to_string()),
            addresses: crate::interfaces::local_addresses(),
            endpoints: self
                .listeners
                .iter()
                .map(|l| sluice_cluster::Endpoint {
                    listener: l.name.clone(),
                    host: l.advertised.0.clone(),
                    port: l.advertised.1,
                })
                .collect(),
            incarnation: 0,
        }
    }
    pub fn broker_session_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.int_setting("broker.session.timeout.ms", 9000)
                .max(2000) as u64,
        )
    }
    pub fn auto_leader_rebalance(&self) -> bool {
        self.broker_value("auto.leader.rebalance.enable") == "true"
    }
    pub fn leader_imbalance_check_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.int_setting("leader.imbalance.check.interval.seconds", 300)
                .max(1) as u64,
        )
    }
    pub fn rack_aware_replica_selector(&self) -> bool {
        matches!(
            self.broker_value("replica.selector.class"),
            "org.apache.kafka.common.replica.RackAwareReplicaSelector" | "rack"
        )
    }
    pub fn replica_lag_time_max_ms(&self) -> i64 {
        self.int_setting("replica.lag.time.max.ms", 30000).max(100)
    }
    pub fn default_replication_factor(&self) -> i16 {
        self.int_setting("default.replication.factor", 1)
            .clamp(1, i16::MAX as i64) as i16
    }
    pub fn offsets_topic_replication_factor(&self) -> i16 {
        self.int_setting("offsets.topic.replication.factor", 1)
            .clamp(1, i16::MAX as i64) as i16
    }
    pub fn share_state_topic_replication_factor(&self) -> i16 {
        self.int_setting("share.coordinator.state.topic.replication.factor", 1)
            .clamp(1, i16::MAX as i64) as i16
    }
    pub fn auto_create_topics(&self) -> bool {
        self.broker_value("auto.create.topics.enable") == "true"
    }
    pub fn num_partitions(&self) -> i32 {
        self.broker_value("num.partitions")
            .parse()
            .unwrap_or(1)
            .max(1)
    }
    pub fn socket_request_max_bytes(&self) -> usize {
        self.broker_value("socket.request.max.bytes")
            .parse::<i32>()
            .unwrap_or(104857600)
            .max(1024) as usize
    }
    pub fn max_broker_partitions(&self) -> usize {
        self.int_setting("max.broker.partitions", 100000).max(1) as usize
    }
    pub fn connections_max_idle_ms(&self) -> u64 {
        self.int_setting("connections.max.idle.ms", 600000).max(1) as u64
    }
    pub fn socket_request_read_timeout_ms(&self) -> u64 {
        self.int_setting("socket.request.read.timeout.ms", 60000)
            .max(1) as u64
    }
    pub fn max_connections(&self) -> usize {
        self.int_setting("max.connections", i32::MAX as i64).max(0) as usize
    }
    /// New connections per second from one address; infinite when not limited.
    pub fn max_connection_creation_rate_per_ip(&self) -> f64 {
        match self.int_setting("max.connection.creation.rate.per.ip", i32::MAX as i64) {
            n if n >= i32::MAX as i64 => f64::INFINITY,
            n => n.max(1) as f64,
        }
    }
    pub fn max_connections_per_ip(&self) -> usize {
        self.int_setting("max.connections.per.ip", i32::MAX as i64)
            .max(0) as usize
    }
    /// `max.connections.per.ip.overrides`, parsed (checked when the config is built).
    pub fn max_connections_per_ip_overrides(&self) -> Vec<(std::net::IpAddr, usize)> {
        parse_ip_overrides(self.broker_value("max.connections.per.ip.overrides"))
            .unwrap_or_default()
    }
    pub fn queued_max_request_bytes(&self) -> usize {
        match self.int_setting("queued.max.request.bytes", 268435456) {
            n if n <= 0 => usize::MAX, // -1: no limit, as Kafka's default
            n => n as usize,
        }
    }
    pub fn int_setting(&self, name: &str, fallback: i64) -> i64 {
        self.broker_value(name).parse().unwrap_or(fallback)
    }
    pub fn group_min_session_timeout_ms(&self) -> i32 {
        self.int_setting("group.min.session.timeout.ms", 6000) as i32
    }
    pub fn group_max_session_timeout_ms(&self) -> i32 {
        self.int_setting("group.max.session.timeout.ms", 1800000) as i32
    }
    pub fn group_initial_rebalance_delay_ms(&self) -> u64 {
        self.int_setting("group.initial.rebalance.delay.ms", 3000)
            .max(0) as u64
    }
    pub fn group_consumer_session_timeout_ms(&self) -> u64 {
        self.int_setting("group.consumer.session.timeout.ms", 45000)
            .max(1) as u64
    }
    pub fn group_consumer_heartbeat_interval_ms(&self) -> i32 {
        self.int_setting("group.consumer.heartbeat.interval.ms", 5000)
            .clamp(1, i32::MAX as i64) as i32
    }
    pub fn transaction_state_num_partitions(&self) -> i32 {
        self.int_setting("transaction.state.log.num.partitions", 50)
            .clamp(1, 1000) as i32
    }
    pub fn transaction_state_replication_factor(&self) -> i16 {
        self.int_setting("transaction.state.log.replication.factor", 1)
            .clamp(1, i16::MAX as i64) as i16
    }
    pub fn transaction_max_timeout_ms(&self) -> i32 {
        self.int_setting("transaction.max.timeout.ms", 900_000)
            .clamp(1, i32::MAX as i64) as i32
    }
    pub fn transaction_abort_interval_ms(&self) -> u64 {
        self.int_setting(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            10_000,
        )
        .max(1) as u64
    }
    pub fn transaction_version(&self) -> i16 {
        self.int_setting("transaction.version", 2).clamp(1, 2) as i16
    }
    pub fn transactional_id_expiration_ms(&self) -> i64 {
        self.int_setting("transactional.id.expiration.ms", 604_800_000)
            .max(1)
    }
    pub fn offsets_topic_num_partitions(&self) -> i32 {
        self.int_setting("offsets.topic.num.partitions", 50)
            .clamp(1, 1000) as i32
    }
    pub fn offsets_retention_minutes(&self) -> i64 {
        self.int_setting("offsets.retention.minutes", 10080).max(1)
    }
    pub fn offsets_retention_check_interval_ms(&self) -> u64 {
        self.int_setting("offsets.retention.check.interval.ms", 600000)
            .max(100) as u64
    }
    pub fn offset_metadata_max_bytes(&self) -> usize {
        self.int_setting("offset.metadata.max.bytes", 4096).max(0) as usize
    }
    pub fn retention_check_interval_ms(&self) -> u64 {
        self.int_setting("log.retention.check.interval.ms", 300000)
            .max(10) as u64
    }
    pub fn cleaner_backoff_ms(&self) -> u64 {
        self.int_setting("log.cleaner.backoff.ms", 15000).max(10) as u64
    }
    pub fn cleaner_map_entries(&self) -> usize {
        (self
            .int_setting("log.cleaner.dedupe.buffer.size", 134217728)
            .max(24 * 1024)
            / 24) as usize
    }
    pub fn recovery_checkpoint_interval_ms(&self) -> u64 {
        self.int_setting("log.flush.offset.checkpoint.interval.ms", 60000)
            .max(10) as u64
    }
    pub fn fetch_max_bytes(&self) -> usize {
        self.broker_value("fetch.max.bytes")
            .parse::<i32>()
            .unwrap_or(57671680)
            .max(1024) as usize
    }
    pub fn flush_scheduler_interval_ms(&self) -> u64 {
        self.broker_value("log.flush.scheduler.interval.ms")
            .parse::<u64>()
            .unwrap_or(1000)
            .max(10)
    }

    /// A broker setting's value and whether it was set in the file.
    pub fn broker_setting(&self, name: &str) -> (String, ConfigSource) {
        let source = if self.settings.contains_key(name) {
            ConfigSource::StaticBroker
        } else {
            ConfigSource::Default
        };
        (self.broker_value(name).to_string(), source)
    }

    /// The broker-level value of a topic setting and its source.
    pub fn topic_default(&self, def: &TopicConfigDef) -> (String, ConfigSource) {
        match self.settings.get(def.broker_name) {
            Some(v) => (v.clone(), ConfigSource::StaticBroker),
            None => (def.default.to_string(), ConfigSource::Default),
        }
    }

    /// Every broker-level setting with its value and whether it was set in the file.
    pub fn describe_broker(&self) -> Vec<(String, String, ConfigSource, ConfigType)> {
        let topic_defaults = TOPIC_CONFIGS.iter().map(|d| (d.broker_name, d.kind));
        let broker_only = BROKER_SETTINGS.iter().map(|s| (s.0, s.2));
        topic_defaults
            .chain(broker_only)
            // Secrets are not for anyone who can ask (Kafka answers them as sensitive, empty).
            .filter(|(name, _)| !SECRET_SETTINGS.contains(name))
            .map(|(name, kind)| {
                let source = if self.settings.contains_key(name) {
                    ConfigSource::StaticBroker
                } else {
                    ConfigSource::Default
                };
                let value = self
                    .effective_listener_setting(name)
                    .unwrap_or_else(|| self.broker_value(name).to_string());
                (name.to_string(), value, source, kind)
            })
            .collect()
    }

    /// The listener settings as the broker runs them (the `--listen` shorthand included),
    /// so that tools asking DescribeConfigs see every listener.
    fn effective_listener_setting(&self, name: &str) -> Option<String> {
        let each = |f: &dyn Fn(&crate::listeners::Listener) -> String| {
            self.listeners.iter().map(f).collect::<Vec<_>>().join(",")
        };
        Some(match name {
            "listeners" => each(&|l| format!("{}://{}", l.name, l.bind)),
            "advertised.listeners" => {
                each(&|l| format!("{}://{}:{}", l.name, l.advertised.0, l.advertised.1))
            }
            "listener.security.protocol.map" => {
                each(&|l| format!("{}:{}", l.name, l.protocol.name()))
            }
            "inter.broker.listener.name" => self.listeners[self.inter_broker_listener].name.clone(),
            _ => return None,
        })
    }
}

/// A topic's effective settings: its overrides over the broker's.
#[derive(Debug, Clone)]
pub struct TopicSettings {
    pub overrides: BTreeMap<String, String>,
}

impl TopicSettings {
    pub fn value(&self, broker: &BrokerConfig, def: &TopicConfigDef) -> (String, ConfigSource) {
        match self.overrides.get(def.name) {
            Some(v) => (v.clone(), ConfigSource::TopicOverride),
            None => broker.topic_default(def),
        }
    }

    fn get<T: std::str::FromStr>(&self, broker: &BrokerConfig, name: &str, fallback: T) -> T {
        let def = topic_config_def(name).expect("known topic setting");
        self.value(broker, def).0.parse().unwrap_or(fallback)
    }

    pub fn log_config(&self, broker: &BrokerConfig) -> LogConfig {
        LogConfig {
            segment_bytes: self.get::<i64>(broker, "segment.bytes", 1 << 30).max(1024) as u64,
            segment_ms: self.get::<i64>(broker, "segment.ms", 604800000).max(1),
            index_interval_bytes: self.get::<i64>(broker, "index.interval.bytes", 4096).max(0)
                as u64,
            max_message_bytes: self.get::<i64>(broker, "max.message.bytes", 1048588).max(0)
                as usize,
            log_append_time: self
                .value(broker, topic_config_def("message.timestamp.type").unwrap())
                .0
                == "LogAppendTime",
            compacted: self.policy_includes(broker, "compact"),
            timestamp_before_max_ms: self
                .get::<i64>(broker, "message.timestamp.before.max.ms", i64::MAX)
                .max(0),
            timestamp_after_max_ms: self
                .get::<i64>(broker, "message.timestamp.after.max.ms", 3_600_000)
                .max(0),
            compression: self.target_compression(broker),
        }
    }

    /// `compression.type` and its level, unless it is `producer`.
    fn target_compression(&self, broker: &BrokerConfig) -> Option<TargetCompression> {
        let name = self
            .value(broker, topic_config_def("compression.type").expect("known"))
            .0;
        let (codec, level_setting) = match name.as_str() {
            "uncompressed" => (0, None),
            "gzip" => (1, Some("compression.gzip.level")),
            "snappy" => (2, None),
            "lz4" => (3, Some("compression.lz4.level")),
            "zstd" => (4, Some("compression.zstd.level")),
            _ => return None,
        };
        let level = level_setting
            .map(|s| self.get::<i32>(broker, s, -1))
            .filter(|&l| l != -1);
        Some(TargetCompression { codec, level })
    }

    fn policy_includes(&self, broker: &BrokerConfig, policy: &str) -> bool {
        self.value(broker, topic_config_def("cleanup.policy").expect("known"))
            .0
            .split(',')
            .any(|p| p.trim() == policy)
    }

    /// (retention.ms, retention.bytes) when the cleanup policy includes `delete`.
    pub fn retention(&self, broker: &BrokerConfig) -> Option<(i64, i64)> {
        self.policy_includes(broker, "delete").then(|| {
            (
                self.get::<i64>(broker, "retention.ms", 604800000),
                self.get::<i64>(broker, "retention.bytes", -1),
            )
        })
    }

    /// Compaction settings when the cleanup policy includes `compact`.
    pub fn cleaner(&self, broker: &BrokerConfig) -> Option<sluice_log::cleaner::CleanerConfig> {
        self.policy_includes(broker, "compact")
            .then(|| sluice_log::cleaner::CleanerConfig {
                delete_retention_ms: self.get::<i64>(broker, "delete.retention.ms", 86400000),
                min_compaction_lag_ms: self.get::<i64>(broker, "min.compaction.lag.ms", 0),
                max_compaction_lag_ms: self.get::<i64>(broker, "max.compaction.lag.ms", i64::MAX),
                min_cleanable_dirty_ratio: self.get::<f64>(
                    broker,
                    "min.cleanable.dirty.ratio",
                    0.5,
                ),
                max_map_entries: broker.cleaner_map_entries(),
                max_uncompressed_bytes: self.log_config(broker).max_uncompressed_bytes(),
            })
    }

    /// May an out-of-sync replica lead when no in-sync one is alive?
    pub fn unclean_leader_election(&self, broker: &BrokerConfig) -> bool {
        self.get::<bool>(broker, "unclean.leader.election.enable", false)
    }

    /// In-sync replicas an acks=all write needs (`min.insync.replicas`).
    pub fn min_insync_replicas(&self, broker: &BrokerConfig) -> usize {
        self.get::<i64>(broker, "min.insync.replicas", 1).max(1) as usize
    }

    pub fn flush_policy(&self, broker: &BrokerConfig) -> FlushPolicy {
        let messages = self.get::<i64>(broker, "flush.messages", 1);
        if messages <= 1 {
            FlushPolicy::EveryWrite
        } else {
            FlushPolicy::Interval {
                messages: messages as u64,
                ms: self.get::<i64>(broker, "flush.ms", i64::MAX).max(0) as u64,
            }
        }
    }
}

/// When appended data is fsynced, and so when it is acknowledged and visible to consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Acknowledge acks=1/all writes only after fsync; concurrent writes share one fsync.
    EveryWrite,
    /// Acknowledge after the write reaches the page cache; fsync after `messages` offsets or
    /// `ms` milliseconds, whichever comes first.
    Interval { messages: u64, ms: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(settings: &[(&str, &str)]) -> Result<BrokerConfig, String> {
        BrokerConfig::new(
            1,
            "127.0.0.1:9092".parse().unwrap(),
            ("localhost".into(), 9092),
            "/tmp/x".into(),
            settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn topic_override_beats_broker_setting_beats_default() {
        let b = broker(&[("log.segment.bytes", "2048")]).unwrap();
        let mut t = TopicSettings {
            overrides: BTreeMap::new(),
        };
        assert_eq!(t.log_config(&b).segment_bytes, 2048);
        assert_eq!(t.log_config(&b).max_message_bytes, 1048588);
        t.overrides.insert("segment.bytes".into(), "4096".into());
        assert_eq!(t.log_config(&b).segment_bytes, 4096);
        assert_eq!(t.flush_policy(&b), FlushPolicy::EveryWrite);
        t.overrides.insert("flush.messages".into(), "100".into());
        assert!(matches!(
            t.flush_policy(&b),
            FlushPolicy::Interval { messages: 100, .. }
        ));
    }

    #[test]
    fn unknown_or_bad_settings_are_named() {
        assert!(broker(&[("log.segment.bytez", "1")])
            .unwrap_err()
            .contains("log.segment.bytez"));
        assert!(broker(&[("num.partitions", "many")])
            .unwrap_err()
            .contains("num.partitions"));
        assert!(broker(&[("log.message.timestamp.type", "Now")]).is_err());
    }

    #[test]
    fn per_ip_overrides_parse() {
        let parsed = parse_ip_overrides("127.0.0.1:5, [::1]:7,10.0.0.2:0").unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[1], ("::1".parse().unwrap(), 7));
        assert!(parse_ip_overrides("localhost:5").is_err());
        assert!(broker(&[("max.connections.per.ip.overrides", "1.2.3.4")]).is_err());
    }

    #[test]
    fn values_outside_kafkas_ranges_are_refused() {
        for (name, value) in [
            ("log.retention.ms", "-5"),
            ("log.roll.ms", "0"),
            ("log.segment.bytes", "1"),
            ("log.flush.interval.messages", "0"),
            ("log.index.interval.bytes", "-1"),
            ("log.cleaner.min.cleanable.ratio", "1.5"),
            ("num.partitions", "0"),
            ("log.message.timestamp.after.max.ms", "-1"),
        ] {
            let err = broker(&[(name, value)]).unwrap_err();
            assert!(
                err.contains(name) && err.contains("must be"),
                "{name}={value}: {err}"
            );
        }
        for (name, value) in [
            ("log.retention.ms", "-1"),
            ("log.index.interval.bytes", "0"),
            ("log.segment.bytes", "1024"),
            ("log.retention.bytes", "-1"),
        ] {
            assert!(broker(&[(name, value)]).is_ok(), "{name}={value}");
        }
    }
}

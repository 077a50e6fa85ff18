//! Command-line parameters of `sluice bench`. Defaults follow librdkafka's producer and
//! consumer defaults (batch.size, linger.ms, fetch sizes) so figures compare with real clients.

use std::time::Duration;

use clap::{Args, ValueEnum};
use sluice_client::ClientSecurity;

use crate::security_args::SecurityArgs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Produce records and measure acknowledged throughput and ack latency.
    Produce,
    /// Consume a topic from the earliest offset to its end (as of the start).
    Consume,
    /// Produce and consume at once; latency from the send timestamp embedded in each record.
    EndToEnd,
    /// Consume the topic as a queue (a share group, KIP-932): --consumers members each
    /// acquire records and acknowledge them (Accept) with their next fetch, until every
    /// record in the topic at the start is acknowledged.
    Share,
    /// Open connections one after another (--records of them, default 200) and measure each
    /// one's setup: TCP, TLS handshake, ApiVersions and SASL login, as the security
    /// settings ask.
    Connect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec number in a batch's attributes.
    pub fn codec(self) -> i16 {
        self as i16
    }
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub mode: Mode,
    /// A broker to bootstrap from (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    #[command(flatten)]
    pub security: SecurityArgs,
    /// `security` read and checked (by `run`): how every connection is made.
    #[arg(skip)]
    pub client_security: ClientSecurity,
    /// Topic to use; created with --partitions if it does not exist.
    #[arg(long, default_value = "sluice-bench")]
    pub topic: String,
    /// Partitions of the topic when the bench creates it.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Replication factor when the bench creates the topic (-1: the broker's default).
    #[arg(long, default_value_t = -1)]
    pub replication_factor: i16,
    /// Records to produce (consume: records to read; default: up to the end of the log).
    /// Default for produce and end-to-end: 1,000,000, unless --duration is given.
    #[arg(long)]
    pub records: Option<u64>,
    /// Run for this many seconds instead of a record count (produce and end-to-end).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Bytes of each record's value (no key).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Producer connections, each with its own batches and requests in flight.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumers; the partitions are divided among them.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Producer acks: all (-1), 1 or 0.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: i16,
    /// Batch compression.
    #[arg(long, value_enum, default_value = "none")]
    pub compression: Compression,
    /// Most bytes of records in one batch (librdkafka's batch.size).
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: usize,
    /// Most records in one batch (librdkafka's batch.num.messages).
    #[arg(long, default_value_t = 10_000)]
    pub batch_records: usize,
    /// How long a batch waits for more records before it is sent (librdkafka's linger.ms).
    #[arg(long, default_value_t = 5.0)]
    pub linger_ms: f64,
    /// Produce requests in flight per producer connection.
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
    /// Target rate in records/s over all producers (open loop: records are due on a fixed
    /// schedule and latency counts from when each was due). Default: as fast as acks allow.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Fetch max_wait_ms.
    #[arg(long, default_value_t = 500)]
    pub fetch_max_wait_ms: i32,
    /// Fetch max_bytes (librdkafka's fetch.max.bytes).
    #[arg(long, default_value_t = 52_428_800)]
    pub fetch_max_bytes: i32,
    /// Fetch partition_max_bytes (librdkafka's max.partition.fetch.bytes).
    #[arg(long, default_value_t = 1_048_576)]
    pub partition_max_bytes: i32,
    /// Share mode: records one ShareFetch asks for (max.poll.records; whole batches are
    /// acquired, so a fetch may get more).
    #[arg(long, default_value_t = 500)]
    pub share_max_records: i32,
    /// Produce mode: make each producer transactional, committing a transaction every this
    /// many records (InitProducerId with a transactional id, AddPartitionsToTxn, EndTxn).
    #[arg(long)]
    pub transaction_records: Option<u64>,
    /// Produce request timeout.
    #[arg(long, default_value_t = 30_000)]
    pub request_timeout_ms: i32,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, default_value_t = 1.0)]
    pub progress_interval: f64,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        other => Err(format!("acks must be all, -1, 1 or 0, not {other:?}")),
    }
}

impl BenchArgs {
    pub fn check(&self) -> Result<(), String> {
        if self.partitions < 1 {
            return Err("--partitions must be at least 1".into());
        }
        if self.producers < 1 || self.consumers < 1 {
            return Err("--producers and --consumers must be at least 1".into());
        }
        if self.max_in_flight < 1 || self.batch_records < 1 || self.batch_size < 1 {
            return Err(
                "--max-in-flight, --batch-records and --batch-size must be positive".into(),
            );
        }
        if self.mode == Mode::EndToEnd && self.record_size < 8 {
            return Err("end-to-end needs --record-size of at least 8 (the send timestamp)".into());
        }
        if self.mode == Mode::EndToEnd && self.acks == 0 {
            return Err("end-to-end needs acks 1 or all (it counts acknowledged records)".into());
        }
        if let Some(rate) = self.rate {
            if !(rate > 0.0 && rate.is_finite()) {
                return Err("--rate must be a positive number of records/s".into());
            }
        }
        if let Some(d) = self.duration {
            if !(d > 0.0 && d.is_finite()) {
                return Err("--duration must be a positive number of seconds".into());
            }
        }
        if let Some(n) = self.transaction_records {
            if n < 1 || self.mode != Mode::Produce || self.rate.is_some() || self.acks != -1 {
                return Err("--transaction-records (at least 1) is for produce mode with acks=all and no --rate".into());
            }
        }
        if !(self.linger_ms >= 0.0 && self.linger_ms.is_finite()) {
            return Err("--linger-ms must be zero or more".into());
        }
        Ok(())
    }

    /// Records the producers send in all: the count asked for, or rate x duration, or a
    /// default of one million; `None` when only a duration bounds the run.
    pub fn records_to_produce(&self) -> Option<u64> {
        match (self.records, self.duration, self.rate) {
            (Some(n), _, _) => Some(n),
            (None, Some(d), Some(rate)) => Some((d * rate) as u64),
            (None, Some(_), None) => None,
            (None, None, _) => Some(1_000_000),
        }
    }

    pub fn linger(&self) -> Duration {
        Duration::from_secs_f64(self.linger_ms / 1000.0)
    }
}

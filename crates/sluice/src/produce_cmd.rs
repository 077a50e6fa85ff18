//! `sluice produce TOPIC`: records from lines of stdin or a file, streamed to any
//! Kafka-compatible broker with librdkafka (its partitioner, batching and compression).
//! Each line is a value, or `KEY<sep>VALUE` with `--key-separator`. Every record's delivery
//! is checked: exit 0 when all were acknowledged, 1 when some were refused (each is named
//! with its line on stderr), 2 when no broker could be reached.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::cli::Status;

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
    /// Split each line at the first occurrence of this into key and value.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// A header on every record, `name=value` (repeat for more).
    #[arg(long = "header", value_parser = crate::cli::name_value)]
    pub headers: Vec<(String, String)>,
    /// Write every record to this partition (default: by key, or spread).
    #[arg(long)]
    pub partition: Option<i32>,
    #[arg(long, default_value = "all", value_parser = ["all", "1", "0"])]
    pub acks: String,
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression: String,
    /// Any broker of the cluster (host:port).
    #[arg(long, env = "SLUICE_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Other librdkafka properties in --command-config are passed on as they are.
    #[command(flatten)]
    pub security: sluice_bench::SecurityArgs,
}

/// Delivery reports: how many were acknowledged, and what went wrong with the others.
#[derive(Default)]
struct Reports {
    delivered: AtomicU64,
    failed: Mutex<Vec<String>>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    /// The line number of each record.
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, line: Box<u64>) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                failed.push(format!("line {line}: {e}"));
            }
        }
    }
}

pub fn run(args: ProduceArgs) -> anyhow::Result<Status> {
    let producer: BaseProducer<Reports> =
        crate::cli::librdkafka_config(&args.bootstrap, &args.security)?
            .set("acks", &args.acks)
            .set("compression.type", &args.compression)
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create_with_context(Reports::default())?;
    // Fail fast, and say so, when there is no broker to talk to.
    producer
        .client()
        .fetch_metadata(Some(&args.topic), Duration::from_secs(5))
        .map_err(|e| anyhow::anyhow!("cannot reach a broker at {}: {e}", args.bootstrap))?;
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let headers = args.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        })
    });
    let mut sent = 0u64;
    // Records librdkafka refused before sending (an unknown partition, say).
    let mut refused = Vec::new();
    let progress = Progress::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k), v),
                None => (None, line.as_str()),
            },
            None => (None, line.as_str()),
        };
        let mut record = BaseRecord::with_opaque_to(&args.topic, Box::new(n as u64 + 1))
            .payload(value)
            .headers(headers.clone());
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        sent += 1;
        // A full local queue waits for deliveries rather than failing the line.
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(100));
                }
                Err((e, _)) => {
                    refused.push(format!("line {}: {e}", n + 1));
                    break;
                }
            }
        }
        producer.poll(Duration::ZERO);
        progress.show(sent, &producer.context().delivered);
    }
    producer.flush(Duration::from_secs(60))?;
    progress.finish();
    let reports = producer.context();
    let delivered = reports.delivered.load(Ordering::Relaxed);
    let failed = reports.failed.lock().unwrap_or_else(|p| p.into_inner());
    for f in refused.iter().chain(failed.iter()) {
        eprintln!("sluice: {f}");
    }
    eprintln!("produced {delivered} of {sent} records to {}", args.topic);
    Ok(if delivered == sent { 0 } else { 1 })
}

/// Records sent and acknowledged so far, on a terminal (a spinner on stderr); nothing when
/// stderr is a file or a pipe.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new() -> Progress {
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} ({per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress(Some(bar))
    }

    fn show(&self, sent: u64, delivered: &AtomicU64) {
        if let Some(bar) = &self.0 {
            bar.set_position(sent);
            let acked = delivered.load(Ordering::Relaxed);
            bar.set_message(format!("{sent} records sent, {acked} acknowledged"));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

//! `sluice consume TOPIC`: records of any Kafka-compatible broker printed as they come, with
//! librdkafka: from the end (default), the beginning, an offset or a time, on every
//! partition or one, alone (nothing committed) or as a member of a consumer group (offsets
//! committed). Each record is a line of `--format` or, with `--output json`, a JSON object.
//! Exit 0 after `--count` records, at the end with `--exit-at-end`, or on Ctrl-C; 1 when the
//! topic does not exist; 2 when no broker could be reached.

use std::io::Write;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::cli::{Output, Status};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("from").multiple(false)))]
pub struct ConsumeArgs {
    pub topic: String,
    /// Start at each partition's first record (default: its end, new records only).
    #[arg(long, group = "from")]
    pub from_beginning: bool,
    /// Start at this offset (with --partition).
    #[arg(long, group = "from", requires = "partition")]
    pub offset: Option<i64>,
    /// Start at the first record at or after this time (epoch milliseconds).
    #[arg(long, group = "from")]
    pub from_timestamp: Option<i64>,
    /// Read only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Read as a member of this consumer group (its committed offsets first; commits).
    #[arg(long, conflicts_with_all = ["offset", "from_timestamp", "partition"])]
    pub group: Option<String>,
    /// Stop after this many records.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop when every partition read has no more records.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Also records of open and aborted transactions (default: read_committed, only
    /// records outside transactions and of committed ones, up to the last stable offset).
    #[arg(long)]
    pub read_uncommitted: bool,
    /// Each record as a line of this: %t topic, %p partition, %o offset, %T timestamp (ms),
    /// %k key, %v value, %h headers (k=v,...), %% a percent sign; \n and \t escapes.
    #[arg(long, default_value = "%v\\n")]
    pub format: String,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    /// Any broker of the cluster (host:port).
    #[arg(long, env = "SLUICE_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Other librdkafka properties in --command-config are passed on as they are.
    #[command(flatten)]
    pub security: sluice_bench::SecurityArgs,
}

/// librdkafka's events: the end of a partition is expected here, not an error to log.
struct Quiet;

impl ClientContext for Quiet {
    fn error(&self, error: KafkaError, reason: &str) {
        let end_of_partition = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !end_of_partition {
            tracing::warn!(%error, reason, "librdkafka");
        }
    }
}

impl ConsumerContext for Quiet {}

pub fn run(args: ConsumeArgs) -> anyhow::Result<Status> {
    let mut config = crate::cli::librdkafka_config(&args.bootstrap, &args.security)?;
    config
        .set("enable.partition.eof", "true")
        .set(
            "isolation.level",
            if args.read_uncommitted {
                "read_uncommitted"
            } else {
                "read_committed"
            },
        )
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        );
    match &args.group {
        // Offsets are stored as records are printed, so a commit covers what was shown.
        Some(g) => config
            .set("group.id", g)
            .set("enable.auto.offset.store", "false"),
        // Assigned partitions commit nothing; librdkafka still wants a group id.
        None => config
            .set("group.id", "sluice-consume")
            .set("enable.auto.commit", "false"),
    };
    let consumer: BaseConsumer<Quiet> = config.create_with_context(Quiet)?;
    let metadata = consumer
        .fetch_metadata(Some(&args.topic), Duration::from_secs(5))
        .map_err(|e| anyhow::anyhow!("cannot reach a broker at {}: {e}", args.bootstrap))?;
    let partitions: Vec<i32> = match metadata.topics().first() {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            t.partitions().iter().map(|p| p.id()).collect()
        }
        _ => {
            eprintln!(
                "sluice: topic {}: UNKNOWN_TOPIC_OR_PARTITION (3)",
                args.topic
            );
            return Ok(1);
        }
    };
    let reading: Vec<i32> = match args.partition {
        Some(p) if !partitions.contains(&p) => {
            eprintln!("sluice: {} has no partition {p}", args.topic);
            return Ok(1);
        }
        Some(p) => vec![p],
        None => partitions,
    };
    if args.group.is_some() {
        consumer.subscribe(&[&args.topic])?;
    } else {
        let start = match (args.offset, args.from_timestamp, args.from_beginning) {
            (Some(o), _, _) => Offset::Offset(o),
            (_, Some(_), _) => Offset::Beginning, // replaced below by the time's offsets
            (_, _, true) => Offset::Beginning,
            _ => Offset::End,
        };
        let mut assignment = TopicPartitionList::new();
        for &p in &reading {
            assignment.add_partition_offset(&args.topic, p, start)?;
        }
        if let Some(at) = args.from_timestamp {
            let mut times = TopicPartitionList::new();
            for &p in &reading {
                times.add_partition_offset(&args.topic, p, Offset::Offset(at))?;
            }
            assignment = consumer.offsets_for_times(times, Duration::from_secs(10))?;
        }
        consumer.assign(&assignment)?;
    }
    let stop = ctrl_c_flag();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut printed = 0u64;
    let mut at_end = std::collections::BTreeSet::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if args.count.is_some_and(|c| printed >= c) {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                match args.output {
                    Output::Json => writeln!(out, "{}", json(&m))?,
                    Output::Text => out.write_all(&formatted(&args.format, &m))?,
                }
                printed += 1;
                if args.group.is_some() {
                    consumer.store_offset_from_message(&m)?;
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                out.flush()?;
                at_end.insert(p);
                // A group member's partitions are known once it is assigned.
                let reading_now = consumer
                    .assignment()
                    .map(|a| a.count())
                    .unwrap_or(reading.len());
                if args.exit_at_end && at_end.len() >= reading_now.max(1) {
                    break;
                }
            }
            Some(Err(e)) => {
                out.flush()?;
                eprintln!("sluice: {e}");
                return Ok(1);
            }
        }
        if printed.is_multiple_of(1000) {
            out.flush()?;
        }
    }
    out.flush()?;
    if args.group.is_some() {
        // What was printed is committed before leaving.
        let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    }
    Ok(0)
}

/// Set on Ctrl-C (SIGINT) or SIGTERM, so the loop ends cleanly (and a group member leaves).
fn ctrl_c_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let set = flag.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = runtime {
            rt.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            set.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    flag
}

fn text(b: Option<&[u8]>) -> String {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn headers(m: &BorrowedMessage<'_>) -> Vec<(String, String)> {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), text(h.value)))
                .collect()
        })
        .unwrap_or_default()
}

fn json(m: &BorrowedMessage<'_>) -> serde_json::Value {
    serde_json::json!({
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "timestamp": m.timestamp().to_millis(),
        "key": m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "value": m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
        "headers": headers(m)
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect::<serde_json::Map<_, _>>(),
    })
}

/// A record through a `--format` template.
fn formatted(format: &str, m: &BorrowedMessage<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('%', Some(f)) => {
                chars.next();
                match f {
                    't' => out.extend_from_slice(m.topic().as_bytes()),
                    'p' => out.extend_from_slice(m.partition().to_string().as_bytes()),
                    'o' => out.extend_from_slice(m.offset().to_string().as_bytes()),
                    'T' => out.extend_from_slice(
                        m.timestamp()
                            .to_millis()
                            .unwrap_or(-1)
                            .to_string()
                            .as_bytes(),
                    ),
                    'k' => out.extend_from_slice(m.key().unwrap_or_default()),
                    'v' => out.extend_from_slice(m.payload().unwrap_or_default()),
                    'h' => {
                        let h: Vec<String> = headers(m)
                            .into_iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect();
                        out.extend_from_slice(h.join(",").as_bytes());
                    }
                    '%' => out.push(b'%'),
                    other => out.extend_from_slice(format!("%{other}").as_bytes()),
                }
            }
            ('\\', Some('n')) => {
                chars.next();
                out.push(b'\n');
            }
            ('\\', Some('t')) => {
                chars.next();
                out.push(b'\t');
            }
            (c, _) => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

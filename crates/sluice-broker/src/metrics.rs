//! The broker's metrics in Prometheus text format (`GET /metrics`). Counters and histograms
//! are updated on the request path with a few relaxed atomic adds per request (none per
//! record); gauges (offsets, lag, replication) are read from the broker's state when scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use crate::broker::Broker;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// API keys counted one by one (Kafka's go up to about 90).
const MAX_API_KEY: usize = 127;

/// A latency histogram: a count per bucket (not cumulative; rendering sums them) and the sum.
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS.partition_point(|&b| b < secs);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// `name_bucket`, `name_sum` and `name_count` lines; `labels` is `k="v",` pairs or empty.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let labels = match labels.trim_end_matches(',') {
            "" => String::new(),
            l => format!("{{{l}}}"),
        };
        let _ = writeln!(out, "{name}_sum{labels} {sum}");
        let _ = writeln!(out, "{name}_count{labels} {cumulative}");
    }
}

#[derive(Default)]
struct ApiStats {
    latency: Histogram,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// The broker-wide counters.
pub struct Metrics {
    apis: Vec<ApiStats>,
    connections: AtomicI64,
    connections_accepted: AtomicU64,
    fsync: Histogram,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    apis: (0..=MAX_API_KEY).map(|_| ApiStats::default()).collect(),
    connections: AtomicI64::new(0),
    connections_accepted: AtomicU64::new(0),
    fsync: Histogram::default(),
});

/// A request of `api_key` was answered after `elapsed`: `bytes_in` its frame, `bytes_out` the
/// answer's.
pub fn request_done(api_key: i16, elapsed: Duration, bytes_in: usize, bytes_out: usize) {
    let Some(api) = usize::try_from(api_key)
        .ok()
        .and_then(|k| METRICS.apis.get(k))
    else {
        return;
    };
    api.latency.observe(elapsed);
    api.bytes_in.fetch_add(bytes_in as u64, Ordering::Relaxed);
    api.bytes_out.fetch_add(bytes_out as u64, Ordering::Relaxed);
}

/// Counts a client connection while it is held.
pub struct ConnectionGauge(());

pub fn connection_opened() -> ConnectionGauge {
    METRICS.connections.fetch_add(1, Ordering::Relaxed);
    METRICS.connections_accepted.fetch_add(1, Ordering::Relaxed);
    ConnectionGauge(())
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        METRICS.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

pub fn fsync_done(elapsed: Duration) {
    METRICS.fsync.observe(elapsed);
}

/// Records and bytes through one partition on this broker.
#[derive(Default)]
pub struct PartitionTraffic {
    pub records_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub records_out: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl PartitionTraffic {
    pub fn appended(&self, records: u64, bytes: usize) {
        self.records_in.fetch_add(records, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `records`: those in the whole batches sent (a read cut by its byte limit ends with
    /// part of a batch, which the reader asks for again).
    pub fn sent(&self, records: u64, bytes: usize) {
        self.records_out.fetch_add(records, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Escapes a label value (Prometheus text format: backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

impl Broker {
    /// Every metric, in Prometheus text format (version 0.0.4); `api_name` names an API key
    /// (the Kafka layer knows them).
    pub fn render_metrics(&self, api_name: impl Fn(i16) -> Option<String>) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_request_metrics(&mut out, api_name);
        self.render_log_metrics(&mut out);
        self.render_group_metrics(&mut out);
        self.render_transaction_metrics(&mut out);
        out
    }

    fn render_request_metrics(&self, out: &mut String, api_name: impl Fn(i16) -> Option<String>) {
        let m = &*METRICS;
        let used: Vec<(String, &ApiStats)> = m
            .apis
            .iter()
            .enumerate()
            .filter(|(_, a)| a.latency.count() > 0)
            .map(|(k, a)| {
                let name = api_name(k as i16).unwrap_or_else(|| k.to_string());
                (name, a)
            })
            .collect();
        header(
            out,
            "sluice_requests_total",
            "counter",
            "Requests answered, by API.",
        );
        for (name, a) in &used {
            let _ = writeln!(
                out,
                "sluice_requests_total{{api=\"{name}\"}} {}",
                a.latency.count()
            );
        }
        header(
            out,
            "sluice_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its answer (long polls included), by API.",
        );
        for (name, a) in &used {
            a.latency.render(
                out,
                "sluice_request_duration_seconds",
                &format!("api=\"{name}\","),
            );
        }
        header(
            out,
            "sluice_request_bytes_total",
            "counter",
            "Bytes of requests received, by API.",
        );
        for (name, a) in &used {
            let v = a.bytes_in.load(Ordering::Relaxed);
            let _ = writeln!(out, "sluice_request_bytes_total{{api=\"{name}\"}} {v}");
        }
        header(
            out,
            "sluice_response_bytes_total",
            "counter",
            "Bytes of responses sent, by API.",
        );
        for (name, a) in &used {
            let v = a.bytes_out.load(Ordering::Relaxed);
            let _ = writeln!(out, "sluice_response_bytes_total{{api=\"{name}\"}} {v}");
        }
        header(
            out,
            "sluice_connections",
            "gauge",
            "Client connections open.",
        );
        let _ = writeln!(
            out,
            "sluice_connections {}",
            m.connections.load(Ordering::Relaxed)
        );
        header(
            out,
            "sluice_connections_accepted_total",
            "counter",
            "Client connections accepted.",
        );
        let accepted = m.connections_accepted.load(Ordering::Relaxed);
        let _ = writeln!(out, "sluice_connections_accepted_total {accepted}");
        header(
            out,
            "sluice_fsync_duration_seconds",
            "histogram",
            "Time of the flusher's fsync rounds (one or more files each).",
        );
        m.fsync.render(out, "sluice_fsync_duration_seconds", "");
    }

    fn render_log_metrics(&self, out: &mut String) {
        let image = self.replicas.image();
        let me = self.config.node_id;
        // One family after another: the text format wants a family's samples together.
        let families: [(&str, &str, &str); 9] = [
            (
                "sluice_topic_records_in_total",
                "counter",
                "Records producers appended on this broker (as leader), by topic.",
            ),
            (
                "sluice_topic_bytes_in_total",
                "counter",
                "Record bytes producers appended on this broker (as leader), by topic.",
            ),
            (
                "sluice_topic_records_out_total",
                "counter",
                "Records sent to consumers and followers in whole batches, by topic.",
            ),
            (
                "sluice_topic_bytes_out_total",
                "counter",
                "Record bytes sent to consumers and followers, by topic.",
            ),
            (
                "sluice_partition_log_start_offset",
                "gauge",
                "First offset of each partition replica on this broker.",
            ),
            (
                "sluice_partition_log_end_offset",
                "gauge",
                "Log end offset of each partition replica on this broker.",
            ),
            (
                "sluice_partition_high_watermark",
                "gauge",
                "High watermark of each partition replica on this broker.",
            ),
            (
                "sluice_partition_last_stable_offset",
                "gauge",
                "Last stable offset of each partition replica on this broker: where read_committed consumers stop (the high watermark, or the start of the earliest open transaction).",
            ),
            (
                "sluice_partition_size_bytes",
                "gauge",
                "Bytes of record batches of each partition replica on this broker.",
            ),
        ];
        let mut samples: [String; 9] = Default::default();
        let mut under_replicated = 0;
        let mut offline = 0;
        let mut under_by_name = String::new();
        for topic in self.replicas.topics() {
            let name = label(&topic.name);
            let (mut records_in, mut bytes_in, mut records_out, mut bytes_out) = (0, 0, 0, 0);
            for p in topic.partitions.iter() {
                records_in += p.traffic.records_in.load(Ordering::Relaxed);
                bytes_in += p.traffic.bytes_in.load(Ordering::Relaxed);
                records_out += p.traffic.records_out.load(Ordering::Relaxed);
                bytes_out += p.traffic.bytes_out.load(Ordering::Relaxed);
                let o = p.offsets();
                let size = p.log().size_bytes();
                let l = format!("topic=\"{name}\",partition=\"{}\"", p.index);
                for (i, v) in [
                    o.log_start_offset,
                    o.log_end_offset,
                    o.high_watermark,
                    o.last_stable_offset,
                    size as i64,
                ]
                .into_iter()
                .enumerate()
                {
                    let _ = writeln!(samples[4 + i], "{}{{{l}}} {v}", families[4 + i].0);
                }
            }
            for (i, v) in [records_in, bytes_in, records_out, bytes_out]
                .into_iter()
                .enumerate()
            {
                let _ = writeln!(samples[i], "{}{{topic=\"{name}\"}} {v}", families[i].0);
            }
            // Replication as the metadata says, counted by the partitions' leaders (the
            // controller counts leaderless ones).
            if let Some(meta) = image.topic(&topic.name) {
                for (index, p) in meta.partitions.iter().enumerate() {
                    if p.leader == me && p.isr.len() < p.replicas.len() {
                        under_replicated += 1;
                        let _ = writeln!(
                            under_by_name,
                            "sluice_partition_under_replicated{{topic=\"{name}\",partition=\"{}\"}} 1",
                            index
                        );
                    }
                    if p.leader < 0 && self.is_controller() {
                        offline += 1;
                    }
                }
            }
        }
        for ((name, kind, help), lines) in families.iter().zip(&samples) {
            header(out, name, kind, help);
            out.push_str(lines);
        }
        header(
            out,
            "sluice_partition_under_replicated",
            "gauge",
            "1 for each partition this broker leads whose in-sync replicas are fewer than its replicas.",
        );
        out.push_str(&under_by_name);
        header(
            out,
            "sluice_under_replicated_partitions",
            "gauge",
            "Partitions this broker leads whose in-sync replicas are fewer than their replicas.",
        );
        let _ = writeln!(out, "sluice_under_replicated_partitions {under_replicated}");
        header(
            out,
            "sluice_offline_partitions",
            "gauge",
            "Partitions without a leader (reported by the controller).",
        );
        let _ = writeln!(out, "sluice_offline_partitions {offline}");
    }

    /// Transactional ids this broker coordinates, by state, and the age of the oldest open
    /// transaction (a hanging one shows as a growing age).
    fn render_transaction_metrics(&self, out: &mut String) {
        header(
            out,
            "sluice_transactions",
            "gauge",
            "Transactional ids coordinated here, by state.",
        );
        let listed = self.transactions.list(&[], &[], -1);
        let mut by_state = std::collections::BTreeMap::new();
        for t in &listed {
            *by_state.entry(t.state.name()).or_insert(0u64) += 1;
        }
        for (state, n) in by_state {
            let _ = writeln!(out, "sluice_transactions{{state=\"{state}\"}} {n}");
        }
        header(
            out,
            "sluice_transaction_oldest_open_seconds",
            "gauge",
            "Age of the oldest transaction open on this coordinator (0: none).",
        );
        let now = crate::now_ms();
        let oldest = self
            .transactions
            .ids
            .lock()
            .values()
            .filter(|m| m.state == crate::txn::TxnState::Ongoing)
            .map(|m| now - m.txn_start_ms)
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "sluice_transaction_oldest_open_seconds {}",
            oldest.max(0) as f64 / 1000.0
        );
    }

    fn render_group_metrics(&self, out: &mut String) {
        header(
            out,
            "sluice_consumer_group_lag",
            "gauge",
            "High watermark minus the committed offset, for groups coordinated here.",
        );
        let groups = &self.groups;
        for g in groups.list_groups(&[], &[]) {
            let group = label(&g.group_id);
            for l in groups.group_lag(&g.group_id) {
                let _ = writeln!(
                    out,
                    "sluice_consumer_group_lag{{group=\"{group}\",topic=\"{}\",partition=\"{}\"}} {}",
                    label(&l.topic),
                    l.partition,
                    l.lag
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let mut out = String::new();
        h.render(&mut out, "x", "api=\"Fetch\",");
        assert!(
            out.contains("x_bucket{api=\"Fetch\",le=\"0.0001\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{api=\"Fetch\",le=\"0.005\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{api=\"Fetch\",le=\"10\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{api=\"Fetch\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("x_count{api=\"Fetch\"} 3\n"), "{out}");
    }
}

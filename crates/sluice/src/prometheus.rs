//! `GET /metrics`: every part's counters and gauges in Prometheus text format (version
//! 0.0.4). The counters live with the parts (sluice-broker's metrics.rs, each partition's
//! traffic); this only reads and renders them.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use kafka_protocol::messages::ApiKey;
use sluice_broker::metrics::{ApiStats, Histogram, METRICS};
use sluice_broker::Broker;

/// `name_bucket`, `name_sum` and `name_count` lines of `histogram`; `labels` is `k="v",`
/// pairs or empty.
fn render_histogram(out: &mut String, histogram: &Histogram, name: &str, labels: &str) {
    let (buckets, sum) = histogram.snapshot();
    for (bound, cumulative) in &buckets {
        let bound = if bound.is_infinite() {
            "+Inf".to_string()
        } else {
            bound.to_string()
        };
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
    }
    let count = buckets.last().map_or(0, |b| b.1);
    let labels = match labels.trim_end_matches(',') {
        "" => String::new(),
        l => format!("{{{l}}}"),
    };
    let _ = writeln!(out, "{name}_sum{labels} {sum}");
    let _ = writeln!(out, "{name}_count{labels} {count}");
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

/// Every metric of `broker`, in Prometheus text format (version 0.0.4).
pub fn render(broker: &Broker) -> String {
    let mut out = String::with_capacity(16 * 1024);
    render_request_metrics(&mut out);
    render_log_metrics(broker, &mut out);
    render_group_metrics(broker, &mut out);
    render_transaction_metrics(broker, &mut out);
    render_coordination_metrics(broker, &mut out);
    out
}

fn render_coordination_metrics(broker: &Broker, out: &mut String) {
    header(
        out,
        "sluice_metadata_records_skipped_total",
        "counter",
        "Records read from the coordination service that failed their checks and were skipped.",
    );
    let skipped = broker.coordinator_status().skipped_records;
    let _ = writeln!(out, "sluice_metadata_records_skipped_total {skipped}");
}

fn render_request_metrics(out: &mut String) {
    let m = &*METRICS;
    let used: Vec<(String, &ApiStats)> = m
        .apis()
        .map(|(k, a)| {
            let name = ApiKey::try_from(k)
                .map(|api| format!("{api:?}"))
                .unwrap_or_else(|_| k.to_string());
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
        render_histogram(
            out,
            &a.latency,
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
    let (open, accepted) = m.connections();
    let _ = writeln!(out, "sluice_connections {open}");
    header(
        out,
        "sluice_connections_accepted_total",
        "counter",
        "Client connections accepted.",
    );
    let _ = writeln!(out, "sluice_connections_accepted_total {accepted}");
    let (authenticated, failed) = m.authentications();
    header(
        out,
        "sluice_authentications_total",
        "counter",
        "SASL authentications, by result.",
    );
    let _ = writeln!(
        out,
        "sluice_authentications_total{{result=\"ok\"}} {authenticated}"
    );
    let _ = writeln!(
        out,
        "sluice_authentications_total{{result=\"failed\"}} {failed}"
    );
    header(
        out,
        "sluice_fsync_duration_seconds",
        "histogram",
        "Time of the flusher's fsync rounds (one or more files each).",
    );
    render_histogram(out, m.fsync(), "sluice_fsync_duration_seconds", "");
}

fn render_log_metrics(broker: &Broker, out: &mut String) {
    let image = broker.replicas.image();
    let me = broker.config.node_id;
    let controller = broker.is_controller();
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
    for topic in broker.replicas.topics() {
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
                if p.leader < 0 && controller {
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
fn render_transaction_metrics(broker: &Broker, out: &mut String) {
    header(
        out,
        "sluice_transactions",
        "gauge",
        "Transactional ids coordinated here, by state.",
    );
    let listed = broker.transactions.list(&[], &[], -1);
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
    let oldest = broker.transactions.oldest_open_ms(sluice_broker::now_ms());
    let _ = writeln!(
        out,
        "sluice_transaction_oldest_open_seconds {}",
        oldest.max(0) as f64 / 1000.0
    );
}

fn render_group_metrics(broker: &Broker, out: &mut String) {
    header(
        out,
        "sluice_consumer_group_lag",
        "gauge",
        "High watermark minus the committed offset, for groups coordinated here.",
    );
    let groups = &broker.groups;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let mut out = String::new();
        render_histogram(&mut out, &h, "x", "api=\"Fetch\",");
        for line in [
            "x_bucket{api=\"Fetch\",le=\"0.0001\"} 1\n",
            "x_bucket{api=\"Fetch\",le=\"0.005\"} 2\n",
            "x_bucket{api=\"Fetch\",le=\"10\"} 2\n",
            "x_bucket{api=\"Fetch\",le=\"+Inf\"} 3\n",
            "x_count{api=\"Fetch\"} 3\n",
        ] {
            assert!(out.contains(line), "{line} missing from {out}");
        }
    }
}

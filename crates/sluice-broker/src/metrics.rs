//! The broker-wide counters and histograms: updated on the request path with a few relaxed
//! atomic adds per request (none per record), read when scraped. Gauges (offsets, lag,
//! replication) are read from the parts' own state; the Prometheus text is rendered by the
//! HTTP side (sluice's prometheus.rs).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

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

    /// Each bucket's upper bound (seconds; the last is +Inf) with the observations at or
    /// below it (cumulative), and the sum of all observations in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64) {
        let mut cumulative = 0;
        let buckets = BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.counts)
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (bound, cumulative)
            })
            .collect();
        (buckets, self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9)
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

#[derive(Default)]
pub struct ApiStats {
    pub latency: Histogram,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

/// The broker-wide counters.
pub struct Metrics {
    apis: Vec<ApiStats>,
    connections: AtomicI64,
    connections_accepted: AtomicU64,
    fsync: Histogram,
    authentications: AtomicU64,
    authentication_failures: AtomicU64,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    apis: (0..=MAX_API_KEY).map(|_| ApiStats::default()).collect(),
    connections: AtomicI64::new(0),
    connections_accepted: AtomicU64::new(0),
    fsync: Histogram::default(),
    authentications: AtomicU64::new(0),
    authentication_failures: AtomicU64::new(0),
});

/// A SASL authentication ended: succeeded or not.
pub fn authentication_done(succeeded: bool) {
    let counter = if succeeded {
        &METRICS.authentications
    } else {
        &METRICS.authentication_failures
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

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

impl Metrics {
    /// The APIs that answered requests, by key.
    pub fn apis(&self) -> impl Iterator<Item = (i16, &ApiStats)> {
        self.apis
            .iter()
            .enumerate()
            .filter(|(_, a)| a.latency.count() > 0)
            .map(|(k, a)| (k as i16, a))
    }

    /// SASL authentications that succeeded, and that failed, since start.
    pub fn authentications(&self) -> (u64, u64) {
        (
            self.authentications.load(Ordering::Relaxed),
            self.authentication_failures.load(Ordering::Relaxed),
        )
    }

    /// Client connections open now, and accepted since start.
    pub fn connections(&self) -> (i64, u64) {
        (
            self.connections.load(Ordering::Relaxed),
            self.connections_accepted.load(Ordering::Relaxed),
        )
    }

    /// The flusher's fsync rounds.
    pub fn fsync(&self) -> &Histogram {
        &self.fsync
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_cumulatively() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let (buckets, sum) = h.snapshot();
        let at = |bound: f64| buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(0.0001), 1);
        assert_eq!(at(0.005), 2);
        assert_eq!(at(10.0), 2);
        assert_eq!(at(f64::INFINITY), 3);
        assert_eq!(h.count(), 3);
        assert!((sum - 20.00305).abs() < 1e-9, "{sum}");
    }
}

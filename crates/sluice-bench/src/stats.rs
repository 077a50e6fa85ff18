//! Counters and latency histograms shared by the bench's tasks, progress lines while it runs,
//! and the summary at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latencies are kept in microseconds, from 1 us to 1 hour, at 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub struct Stats {
    pub name: &'static str,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    created: Instant,
    /// When records were last added, in ns after `created`: the end of the measured run.
    last_added_ns: AtomicU64,
    /// Whole run, and since the last progress line.
    latency: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

impl Stats {
    pub fn new(name: &'static str) -> Stats {
        Stats {
            name,
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            created: Instant::now(),
            last_added_ns: AtomicU64::new(0),
            latency: Mutex::new((new_histogram(), new_histogram())),
        }
    }

    /// Counts records and bytes; the run ends with the last records counted (a queue's
    /// records are counted when acknowledged, apart from the bytes that brought them).
    pub fn add(&self, records: u64, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if records == 0 {
            return;
        }
        self.records.fetch_add(records, Ordering::Relaxed);
        let at = self.created.elapsed().as_nanos() as u64;
        self.last_added_ns.fetch_max(at, Ordering::Relaxed);
    }

    /// Records latencies (each a Duration) under one lock acquisition.
    pub fn record_latencies(&self, latencies: impl Iterator<Item = (Duration, u64)>) {
        let mut guard = self.latency.lock().unwrap();
        let (total, interval) = &mut *guard;
        for (latency, count) in latencies {
            let us = (latency.as_micros() as u64).clamp(1, 3_600_000_000);
            let _ = total.record_n(us, count);
            let _ = interval.record_n(us, count);
        }
    }

    fn take_interval_p99(&self) -> Option<f64> {
        let mut guard = self.latency.lock().unwrap();
        let interval = &mut guard.1;
        let p99 = (!interval.is_empty()).then(|| interval.value_at_quantile(0.99) as f64 / 1000.0);
        interval.reset();
        p99
    }

    /// The run from `start` to the last record added.
    pub fn summary(&self, start: Instant) -> Summary {
        let last = self.created + Duration::from_nanos(self.last_added_ns.load(Ordering::Relaxed));
        let elapsed = last.saturating_duration_since(start);
        let guard = self.latency.lock().unwrap();
        let h = &guard.0;
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Summary {
            name: self.name,
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            seconds: elapsed.as_secs_f64(),
            latency_ms: (!h.is_empty()).then(|| Percentiles {
                p50: ms(0.5),
                p90: ms(0.9),
                p99: ms(0.99),
                p999: ms(0.999),
                max: h.max() as f64 / 1000.0,
            }),
        }
    }
}

pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

pub struct Summary {
    pub name: &'static str,
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    pub seconds: f64,
    pub latency_ms: Option<Percentiles>,
}

impl Summary {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }

    /// Megabytes (10^6 bytes) of record values per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }

    pub fn text(&self) -> String {
        let mut s = format!(
            "{}: {} records, {} bytes in {:.2} s = {:.0} records/s, {:.1} MB/s, {} errors",
            self.name,
            self.records,
            self.bytes,
            self.seconds,
            self.records_per_sec(),
            self.mb_per_sec(),
            self.errors
        );
        if let Some(l) = &self.latency_ms {
            s.push_str(&format!(
                "\n{}: latency ms p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
                self.name, l.p50, l.p90, l.p99, l.p999, l.max
            ));
        }
        s
    }

    pub fn json(&self) -> Value {
        json!({
            "records": self.records,
            "bytes": self.bytes,
            "errors": self.errors,
            "seconds": self.seconds,
            "records_per_sec": self.records_per_sec(),
            "mb_per_sec": self.mb_per_sec(),
            "latency_ms": self.latency_ms.as_ref().map(|l| json!({
                "p50": l.p50, "p90": l.p90, "p99": l.p99, "p99_9": l.p999, "max": l.max,
            })),
        })
    }
}

/// Prints a progress line per interval for each of `stats` until `stop` fires.
pub async fn progress(
    stats: Vec<std::sync::Arc<Stats>>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let start = Instant::now();
    let mut last: Vec<(u64, u64)> = vec![(0, 0); stats.len()];
    let mut last_at = start;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        let secs = (now - last_at).as_secs_f64();
        let mut line = format!("[{:6.1} s]", (now - start).as_secs_f64());
        for (s, prev) in stats.iter().zip(last.iter_mut()) {
            let records = s.records.load(Ordering::Relaxed);
            let bytes = s.bytes.load(Ordering::Relaxed);
            line.push_str(&format!(
                " {} {:.0} rec/s {:.1} MB/s",
                s.name,
                (records - prev.0) as f64 / secs,
                (bytes - prev.1) as f64 / 1e6 / secs
            ));
            if let Some(p99) = s.take_interval_p99() {
                line.push_str(&format!(" p99 {p99:.2} ms"));
            }
            line.push_str(&format!(" ({records} total);"));
            *prev = (records, bytes);
        }
        eprintln!("{}", line.trim_end_matches(';'));
        last_at = now;
    }
}

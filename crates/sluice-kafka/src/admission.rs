//! Connection limits: `max.connections` broker-wide and `max.connections.per.ip` (with
//! per-address overrides), and new connections per second from one address
//! (`max.connection.creation.rate.per.ip`, the default of Kafka's `connection_creation_rate`
//! IP quota, KIP-612). A connection over a limit is closed as soon as it is accepted, as
//! Kafka closes connections over its per-IP quota. A broker's connection on the inter-broker
//! listener is always admitted (counted, never refused): clients that take every place
//! cannot cut brokers off from each other (Kafka's KIP-402).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use sluice_broker::BrokerConfig;

pub struct Admission {
    max: usize,
    max_per_ip: usize,
    overrides: HashMap<IpAddr, usize>,
    /// New connections per second one address may open (a token bucket of as many).
    creation_rate: f64,
    open: Mutex<Counts>,
}

/// Tokens left for new connections from one address, as of `at`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before the full ones (addresses that have not connected lately) are dropped.
const BUCKETS_BEFORE_PRUNING: usize = 4096;

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    buckets: HashMap<IpAddr, Bucket>,
}

/// A connection's place under the limits, given back when it is dropped.
pub struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    pub fn new(config: &BrokerConfig) -> Admission {
        Admission {
            max: config.max_connections(),
            max_per_ip: config.max_connections_per_ip(),
            overrides: config
                .max_connections_per_ip_overrides()
                .into_iter()
                .collect(),
            creation_rate: config.max_connection_creation_rate_per_ip(),
            open: Mutex::new(Counts::default()),
        }
    }

    /// A place for a new connection from `ip`, or the reason there is none. Over a limit,
    /// `from_broker` is asked (only then: it may resolve host names) whether the connection is
    /// another broker's on the inter-broker listener, which is admitted whatever the counts.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        from_broker: impl FnOnce() -> bool,
    ) -> Result<Admitted, String> {
        if let Err(why) = self.within_limits(ip) {
            if !from_broker() {
                return Err(why);
            }
        }
        let mut open = self.open.lock();
        *open.per_ip.entry(ip).or_insert(0) += 1;
        open.total += 1;
        Ok(Admitted {
            admission: self.clone(),
            ip,
        })
    }

    /// Ok if one more connection from `ip` fits the limits, or why not. Takes a token of
    /// `ip`'s creation rate when the counts allow it (a refused connection takes none).
    fn within_limits(&self, ip: IpAddr) -> Result<(), String> {
        let mut open = self.open.lock();
        if open.total >= self.max {
            return Err(format!("{} connections open (max.connections)", open.total));
        }
        let limit = self.overrides.get(&ip).copied().unwrap_or(self.max_per_ip);
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= limit {
            return Err(format!(
                "{from_ip} connections open from {ip} (max.connections.per.ip)"
            ));
        }
        self.take_creation_token(&mut open.buckets, ip)
    }

    fn take_creation_token(
        &self,
        buckets: &mut HashMap<IpAddr, Bucket>,
        ip: IpAddr,
    ) -> Result<(), String> {
        if !self.creation_rate.is_finite() {
            return Ok(());
        }
        let now = Instant::now();
        let capacity = self.creation_rate.max(1.0);
        let refill = |b: &Bucket| {
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.creation_rate).min(capacity)
        };
        if buckets.len() >= BUCKETS_BEFORE_PRUNING && !buckets.contains_key(&ip) {
            buckets.retain(|_, b| refill(b) < capacity);
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        bucket.tokens = refill(bucket);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return Err(format!(
                "{ip} opens connections faster than {} per second (max.connection.creation.rate.per.ip)",
                self.creation_rate
            ));
        }
        bucket.tokens -= 1.0;
        Ok(())
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock();
        open.total -= 1;
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

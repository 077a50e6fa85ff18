//! Connection limits: `max.connections` broker-wide and `max.connections.per.ip` (with
//! per-address overrides). A connection over a limit is closed as soon as it is accepted, as
//! Kafka closes connections over its per-IP quota. A broker's connection on the inter-broker
//! listener is always admitted (counted, never refused): clients that take every place
//! cannot cut brokers off from each other (Kafka's KIP-402).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_broker::BrokerConfig;

pub struct Admission {
    max: usize,
    max_per_ip: usize,
    overrides: HashMap<IpAddr, usize>,
    open: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
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

    /// Ok if one more connection from `ip` fits the limits, or why not.
    fn within_limits(&self, ip: IpAddr) -> Result<(), String> {
        let open = self.open.lock();
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

//! Who may send the requests only brokers send (AlterPartition, WriteTxnMarkers, a Fetch
//! with a replica id, ...). With no authentication configured, a connection counts as a
//! broker's when it comes from the address of a registered broker: an address of its
//! machine's interfaces (registered with it), or the host it advertises (resolved once per
//! host name and kept for a minute).

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sluice_cluster::MetadataImage;

/// How long a resolved host name is trusted before it is resolved again.
const RESOLVED_FOR: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct BrokerPeers {
    resolved: Mutex<HashMap<String, (Instant, Vec<IpAddr>)>>,
}

impl BrokerPeers {
    /// Whether `ip` is an address of a broker registered in `image`.
    pub fn contains(&self, image: &MetadataImage, ip: IpAddr) -> bool {
        self.contains_except(image, ip, None)
    }

    /// `contains`, leaving broker `except` out.
    pub fn contains_except(&self, image: &MetadataImage, ip: IpAddr, except: Option<i32>) -> bool {
        let ip = canonical(ip);
        image
            .brokers
            .values()
            .filter(|b| Some(b.node_id) != except)
            .any(|b| {
                b.addresses.iter().any(|a| canonical(*a) == ip)
                    || self.addresses(&b.host).contains(&ip)
            })
    }

    /// The addresses of `host`: itself if it is one, else what the resolver says (a blocking
    /// lookup, made only for broker-to-broker requests and at most once a minute per host).
    fn addresses(&self, host: &str) -> Vec<IpAddr> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return vec![canonical(ip)];
        }
        let mut resolved = self.resolved.lock();
        if let Some((at, ips)) = resolved.get(host) {
            if at.elapsed() < RESOLVED_FOR {
                return ips.clone();
            }
        }
        let ips: Vec<IpAddr> = (host, 0)
            .to_socket_addrs()
            .map(|addrs| addrs.map(|a| canonical(a.ip())).collect())
            .unwrap_or_default();
        resolved.insert(host.to_string(), (Instant::now(), ips.clone()));
        ips
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_cluster::BrokerInfo;

    fn image(hosts: &[&str]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (i, h) in hosts.iter().enumerate() {
            image.brokers.insert(
                i as i32,
                BrokerInfo {
                    node_id: i as i32,
                    host: h.to_string(),
                    port: 9092,
                    rack: None,
                    addresses: if i == 0 {
                        vec!["192.168.7.1".parse().unwrap()]
                    } else {
                        Vec::new()
                    },
                    endpoints: Vec::new(),
                    incarnation: 1,
                },
            );
        }
        image
    }

    #[test]
    fn only_registered_brokers_addresses_count() {
        let peers = BrokerPeers::default();
        let image = image(&["10.0.0.1", "localhost", "[::1]"]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(peers.contains(&image, ip("10.0.0.1")));
        assert!(
            peers.contains(&image, ip("192.168.7.1")),
            "an address of a broker's machine"
        );
        assert!(peers.contains(&image, ip("::ffff:10.0.0.1")));
        assert!(
            peers.contains(&image, ip("127.0.0.1")),
            "localhost resolves"
        );
        assert!(peers.contains(&image, ip("::1")));
        assert!(!peers.contains(&image, ip("10.0.0.2")));
        assert!(!peers.contains(&image, ip("127.0.0.5")));
    }
}

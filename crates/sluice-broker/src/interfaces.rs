//! The addresses of this machine's network interfaces, which a broker registers so that the
//! others recognise its connections whichever interface they leave from.

use std::net::IpAddr;

/// Most addresses a broker registers (a machine with more is unusual; the rest are dropped).
pub const MAX_ADDRESSES: usize = sluice_cluster::validate::MAX_ADDRESSES;

/// Every IPv4 and IPv6 address of an interface of this machine (loopback included), at most
/// `MAX_ADDRESSES`; empty if the system does not say.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list the system allocated, freed below
    // with freeifaddrs; every node is read only while the list is alive.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut node = list;
        while !node.is_null() {
            let addr = (*node).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let a = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::from(a.sin_addr.s_addr.to_ne_bytes()));
                    }
                    libc::AF_INET6 => {
                        let a = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(a.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            node = (*node).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out.sort();
    out.dedup();
    out.truncate(MAX_ADDRESSES);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_among_this_machines_addresses() {
        let addresses = super::local_addresses();
        assert!(
            addresses.contains(&"127.0.0.1".parse().unwrap()),
            "{addresses:?}"
        );
        assert!(!addresses.contains(&"127.0.0.5".parse().unwrap()));
    }
}

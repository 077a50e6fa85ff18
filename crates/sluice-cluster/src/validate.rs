//! Checks on metadata records read from the coordination service before they are applied.
//! Anyone who can write to etcd can write anything there: a topic named `../x` would make
//! brokers build paths outside their data directory, a partition placed on broker -7 or
//! with its leader outside its replicas would confuse every broker. A record that fails is
//! skipped (the image keeps what it had) and counted by the coordinator.

use std::collections::{BTreeMap, BTreeSet};

use crate::image::{BrokerInfo, TopicMeta};

/// Kafka's limit on a topic's partitions (and Sluice's, when creating one).
pub const MAX_PARTITIONS: usize = 100_000;
/// Most machine addresses a registration may carry.
pub const MAX_ADDRESSES: usize = 64;
/// More replicas than any placement makes (Kafka allows up to the number of brokers).
pub const MAX_REPLICAS: usize = 1_024;

/// Settings checks that belong to the broker (their names and ranges), for records read here.
#[derive(Debug, Clone, Copy)]
pub struct ConfigChecks {
    pub topic: fn(&BTreeMap<String, String>) -> Result<(), String>,
    pub group: fn(&BTreeMap<String, String>) -> Result<(), String>,
}

/// Kafka's rule: 1 to 249 characters of [a-zA-Z0-9._-], and not "." or "..".
pub fn topic_name(name: &str) -> Result<(), String> {
    let legal = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if name.is_empty() || name.len() > 249 || !legal || name == "." || name == ".." {
        return Err(format!(
            "{name:?}: a topic name is 1 to 249 characters of ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// A topic record stored under `key_name`: a valid name (the key's), 1 to `MAX_PARTITIONS`
/// partitions, each on 1 to `MAX_REPLICAS` distinct non-negative broker ids, led by one of
/// them (or -1), its ISR among them, epochs not negative, and settings the broker accepts.
pub fn topic(key_name: &str, meta: &TopicMeta, checks: &ConfigChecks) -> Result<(), String> {
    topic_name(key_name)?;
    if meta.name != key_name {
        return Err(format!(
            "the record names topic {:?} under key {key_name:?}",
            meta.name
        ));
    }
    if meta.partitions.is_empty() || meta.partitions.len() > MAX_PARTITIONS {
        return Err(format!(
            "{} partitions: a topic has 1 to {MAX_PARTITIONS}",
            meta.partitions.len()
        ));
    }
    for (index, p) in meta.partitions.iter().enumerate() {
        let bad = |why: String| Err(format!("partition {index}: {why}"));
        let replicas: BTreeSet<i32> = p.replicas.iter().copied().collect();
        if p.replicas.is_empty() || p.replicas.len() > MAX_REPLICAS {
            return bad(format!("{} replicas", p.replicas.len()));
        }
        if replicas.len() != p.replicas.len() || replicas.iter().any(|&r| r < 0) {
            return bad(format!(
                "replicas {:?} are not distinct broker ids",
                p.replicas
            ));
        }
        if p.leader != -1 && !replicas.contains(&p.leader) {
            return bad(format!("leader {} is not a replica", p.leader));
        }
        let isr: BTreeSet<i32> = p.isr.iter().copied().collect();
        if isr.len() != p.isr.len() || !isr.is_subset(&replicas) {
            return bad(format!("ISR {:?} is not among the replicas", p.isr));
        }
        if p.leader_epoch < 0 || p.partition_epoch < 0 {
            return bad("a negative epoch".into());
        }
    }
    (checks.topic)(&meta.configs)
}

/// A broker registration stored under `brokers/<key_id>`: its own node id, a port, and a
/// host name or address (no spaces, slashes or other characters a host cannot have).
pub fn broker(key_id: i32, b: &BrokerInfo) -> Result<(), String> {
    if b.node_id != key_id || key_id < 0 {
        return Err(format!(
            "the record names broker {} under key {key_id}",
            b.node_id
        ));
    }
    if b.port == 0 {
        return Err("port 0".into());
    }
    if b.addresses.len() > MAX_ADDRESSES {
        return Err(format!("{} addresses", b.addresses.len()));
    }
    if b.endpoints.len() > MAX_ADDRESSES {
        return Err(format!("{} endpoints", b.endpoints.len()));
    }
    for e in &b.endpoints {
        let named = !e.listener.is_empty()
            && e.listener.len() <= 64
            && e.listener
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
        if !named || e.port == 0 {
            return Err(format!("endpoint {:?}:{}", e.listener, e.port));
        }
        host(&e.host)?;
    }
    host(&b.host)
}

/// SCRAM credentials stored under `scram-users/<user>`: a user name, the mechanisms Kafka
/// names, Kafka's iteration range (4096 to 16384), base64 salt and keys of sane sizes.
pub fn scram_user(user: &str, credentials: &crate::image::ScramUser) -> Result<(), String> {
    if user.is_empty() || user.len() > 256 {
        return Err(format!("user name of {} bytes", user.len()));
    }
    for (mechanism, c) in credentials {
        if !matches!(mechanism.as_str(), "SCRAM-SHA-256" | "SCRAM-SHA-512") {
            return Err(format!("mechanism {mechanism:?}"));
        }
        if !(4096..=16384).contains(&c.iterations) {
            return Err(format!("{} iterations", c.iterations));
        }
        let sane = |s: &str| {
            !s.is_empty()
                && s.len() <= 256
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        };
        if !(sane(&c.salt) && sane(&c.stored_key) && sane(&c.server_key)) {
            return Err("salt or keys are not base64".into());
        }
    }
    Ok(())
}

/// A host name (letters, digits, '-', '.', '_') or an IP address (v6 may be bracketed).
pub fn host(host: &str) -> Result<(), String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name_like = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if name_like || bare.parse::<std::net::IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(format!("{host:?} is not a host name or an address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::PartitionMeta;

    fn accept_all(_: &BTreeMap<String, String>) -> Result<(), String> {
        Ok(())
    }

    fn no_min_isr_below_one(c: &BTreeMap<String, String>) -> Result<(), String> {
        match c.get("min.insync.replicas").map(|v| v.parse::<i32>()) {
            Some(Ok(n)) if n >= 1 => Ok(()),
            Some(_) => Err("min.insync.replicas".into()),
            None => Ok(()),
        }
    }

    const CHECKS: ConfigChecks = ConfigChecks {
        topic: no_min_isr_below_one,
        group: accept_all,
    };

    fn meta(name: &str, partitions: Vec<PartitionMeta>) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            id: uuid::Uuid::from_u128(7),
            configs: BTreeMap::new(),
            partitions,
            revision: 0,
        }
    }

    #[test]
    fn a_well_formed_topic_passes() {
        let t = meta("orders.v1_x-y", vec![PartitionMeta::new(vec![1, 2, 3])]);
        assert_eq!(topic("orders.v1_x-y", &t, &CHECKS), Ok(()));
        let mut leaderless = PartitionMeta::new(vec![4]);
        leaderless.leader = -1;
        leaderless.isr.clear();
        assert_eq!(topic("t", &meta("t", vec![leaderless]), &CHECKS), Ok(()));
    }

    #[test]
    fn names_that_could_leave_the_data_directory_are_refused() {
        for name in ["../x", "..", ".", "a/b", "", "x\0y", &"a".repeat(250)] {
            let t = meta(name, vec![PartitionMeta::new(vec![1])]);
            assert!(topic(name, &t, &CHECKS).is_err(), "{name:?}");
        }
        let t = meta("other", vec![PartitionMeta::new(vec![1])]);
        assert!(
            topic("t", &t, &CHECKS).is_err(),
            "a name that is not the key's"
        );
    }

    #[test]
    fn placements_no_broker_could_follow_are_refused() {
        let with = |f: fn(&mut PartitionMeta)| {
            let mut p = PartitionMeta::new(vec![1, 2]);
            f(&mut p);
            topic("t", &meta("t", vec![p]), &CHECKS)
        };
        assert!(with(|p| p.replicas.clear()).is_err());
        assert!(with(|p| p.replicas = vec![1, 1]).is_err());
        assert!(with(|p| p.replicas = vec![1, -7]).is_err());
        assert!(with(|p| p.leader = 9).is_err());
        assert!(with(|p| p.isr = vec![1, 9]).is_err());
        assert!(with(|p| p.leader_epoch = -2).is_err());
        assert!(topic("t", &meta("t", vec![]), &CHECKS).is_err());
        let mut t = meta("t", vec![PartitionMeta::new(vec![1])]);
        t.configs.insert("min.insync.replicas".into(), "0".into());
        assert!(topic("t", &t, &CHECKS).is_err(), "settings are checked");
    }

    #[test]
    fn registrations_name_their_own_broker_and_a_real_host() {
        let b = |node_id, host: &str, port| BrokerInfo {
            node_id,
            host: host.into(),
            port,
            rack: None,
            addresses: Vec::new(),
            endpoints: Vec::new(),
            incarnation: 0,
        };
        assert_eq!(broker(2, &b(2, "broker-2.example.com", 9092)), Ok(()));
        assert_eq!(broker(2, &b(2, "10.0.0.2", 9092)), Ok(()));
        assert_eq!(broker(2, &b(2, "[::1]", 9092)), Ok(()));
        assert!(broker(2, &b(3, "h", 9092)).is_err());
        assert!(broker(2, &b(2, "h", 0)).is_err());
        assert!(broker(2, &b(2, "evil.com/x", 1)).is_err());
        assert!(broker(2, &b(2, "", 1)).is_err());
    }
}

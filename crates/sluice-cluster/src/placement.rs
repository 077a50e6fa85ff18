//! Where new partitions' replicas go: spread evenly over the live brokers (leaders first),
//! one replica per rack where racks allow, as Kafka's rack-aware assignment.

use std::collections::BTreeMap;

use crate::image::{BrokerInfo, MetadataImage};

/// Replica lists for partitions `first..first + count` of a topic (`first` > 0 when adding
/// partitions), each with `replication_factor` brokers, the leader first. Errors name why not.
pub fn place(
    image: &MetadataImage,
    first: i32,
    count: i32,
    replication_factor: usize,
) -> Result<Vec<Vec<i32>>, String> {
    let brokers = rack_alternated(image.brokers.values());
    if replication_factor == 0 {
        return Err("replication factor must be at least 1".into());
    }
    if replication_factor > brokers.len() {
        return Err(format!(
            "replication factor {replication_factor} is larger than the {} available broker{}",
            brokers.len(),
            if brokers.len() == 1 { "" } else { "s" }
        ));
    }
    // Start on the broker that leads the fewest partitions, so topic after topic the
    // leaders stay even.
    let (leaders, _) = image.leader_counts();
    let start = brokers
        .iter()
        .enumerate()
        .min_by_key(|(i, id)| (leaders.get(id).copied().unwrap_or(0), *i))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let n = brokers.len();
    let racks = image
        .brokers
        .values()
        .map(|b| b.rack.as_deref())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let rack = |id: i32| image.brokers.get(&id).and_then(|b| b.rack.as_deref());
    Ok((0..count)
        .map(|p| {
            let lead = (start + (first + p) as usize) % n;
            // Followers start at a shift that varies with the partition, so a broker's
            // followers are not all on its neighbour.
            let shift = 1 + ((first + p) as usize / n) % (n - 1).max(1);
            let mut replicas = vec![brokers[lead]];
            let mut at = lead + shift;
            while replicas.len() < replication_factor {
                let candidate = brokers[at % n];
                at += 1;
                if replicas.contains(&candidate) {
                    continue;
                }
                // A rack that already holds a replica only once every rack holds one.
                let used: Vec<_> = replicas.iter().map(|&r| rack(r)).collect();
                let racks_left = used.len() < racks;
                if racks_left && used.contains(&rack(candidate)) && at < lead + shift + 2 * n {
                    continue;
                }
                replicas.push(candidate);
            }
            replicas
        })
        .collect())
}

/// Broker ids ordered so that consecutive ones are on different racks where possible:
/// rack by rack, taking one broker from each in turn (brokers without a rack form one).
fn rack_alternated<'a>(brokers: impl Iterator<Item = &'a BrokerInfo>) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        by_rack
            .entry(b.rack.as_deref())
            .or_default()
            .push(b.node_id);
    }
    let mut racks: Vec<std::collections::VecDeque<i32>> =
        by_rack.into_values().map(Into::into).collect();
    let mut out = Vec::new();
    while racks.iter().any(|r| !r.is_empty()) {
        for rack in racks.iter_mut() {
            if let Some(id) = rack.pop_front() {
                out.push(id);
            }
        }
    }
    out
}

/// Checks a client's explicit assignment (CreateTopics with assignments): every partition
/// named once from 0, the same number of distinct, registered brokers for each.
pub fn check_assignment(image: &MetadataImage, assignment: &[Vec<i32>]) -> Result<(), String> {
    let Some(first) = assignment.first() else {
        return Err("an assignment names at least one partition".into());
    };
    for (p, replicas) in assignment.iter().enumerate() {
        if replicas.is_empty() {
            return Err(format!("partition {p} has no replicas"));
        }
        if replicas.len() != first.len() {
            return Err(format!(
                "partition {p} has {} replicas where partition 0 has {}",
                replicas.len(),
                first.len()
            ));
        }
        for (i, id) in replicas.iter().enumerate() {
            if replicas[..i].contains(id) {
                return Err(format!("partition {p} names broker {id} twice"));
            }
            if !image.brokers.contains_key(id) {
                return Err(format!("broker {id} is not a live broker"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(racks: &[Option<&str>]) -> MetadataImage {
        MetadataImage {
            brokers: racks
                .iter()
                .enumerate()
                .map(|(i, rack)| {
                    let id = i as i32 + 1;
                    let b = BrokerInfo {
                        node_id: id,
                        host: "h".into(),
                        port: 1,
                        rack: rack.map(String::from),
                        addresses: Vec::new(),
                        endpoints: Vec::new(),
                        incarnation: 0,
                    };
                    (id, b)
                })
                .collect(),
            ..Default::default()
        }
    }

    fn leaders_per_broker(placed: &[Vec<i32>]) -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        for r in placed {
            *counts.entry(r[0]).or_default() += 1;
        }
        counts
    }

    #[test]
    fn twelve_partitions_on_three_brokers_are_four_each() {
        let placed = place(&image(&[None, None, None]), 0, 12, 1).unwrap();
        assert_eq!(leaders_per_broker(&placed), [(1, 4), (2, 4), (3, 4)].into());
    }

    #[test]
    fn replicas_are_distinct_and_spread_over_racks() {
        let img = image(&[Some("a"), Some("a"), Some("b"), Some("b")]);
        let placed = place(&img, 0, 8, 2).unwrap();
        for replicas in &placed {
            assert_ne!(replicas[0], replicas[1]);
            let rack = |id: i32| img.brokers[&id].rack.clone();
            assert_ne!(rack(replicas[0]), rack(replicas[1]), "{replicas:?}");
        }
        assert_eq!(leaders_per_broker(&placed).values().max(), Some(&2));
    }

    #[test]
    fn too_few_brokers_and_bad_assignments_are_refused() {
        let img = image(&[None, None]);
        assert!(place(&img, 0, 1, 3)
            .unwrap_err()
            .contains("2 available brokers"));
        assert!(check_assignment(&img, &[vec![1, 1]]).is_err());
        assert!(check_assignment(&img, &[vec![1], vec![2, 1]]).is_err());
        assert!(check_assignment(&img, &[vec![7]]).is_err());
        assert!(check_assignment(&img, &[vec![2], vec![1]]).is_ok());
    }
}

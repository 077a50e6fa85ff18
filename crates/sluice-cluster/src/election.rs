//! Partition leadership, as the controller decides it from the live brokers: a leader whose
//! broker is gone is replaced by a live in-sync replica (the first in replica order), gone
//! brokers leave the ISR, a partition without a leader gets one back when an in-sync replica
//! returns, and the preferred replica (the first) is given back its leadership when it is in
//! sync. Every leader change bumps the leader epoch, every change the partition epoch.

use crate::image::{MetadataImage, PartitionMeta};

/// What an election may do beyond the safe moves.
#[derive(Debug, Clone, Copy, Default)]
pub struct ElectionRules {
    /// With no live in-sync replica, a live out-of-sync one may lead (and records the ISR
    /// had that it lacks are lost): `unclean.leader.election.enable`.
    pub unclean: bool,
    /// Move leadership back to the preferred replica where it is live and in sync.
    pub preferred: bool,
}

/// The partition as it should be now, if it must change.
pub fn elect(
    image: &MetadataImage,
    p: &PartitionMeta,
    rules: ElectionRules,
) -> Option<PartitionMeta> {
    // A leader that restarted since it was elected (a new registration) is not the process
    // that led: like a dead one it leaves the ISR (it rejoins once it has caught up as a
    // follower) and another in-sync replica leads, as Kafka does after an unclean shutdown;
    // it leads again at once only if it was the last in-sync replica.
    let restarted = p.leader >= 0
        && image.brokers.get(&p.leader).is_some_and(|b| {
            p.leader_incarnation != 0 && b.incarnation != 0 && b.incarnation != p.leader_incarnation
        });
    let alive = |r: &i32| image.brokers.contains_key(r) && !(restarted && *r == p.leader);
    let mut live_isr: Vec<i32> = p.isr.iter().copied().filter(alive).collect();
    if restarted && live_isr.is_empty() {
        live_isr.push(p.leader);
    }
    let leader_alive = !restarted && image.brokers.contains_key(&p.leader);
    let mut next = p.clone();
    if leader_alive {
        // Gone followers leave the ISR, so acks=all stops waiting for them at once.
        if live_isr.len() != p.isr.len() {
            next.isr = live_isr.clone();
        }
        if rules.preferred {
            let preferred = p.replicas.first().copied();
            if let Some(preferred) = preferred.filter(|r| *r != p.leader && live_isr.contains(r)) {
                next.leader = preferred;
                next.leader_epoch += 1;
            }
        }
    } else {
        // In replica order, so leadership goes where placement meant it to be.
        let in_sync = p.replicas.iter().copied().find(|r| live_isr.contains(r));
        match in_sync {
            Some(leader) => {
                next.leader = leader;
                next.isr = live_isr;
            }
            None => {
                let any_live = p.replicas.iter().copied().find(alive);
                match any_live.filter(|_| rules.unclean) {
                    Some(leader) => {
                        next.leader = leader;
                        next.isr = vec![leader];
                    }
                    // Offline: the ISR is kept, so one of its members leads when it returns.
                    None if p.leader == -1 => return None,
                    None => next.leader = -1,
                }
            }
        }
        next.leader_epoch += 1;
    }
    if next == *p {
        return None;
    }
    next.leader_incarnation = image.brokers.get(&next.leader).map_or(0, |b| b.incarnation);
    next.partition_epoch += 1;
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BrokerInfo;

    fn image(live: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for &id in live {
            image.brokers.insert(
                id,
                BrokerInfo {
                    node_id: id,
                    host: "h".into(),
                    port: 1,
                    rack: None,
                    addresses: Vec::new(),
                    endpoints: Vec::new(),
                    incarnation: 0,
                },
            );
        }
        image
    }

    fn partition(replicas: &[i32], leader: i32, isr: &[i32]) -> PartitionMeta {
        PartitionMeta {
            replicas: replicas.to_vec(),
            leader,
            leader_epoch: 4,
            isr: isr.to_vec(),
            partition_epoch: 9,
            leader_incarnation: 0,
        }
    }

    const SAFE: ElectionRules = ElectionRules {
        unclean: false,
        preferred: false,
    };

    #[test]
    fn a_gone_leader_is_replaced_by_the_first_live_in_sync_replica() {
        let p = partition(&[1, 2, 3], 1, &[1, 2, 3]);
        let next = elect(&image(&[2, 3]), &p, SAFE).unwrap();
        assert_eq!(
            (next.leader, next.leader_epoch, next.partition_epoch),
            (2, 5, 10)
        );
        assert_eq!(next.isr, vec![2, 3]);
        // An out-of-sync replica is passed over.
        let p = partition(&[1, 2, 3], 1, &[1, 3]);
        assert_eq!(elect(&image(&[2, 3]), &p, SAFE).unwrap().leader, 3);
    }

    #[test]
    fn a_leader_that_restarted_is_elected_again_in_a_new_epoch() {
        let mut p = partition(&[1, 2, 3], 1, &[1, 2, 3]);
        p.leader_incarnation = 10;
        let mut live = image(&[1, 2, 3]);
        for b in live.brokers.values_mut() {
            b.incarnation = 10;
        }
        assert_eq!(elect(&live, &p, SAFE), None, "the same registration");
        live.brokers.get_mut(&1).unwrap().incarnation = 20;
        // Another in-sync replica leads; the restarted broker leaves the ISR.
        let next = elect(&live, &p, SAFE).unwrap();
        assert_eq!((next.leader, next.leader_epoch), (2, 5));
        assert_eq!(next.isr, vec![2, 3]);
        assert_eq!(elect(&live, &next, SAFE), None);
        // The last in-sync replica leads again, in a new epoch.
        let alone = PartitionMeta {
            isr: vec![1],
            leader_incarnation: 10,
            ..partition(&[1, 2, 3], 1, &[1])
        };
        let next = elect(&live, &alone, SAFE).unwrap();
        assert_eq!(
            (next.leader, next.leader_epoch, next.leader_incarnation),
            (1, 5, 20)
        );
    }

    #[test]
    fn nothing_changes_while_leader_and_isr_are_live() {
        let p = partition(&[1, 2, 3], 2, &[1, 2, 3]);
        assert_eq!(elect(&image(&[1, 2, 3]), &p, SAFE), None);
    }

    #[test]
    fn a_gone_follower_leaves_the_isr_without_a_new_leader_epoch() {
        let p = partition(&[1, 2, 3], 1, &[1, 2, 3]);
        let next = elect(&image(&[1, 2]), &p, SAFE).unwrap();
        assert_eq!(
            (next.leader, next.leader_epoch, next.isr.clone()),
            (1, 4, vec![1, 2])
        );
    }

    #[test]
    fn without_a_live_in_sync_replica_the_partition_goes_offline_unless_unclean() {
        let p = partition(&[1, 2], 1, &[1]);
        let offline = elect(&image(&[2]), &p, SAFE).unwrap();
        assert_eq!((offline.leader, offline.isr.clone()), (-1, vec![1]));
        // Still offline: no further change.
        assert_eq!(elect(&image(&[2]), &offline, SAFE), None);
        // The last in-sync replica returns and leads again.
        let back = elect(&image(&[1, 2]), &offline, SAFE).unwrap();
        assert_eq!((back.leader, back.leader_epoch), (1, 6));
        // Unclean: the out-of-sync replica leads, alone in the ISR.
        let rules = ElectionRules {
            unclean: true,
            ..SAFE
        };
        let unclean = elect(&image(&[2]), &p, rules).unwrap();
        assert_eq!((unclean.leader, unclean.isr), (2, vec![2]));
    }

    #[test]
    fn the_preferred_replica_gets_its_leadership_back_once_in_sync() {
        let rules = ElectionRules {
            preferred: true,
            ..SAFE
        };
        let p = partition(&[1, 2, 3], 2, &[2, 3]);
        assert_eq!(
            elect(&image(&[1, 2, 3]), &p, rules),
            None,
            "not in sync yet"
        );
        let p = partition(&[1, 2, 3], 2, &[1, 2, 3]);
        let next = elect(&image(&[1, 2, 3]), &p, rules).unwrap();
        assert_eq!((next.leader, next.leader_epoch), (1, 5));
    }
}

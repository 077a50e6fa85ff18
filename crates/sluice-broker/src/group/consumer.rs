//! The new consumer group protocol (KIP-848): the coordinator computes assignments with a
//! server-side assignor and hands them to members through their heartbeats, revoking
//! partitions from one member before giving them to another.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// (topic name, partition)
pub type TopicPartition = (String, i32);
pub type Assignment = BTreeSet<TopicPartition>;

pub const ASSIGNORS: &[&str] = &["uniform", "range"];

pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub rebalance_timeout: Duration,
    pub subscribed: BTreeSet<String>,
    /// What the member has been told it owns.
    pub assigned: Assignment,
    /// Partitions the member was told to release and has not yet confirmed releasing.
    pub revoking: Assignment,
    pub revoke_deadline: Option<Instant>,
    pub session_deadline: Instant,
    /// The assignment last sent, so unchanged assignments are not sent again.
    pub last_sent: Option<Assignment>,
}

#[derive(Default)]
pub struct ConsumerGroup {
    /// Bumped whenever membership, subscriptions or subscribed topics change.
    pub epoch: i32,
    pub assignor: String,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: HashMap<String, Assignment>,
    /// Partition counts of the subscribed topics the target was computed for.
    pub topic_partitions: BTreeMap<String, i32>,
}

impl ConsumerGroup {
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.members.values().all(|m| {
            m.epoch == self.epoch
                && m.revoking.is_empty()
                && self.target.get(&m.member_id) == Some(&m.assigned)
        }) {
            "Stable"
        } else {
            "Reconciling"
        }
    }

    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    /// Recomputes the target assignment for a new group epoch.
    pub fn recompute(&mut self, topic_partitions: BTreeMap<String, i32>) {
        self.epoch += 1;
        let subs: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.subscribed.clone()))
            .collect();
        self.target = if self.assignor == "range" {
            range(&subs, &topic_partitions)
        } else {
            uniform(&subs, &topic_partitions, &self.target)
        };
        self.topic_partitions = topic_partitions;
    }

    /// Moves one member toward its target: first it must release what it should no longer
    /// have; then it gets what is free of other members. Its epoch follows the group's once
    /// it has nothing left to release.
    pub fn reconcile(&mut self, member_id: &str, now: Instant) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_by_others: Assignment = self
            .members
            .values()
            .filter(|m| m.member_id != member_id)
            .flat_map(|m| m.assigned.iter().chain(m.revoking.iter()).cloned())
            .collect();
        let epoch = self.epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        if !m.revoking.is_empty() {
            return;
        }
        let to_revoke: Assignment = m.assigned.difference(&target).cloned().collect();
        if !to_revoke.is_empty() {
            m.assigned.retain(|tp| !to_revoke.contains(tp));
            m.revoking = to_revoke;
            m.revoke_deadline = Some(now + m.rebalance_timeout);
            return;
        }
        let free: Vec<TopicPartition> = target
            .difference(&m.assigned)
            .filter(|tp| !held_by_others.contains(*tp))
            .cloned()
            .collect();
        m.assigned.extend(free);
        if m.epoch != epoch {
            m.previous_epoch = m.epoch;
            m.epoch = epoch;
        }
    }
}

fn all_partitions(topics: &BTreeMap<String, i32>, topic: &str) -> Vec<TopicPartition> {
    (0..topics.get(topic).copied().unwrap_or(0))
        .map(|p| (topic.to_string(), p))
        .collect()
}

/// Per topic, contiguous ranges of partitions over the members subscribed to it, in member
/// id order (the first members get one more when it does not divide evenly).
pub fn range(
    subs: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, i32>,
) -> HashMap<String, Assignment> {
    let mut out: HashMap<String, Assignment> = subs
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    for topic in topics.keys() {
        let members: Vec<&String> = subs
            .iter()
            .filter(|(_, s)| s.contains(topic))
            .map(|(id, _)| id)
            .collect();
        if members.is_empty() {
            continue;
        }
        let parts = all_partitions(topics, topic);
        let (each, extra) = (parts.len() / members.len(), parts.len() % members.len());
        let mut start = 0;
        for (i, id) in members.iter().enumerate() {
            let n = each + usize::from(i < extra);
            out.get_mut(*id)
                .expect("member")
                .extend(parts[start..start + n].iter().cloned());
            start += n;
        }
    }
    out
}

/// Balanced and sticky: members keep what they had while it stays fair, free partitions go
/// to the eligible member with the fewest, then single moves even out any imbalance.
pub fn uniform(
    subs: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, i32>,
    previous: &HashMap<String, Assignment>,
) -> HashMap<String, Assignment> {
    let eligible = |id: &str, tp: &TopicPartition| subs.get(id).is_some_and(|s| s.contains(&tp.0));
    let all: Vec<TopicPartition> = topics
        .keys()
        .filter(|t| subs.values().any(|s| s.contains(*t)))
        .flat_map(|t| all_partitions(topics, t))
        .collect();
    let cap = if subs.is_empty() {
        0
    } else {
        all.len().div_ceil(subs.len())
    };
    let mut out: HashMap<String, Assignment> = HashMap::new();
    let mut taken = Assignment::new();
    for id in subs.keys() {
        let mut keep: Vec<TopicPartition> = previous
            .get(id)
            .map(|a| {
                a.iter()
                    .filter(|tp| eligible(id, tp) && tp.1 < topics.get(&tp.0).copied().unwrap_or(0))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        keep.retain(|tp| !taken.contains(tp));
        keep.truncate(cap);
        taken.extend(keep.iter().cloned());
        out.insert(id.clone(), keep.into_iter().collect());
    }
    for tp in all.iter().filter(|tp| !taken.contains(*tp)) {
        let best = subs
            .keys()
            .filter(|id| eligible(id, tp))
            .min_by_key(|id| (out[*id].len(), (*id).clone()));
        if let Some(id) = best {
            out.get_mut(id).expect("member").insert(tp.clone());
        }
    }
    // Even out: move one partition at a time from the fullest to an eligible emptier member.
    for _ in 0..all.len() {
        let mut moved = false;
        let ids: Vec<&String> = subs.keys().collect();
        'outer: for from in &ids {
            for to in &ids {
                if out[*from].len() > out[*to].len() + 1 {
                    if let Some(tp) = out[*from].iter().rev().find(|tp| eligible(to, tp)).cloned() {
                        out.get_mut(*from).expect("member").remove(&tp);
                        out.get_mut(*to).expect("member").insert(tp);
                        moved = true;
                        break 'outer;
                    }
                }
            }
        }
        if !moved {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        members
            .iter()
            .map(|(id, ts)| (id.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn topics(t: &[(&str, i32)]) -> BTreeMap<String, i32> {
        t.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn range_splits_each_topic_in_member_order() {
        let a = range(&subs(&[("a", &["t"]), ("b", &["t"])]), &topics(&[("t", 5)]));
        assert_eq!(
            a["a"].iter().map(|tp| tp.1).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(a["b"].iter().map(|tp| tp.1).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn uniform_is_balanced_and_sticky() {
        let t = topics(&[("t", 6)]);
        let one = uniform(&subs(&[("a", &["t"])]), &t, &HashMap::new());
        assert_eq!(one["a"].len(), 6);
        let two = uniform(&subs(&[("a", &["t"]), ("b", &["t"])]), &t, &one);
        assert_eq!((two["a"].len(), two["b"].len()), (3, 3));
        assert!(two["a"].is_subset(&one["a"]), "a keeps what it can");
        let three = uniform(
            &subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]),
            &t,
            &two,
        );
        assert_eq!(
            (three["a"].len(), three["b"].len(), three["c"].len()),
            (2, 2, 2)
        );
        assert!(three["b"].is_subset(&two["b"]));
        let all: Assignment = three.values().flatten().cloned().collect();
        assert_eq!(all.len(), 6, "every partition exactly once");
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let t = topics(&[("x", 2), ("y", 4)]);
        let a = uniform(
            &subs(&[("a", &["x"]), ("b", &["x", "y"])]),
            &t,
            &HashMap::new(),
        );
        assert!(a["a"].iter().all(|tp| tp.0 == "x"));
        assert_eq!(a["a"].len() + a["b"].len(), 6);
    }

    #[test]
    fn a_member_releases_before_another_takes() {
        let now = Instant::now();
        let mut g = ConsumerGroup {
            assignor: "uniform".into(),
            ..Default::default()
        };
        let member = |id: &str| ConsumerMember {
            member_id: id.into(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            epoch: 0,
            previous_epoch: 0,
            rebalance_timeout: Duration::from_secs(5),
            subscribed: ["t".to_string()].into(),
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            revoke_deadline: None,
            session_deadline: now,
            last_sent: None,
        };
        g.members.insert("a".into(), member("a"));
        g.recompute(topics(&[("t", 4)]));
        g.reconcile("a", now);
        assert_eq!(
            (g.members["a"].assigned.len(), g.members["a"].epoch),
            (4, 1)
        );
        g.members.insert("b".into(), member("b"));
        g.recompute(topics(&[("t", 4)]));
        g.reconcile("b", now);
        assert!(g.members["b"].assigned.is_empty(), "nothing is free yet");
        assert_eq!(g.members["b"].epoch, 2);
        g.reconcile("a", now);
        assert_eq!(
            (g.members["a"].assigned.len(), g.members["a"].revoking.len()),
            (2, 2)
        );
        assert_eq!(g.members["a"].epoch, 1, "epoch waits for the release");
        g.members.get_mut("a").unwrap().revoking.clear(); // the member confirmed
        g.reconcile("a", now);
        assert_eq!(g.members["a"].epoch, 2);
        g.reconcile("b", now);
        assert_eq!(g.members["b"].assigned.len(), 2);
        assert_eq!(g.state_name(), "Stable");
    }
}

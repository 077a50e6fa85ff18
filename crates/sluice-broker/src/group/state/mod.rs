//! A classic consumer group's state machine: members, generations, joins and syncs.
//! Pure in-memory logic; persistence and timers live in `coordinator.rs`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::records::{CommittedOffset, StoredGroup, StoredMember};
use crate::error::BrokerError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// Kafka's names, as ListGroups and DescribeGroups report them.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// What a JoinGroup is answered with.
#[derive(Debug, Clone)]
pub struct JoinResult {
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// A static leader rejoining a stable group keeps the assignment and must not redo it.
    pub skip_assignment: bool,
}

pub type JoinOutcome = Result<JoinResult, (BrokerError, String)>;

/// What a SyncGroup is answered with: protocol type and name, and the member's assignment.
pub type SyncOutcome = Result<(Option<String>, Option<String>, Bytes), BrokerError>;

pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    pub sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// The member is removed if no heartbeat, join or sync arrives before this.
    pub session_deadline: Instant,
    /// Order of joining, to pick a leader deterministically.
    pub joined_seq: u64,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub fn touch(&mut self, now: Instant) {
        self.session_deadline = now + self.session_timeout;
    }

    fn same_protocols(&self, other: &[(String, Bytes)]) -> bool {
        self.protocols == other
    }
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until their deadline.
    pub pending_members: HashMap<String, Instant>,
    /// group.instance.id → member id of static members.
    pub static_members: HashMap<String, String>,
    pub offsets: HashMap<(String, i32), CommittedOffset>,
    /// Offsets committed in transactions not yet ended, by producer id: they replace
    /// `offsets` on commit and are dropped on abort.
    pub pending_txn_offsets: HashMap<i64, HashMap<(String, i32), CommittedOffset>>,
    /// When the current rebalance phase gives up on members that have not joined or synced.
    pub rebalance_deadline: Option<Instant>,
    /// The first join into an empty group waits until then for more members
    /// (`group.initial.rebalance.delay.ms`), so consumers starting together share one
    /// rebalance.
    initial_join_until: Option<Instant>,
    /// Wall-clock ms of the last state change (offset expiry counts from becoming Empty).
    pub state_since_ms: i64,
    next_seq: u64,
    /// Set for groups using the KIP-848 protocol; their membership lives there.
    pub consumer: Option<super::consumer::ConsumerGroup>,
}

impl Group {
    pub fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            offsets: HashMap::new(),
            pending_txn_offsets: HashMap::new(),
            rebalance_deadline: None,
            initial_join_until: None,
            state_since_ms: crate::now_ms(),
            next_seq: 0,
            consumer: None,
        }
    }

    /// `producer_id`'s transaction ended: its offsets count (commit) or are dropped.
    pub fn complete_txn_offsets(&mut self, producer_id: i64, commit: bool) {
        if let Some(offsets) = self.pending_txn_offsets.remove(&producer_id) {
            if commit {
                self.offsets.extend(offsets);
            }
        }
    }

    /// Some transaction not yet ended has committed an offset of this partition.
    pub fn has_unstable_offset(&self, topic: &str, partition: i32) -> bool {
        self.pending_txn_offsets
            .values()
            .any(|o| o.contains_key(&(topic.to_string(), partition)))
    }

    /// No classic or KIP-848 members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
    }

    /// The state name ListGroups and DescribeGroups report.
    pub fn state_name(&self) -> &'static str {
        match &self.consumer {
            Some(c) => c.state_name(),
            None => self.state.name(),
        }
    }

    fn set_state(&mut self, state: GroupState) {
        if self.state != state {
            self.state = state;
            self.state_since_ms = crate::now_ms();
        }
    }

    /// Whether `protocols` share at least one protocol with every current member.
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    pub fn add_member(&mut self, mut member: Member, now: Instant) {
        member.joined_seq = self.next_seq;
        self.next_seq += 1;
        member.touch(now);
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
    }

    /// Checks a request's member id and instance id against the group.
    pub fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), BrokerError> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => return Err(BrokerError::FencedInstanceId),
                None if self.members.contains_key(member_id) => {
                    return Err(BrokerError::FencedInstanceId)
                }
                _ => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(BrokerError::UnknownMemberId);
        }
        Ok(())
    }

    /// Starts a rebalance: members must rejoin within the longest rebalance timeout.
    pub fn prepare_rebalance(&mut self, now: Instant) {
        self.prepare_rebalance_with_delay(now, Duration::ZERO);
    }

    /// Starts a join phase. When the group was empty, the phase waits `initial_delay` for
    /// more members, and each member joining meanwhile extends the wait by `initial_delay`,
    /// never past the rebalance timeout (Kafka's InitialDelayedJoin).
    pub fn prepare_rebalance_with_delay(&mut self, now: Instant, initial_delay: Duration) {
        if self.state == GroupState::PreparingRebalance {
            if let (Some(until), Some(deadline)) =
                (self.initial_join_until, self.rebalance_deadline)
            {
                self.initial_join_until = Some((now + initial_delay).min(deadline).max(until));
            }
            return;
        }
        let was_empty = self.state == GroupState::Empty;
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(Err(BrokerError::RebalanceInProgress));
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.rebalance_deadline = Some(now + timeout);
        if was_empty && !initial_delay.is_zero() {
            self.initial_join_until = Some((now + initial_delay).min(now + timeout));
        }
        self.set_state(GroupState::PreparingRebalance);
    }

    /// Completes the join phase once every member has rejoined and no handed-out member id
    /// is still expected. Returns true if the group changed in a way worth persisting.
    pub fn maybe_complete_join(&mut self, now: Instant) -> bool {
        if self.initial_join_until.is_some_and(|until| now < until) {
            return false;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some())
            && self.pending_members.is_empty();
        if self.state == GroupState::PreparingRebalance && all_joined {
            self.complete_join(now);
            return true;
        }
        false
    }

    /// Ends the join phase: drops members that did not rejoin, starts a new generation and
    /// answers every waiting JoinGroup (the leader gets the member list).
    pub fn complete_join(&mut self, now: Instant) {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.join_waiter.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.pending_members.clear();
        self.initial_join_until = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.rebalance_deadline = None;
            self.set_state(GroupState::Empty);
            return;
        }
        self.protocol = Some(self.select_protocol());
        let leader_alive = self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l));
        if !leader_alive {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.member_id.clone());
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let everyone: Vec<(String, Option<String>, Bytes)> = self
            .members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.group_instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect();
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.rebalance_deadline = Some(now + timeout);
        self.set_state(GroupState::CompletingRebalance);
        let (generation, protocol_type) = (self.generation, self.protocol_type.clone());
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.touch(now);
            if let Some(w) = m.join_waiter.take() {
                let is_leader = m.member_id == leader;
                let _ = w.send(Ok(JoinResult {
                    generation,
                    protocol_type: protocol_type.clone(),
                    protocol_name: Some(protocol.clone()),
                    leader: leader.clone(),
                    member_id: m.member_id.clone(),
                    members: if is_leader {
                        everyone.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                }));
            }
        }
    }

    /// The protocol every member supports that most members list first among those.
    fn select_protocol(&self) -> String {
        let first: Vec<&String> = self
            .members
            .values()
            .next()
            .map(|m| m.protocols.iter().map(|(n, _)| n).collect())
            .unwrap_or_default();
        let common: Vec<&String> = first
            .into_iter()
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: HashMap<&String, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(p, _)| common.contains(&p)) {
                *votes.entry(name).or_default() += 1;
            }
        }
        // Most votes wins; ties go to the earliest in the first member's preference order.
        let mut best: Option<(&String, usize)> = None;
        for name in &common {
            let v = votes.get(*name).copied().unwrap_or(0);
            if best.is_none_or(|(_, bv)| v > bv) {
                best = Some((name, v));
            }
        }
        best.map(|(n, _)| n.clone()).unwrap_or_default()
    }

    /// The leader's SyncGroup: install assignments, become Stable, answer every waiting sync.
    pub fn complete_sync(&mut self, assignments: HashMap<String, Bytes>) {
        for (id, m) in self.members.iter_mut() {
            m.assignment = assignments.get(id).cloned().unwrap_or_default();
        }
        self.rebalance_deadline = None;
        self.set_state(GroupState::Stable);
        let (pt, pn) = (self.protocol_type.clone(), self.protocol.clone());
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(Ok((pt.clone(), pn.clone(), m.assignment.clone())));
            }
        }
    }

    /// Removes a member, answering whatever it was waiting for.
    pub fn remove_member(&mut self, member_id: &str) {
        if let Some(m) = self.members.remove(member_id) {
            if let Some(instance) = &m.group_instance_id {
                if self
                    .static_members
                    .get(instance)
                    .is_some_and(|id| id == member_id)
                {
                    self.static_members.remove(instance);
                }
            }
            if let Some(w) = m.join_waiter {
                let _ = w.send(Err((BrokerError::UnknownMemberId, String::new())));
            }
            if let Some(w) = m.sync_waiter {
                let _ = w.send(Err(BrokerError::UnknownMemberId));
            }
        }
    }

    /// After members left or expired: rebalance the rest (or become Empty).
    pub fn on_members_removed(&mut self, now: Instant) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now);
                self.maybe_complete_join(now);
            }
            GroupState::PreparingRebalance => {
                self.maybe_complete_join(now);
            }
            GroupState::Empty => {}
        }
    }

    /// Replaces a static member's old member id with a new one, fencing the old.
    pub fn replace_static_member(&mut self, old_id: &str, new_id: &str) {
        if let Some(mut m) = self.members.remove(old_id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(Err((BrokerError::FencedInstanceId, String::new())));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(Err(BrokerError::FencedInstanceId));
            }
            m.member_id = new_id.to_string();
            if let Some(instance) = &m.group_instance_id {
                self.static_members
                    .insert(instance.clone(), new_id.to_string());
            }
            if self.leader.as_deref() == Some(old_id) {
                self.leader = Some(new_id.to_string());
            }
            self.members.insert(new_id.to_string(), m);
        }
    }

    /// Whether a rejoin with these protocols can be answered from the current generation.
    pub fn rejoin_is_noop(&self, member_id: &str, protocols: &[(String, Bytes)]) -> bool {
        self.members
            .get(member_id)
            .is_some_and(|m| m.same_protocols(protocols))
    }

    /// The current generation's answer to a member rejoining without a rebalance.
    pub fn current_join_result(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(member_id);
        JoinResult {
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if is_leader && !skip_assignment {
                self.members
                    .values()
                    .map(|m| {
                        (
                            m.member_id.clone(),
                            m.group_instance_id.clone(),
                            m.metadata_for(&protocol),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            },
            skip_assignment,
        }
    }

    pub fn to_stored(&self) -> StoredGroup {
        let protocol = self.protocol.clone().unwrap_or_default();
        StoredGroup {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Restores a group from its stored form after a restart: Stable with its members (who
    /// get a fresh session timeout to come back), or Empty.
    pub fn restore(&mut self, stored: StoredGroup, now: Instant) {
        self.generation = stored.generation;
        self.protocol_type = (!stored.protocol_type.is_empty()).then_some(stored.protocol_type);
        self.protocol = stored.protocol;
        self.leader = stored.leader;
        self.state_since_ms = stored.state_timestamp;
        self.members.clear();
        self.static_members.clear();
        let protocol = self.protocol.clone().unwrap_or_default();
        for m in stored.members {
            self.add_member(
                Member {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    join_waiter: None,
                    sync_waiter: None,
                    session_deadline: now,
                    joined_seq: 0,
                },
                now,
            );
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }
}

#[cfg(test)]
mod tests;

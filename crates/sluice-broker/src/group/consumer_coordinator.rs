//! ConsumerGroupHeartbeat and ConsumerGroupDescribe (KIP-848) on top of `consumer.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tracing::info;
use uuid::Uuid;

use super::consumer::{Assignment, ConsumerGroup, ConsumerMember, ASSIGNORS};
use super::state::Group;
use super::GroupCoordinator;
use crate::error::{BrokerError, Result};

/// A ConsumerGroupHeartbeat in protocol-neutral form (topics by name).
#[derive(Debug, Clone)]
pub struct ConsumerHeartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub server_assignor: Option<String>,
    /// Partitions the member owns now; None when unchanged since its last heartbeat.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone)]
pub struct ConsumerHeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it changed since the last one sent.
    pub assignment: Option<Assignment>,
}

/// A KIP-848 group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberDescription>,
}

#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: Vec<String>,
    pub assignment: Assignment,
    pub target: Assignment,
}

const LEAVE: i32 = -1;
const STATIC_LEAVE: i32 = -2;

impl GroupCoordinator {
    pub(crate) fn partition_counts(&self, topics: &BTreeSet<String>) -> BTreeMap<String, i32> {
        topics
            .iter()
            .filter_map(|t| {
                self.replicas
                    .topic(t)
                    .map(|topic| (t.clone(), topic.partition_count))
            })
            .collect()
    }

    pub fn consumer_group_heartbeat(
        &self,
        req: ConsumerHeartbeat,
    ) -> Result<ConsumerHeartbeatResult> {
        if req.group_id.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        self.check_coordinator(&req.group_id)?;
        if let Some(a) = &req.server_assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return Err(BrokerError::UnsupportedAssignor(format!(
                    "server assignor {a:?} is not one of {ASSIGNORS:?}"
                )));
            }
        }
        let now = Instant::now();
        let (session_ms, interval) = self.consumer_group_timing(&req.group_id);
        let session = Duration::from_millis(session_ms);
        let mut groups = self.groups.lock();
        let group = groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id));
        if !group.members.is_empty() {
            return Err(BrokerError::InconsistentGroupProtocol(
                "the group is in use by classic-protocol members".into(),
            ));
        }
        let cg = group.consumer.get_or_insert_with(|| ConsumerGroup {
            assignor: "uniform".into(),
            ..Default::default()
        });
        let mut changed = false;

        if req.member_epoch == STATIC_LEAVE {
            // A static member going away for a while: its partitions wait for it (or for
            // its session to expire) instead of moving.
            let m = cg
                .members
                .get_mut(&req.member_id)
                .ok_or(BrokerError::UnknownMemberId)?;
            m.session_deadline = now + session;
            info!(group = %req.group_id, member = %req.member_id, "static member left; its partitions wait for it");
            return Ok(ConsumerHeartbeatResult {
                member_id: req.member_id,
                member_epoch: STATIC_LEAVE,
                heartbeat_interval_ms: interval,
                assignment: None,
            });
        }
        if req.member_epoch == LEAVE {
            if cg.members.remove(&req.member_id).is_none() {
                return Err(BrokerError::UnknownMemberId);
            }
            info!(group = %req.group_id, member = %req.member_id, "member left");
            let counts = self.partition_counts(&cg.subscribed_topics());
            cg.recompute(counts);
            return Ok(ConsumerHeartbeatResult {
                member_id: req.member_id,
                member_epoch: LEAVE,
                heartbeat_interval_ms: interval,
                assignment: None,
            });
        }

        let member_id = if req.member_id.is_empty() {
            Uuid::new_v4().simple().to_string()
        } else {
            req.member_id.clone()
        };
        if req.member_epoch == 0 {
            let subscribed = req.subscribed_topic_names.clone().ok_or_else(|| {
                BrokerError::InvalidRequest(
                    "a joining member must give its subscribed topic names".into(),
                )
            })?;
            // A static member coming back under a new member id takes over its old place.
            let replaced = req
                .instance_id
                .as_ref()
                .and_then(|i| {
                    cg.members
                        .values()
                        .find(|m| m.instance_id.as_ref() == Some(i) && m.member_id != member_id)
                })
                .map(|m| m.member_id.clone());
            let subscribed: BTreeSet<String> = subscribed.into_iter().collect();
            let mut inherited = Assignment::new();
            changed = true;
            if let Some(old) = replaced.and_then(|old| cg.members.remove(&old)) {
                // Same place, same partitions: no new target unless the subscription changed.
                if let Some(t) = cg.target.remove(&old.member_id) {
                    cg.target.insert(member_id.clone(), t);
                }
                changed = old.subscribed != subscribed;
                inherited = old.assigned;
                info!(group = %req.group_id, member = %member_id, replaced = %old.member_id, "static member rejoined");
            }
            cg.members.insert(
                member_id.clone(),
                ConsumerMember {
                    member_id: member_id.clone(),
                    instance_id: req.instance_id.clone(),
                    rack_id: req.rack_id.clone(),
                    client_id: req.client_id.clone(),
                    client_host: req.client_host.clone(),
                    epoch: 0,
                    previous_epoch: 0,
                    rebalance_timeout: Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64),
                    subscribed,
                    assigned: inherited,
                    revoking: Assignment::new(),
                    revoke_deadline: None,
                    session_deadline: now + session,
                    last_sent: None,
                },
            );
            info!(group = %req.group_id, member = %member_id, "member joined");
        } else {
            let m = cg
                .members
                .get_mut(&member_id)
                .ok_or(BrokerError::UnknownMemberId)?;
            if req.member_epoch != m.epoch && req.member_epoch != m.previous_epoch {
                return Err(BrokerError::FencedMemberEpoch);
            }
            if let Some(topics) = &req.subscribed_topic_names {
                let topics: BTreeSet<String> = topics.iter().cloned().collect();
                if topics != m.subscribed {
                    m.subscribed = topics;
                    changed = true;
                }
            }
            if req.rebalance_timeout_ms > 0 {
                m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
            }
            if let Some(owned) = &req.owned {
                if owned.is_disjoint(&m.revoking) {
                    m.revoking.clear();
                    m.revoke_deadline = None;
                }
            }
            m.session_deadline = now + session;
        }
        if let Some(a) = &req.server_assignor {
            if *a != cg.assignor {
                cg.assignor = a.clone();
                changed = true;
            }
        }
        let counts = self.partition_counts(&cg.subscribed_topics());
        if changed || counts != cg.topic_partitions {
            cg.recompute(counts);
        }
        cg.reconcile(&member_id, now);
        let m = cg
            .members
            .get_mut(&member_id)
            .ok_or(BrokerError::UnknownMemberId)?;
        let send = req.member_epoch == 0 || m.last_sent.as_ref() != Some(&m.assigned);
        let assignment = send.then(|| m.assigned.clone());
        if send {
            m.last_sent = Some(m.assigned.clone());
        }
        Ok(ConsumerHeartbeatResult {
            member_id,
            member_epoch: m.epoch,
            heartbeat_interval_ms: interval,
            assignment,
        })
    }

    /// Removes KIP-848 members whose session expired or who did not release partitions in
    /// time; the rest get a new target.
    pub(crate) fn expire_consumer_members(
        group: &mut Group,
        now: Instant,
        counts: impl Fn(&BTreeSet<String>) -> BTreeMap<String, i32>,
    ) {
        let Some(cg) = group.consumer.as_mut() else {
            return;
        };
        let expired: Vec<String> = cg
            .members
            .values()
            .filter(|m| m.session_deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now))
            .map(|m| m.member_id.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            info!(group = %group.id, member = %id, "member expired");
            cg.members.remove(id);
        }
        let c = counts(&cg.subscribed_topics());
        cg.recompute(c);
    }

    pub fn describe_consumer_group(&self, group_id: &str) -> Option<ConsumerGroupDescription> {
        let groups = self.groups.lock();
        let cg = groups.get(group_id)?.consumer.as_ref()?;
        Some(ConsumerGroupDescription {
            state: cg.state_name(),
            epoch: cg.epoch,
            assignor: cg.assignor.clone(),
            members: cg
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed: m.subscribed.iter().cloned().collect(),
                    assignment: m.assigned.clone(),
                    target: cg.target.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Validates an OffsetCommit from a KIP-848 member: its epoch must be current.
    pub(crate) fn check_consumer_commit(
        cg: &ConsumerGroup,
        member_id: &str,
        epoch: i32,
    ) -> Result<()> {
        let m = cg
            .members
            .get(member_id)
            .ok_or(BrokerError::UnknownMemberId)?;
        match epoch {
            e if e == m.epoch => Ok(()),
            e if e < m.epoch => Err(BrokerError::StaleMemberEpoch),
            _ => Err(BrokerError::FencedMemberEpoch),
        }
    }
}

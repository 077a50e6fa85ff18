//! The group coordinator: classic group membership (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup) on top of `state.rs`, and the timers that expire sessions and rebalances.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::{debug, info};
use uuid::Uuid;

use super::state::{Group, GroupState, JoinOutcome, Member, SyncOutcome};
use super::GroupCoordinator;
use crate::error::{BrokerError, Result};

/// A JoinGroup request in protocol-neutral form.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a first join without a member id is answered MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// v9+: a static leader rejoining a stable group may skip reassignment.
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

enum Step<T> {
    Done(T),
    Wait(oneshot::Receiver<T>),
}

impl GroupCoordinator {
    fn session_timeout_bounds(&self) -> (i32, i32) {
        (
            self.config.group_min_session_timeout_ms(),
            self.config.group_max_session_timeout_ms(),
        )
    }

    pub async fn join_group(&self, req: JoinRequest) -> JoinOutcome {
        if let Err(e) = self.check_coordinator(&req.group_id) {
            return Err((e, req.member_id));
        }
        let step = {
            let mut groups = self.groups.lock();
            self.join_locked(&mut groups, req)
        };
        match step {
            Step::Done(outcome) => outcome,
            Step::Wait(rx) => rx
                .await
                .unwrap_or(Err((BrokerError::RebalanceInProgress, String::new()))),
        }
    }

    fn join_locked(&self, groups: &mut super::Groups, req: JoinRequest) -> Step<JoinOutcome> {
        let fail = |e: BrokerError| Step::Done(Err((e, req.member_id.clone())));
        if req.group_id.is_empty() {
            return fail(BrokerError::InvalidGroupId);
        }
        let (min, max) = self.session_timeout_bounds();
        if req.session_timeout_ms < min || req.session_timeout_ms > max {
            return fail(BrokerError::InvalidSessionTimeout(format!(
                "session timeout {} ms is outside group.min.session.timeout.ms..group.max.session.timeout.ms ({min}..{max})",
                req.session_timeout_ms
            )));
        }
        let now = Instant::now();
        let group = groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id));
        if !group.supports(&req.protocol_type, &req.protocols) {
            return fail(BrokerError::InconsistentGroupProtocol(
                "the member's protocol type or protocols do not match the group's".into(),
            ));
        }
        let new_member = |member_id: String| Member {
            member_id,
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout: Duration::from_millis(req.session_timeout_ms as u64),
            rebalance_timeout: Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            session_deadline: now,
            joined_seq: 0,
        };

        if req.member_id.is_empty() {
            let member_id = format!("{}-{}", req.client_id, Uuid::new_v4());
            if let Some(instance) = &req.group_instance_id {
                if let Some(old_id) = group.static_members.get(instance).cloned() {
                    // A static member came back: take over its place under a new member id.
                    let unchanged = group.rejoin_is_noop(&old_id, &req.protocols);
                    group.replace_static_member(&old_id, &member_id);
                    let is_leader = group.leader.as_deref() == Some(member_id.as_str());
                    if group.state == GroupState::Stable && unchanged {
                        // As Kafka does: no rebalance. A leader gets the member list (or, from
                        // v9, skip_assignment) but its SyncGroup in a Stable group returns the
                        // assignment already in place.
                        if let Some(m) = group.members.get_mut(&member_id) {
                            m.touch(now);
                        }
                        info!(group = %group.id, instance, "static member rejoined; assignment kept");
                        let skip = is_leader && req.supports_skip_assignment;
                        let result = group.current_join_result(&member_id, skip);
                        self.persist_group(group);
                        return Step::Done(Ok(result));
                    }
                    if let Some(m) = group.members.get_mut(&member_id) {
                        m.protocols = req.protocols.clone();
                    }
                    return self.wait_for_join(group, &member_id, now);
                }
            } else if req.require_known_member_id {
                group.pending_members.insert(
                    member_id.clone(),
                    now + Duration::from_millis(req.session_timeout_ms as u64),
                );
                return Step::Done(Err((BrokerError::MemberIdRequired, member_id)));
            }
            if group.members.is_empty() {
                group.protocol_type = Some(req.protocol_type.clone());
            }
            group.add_member(new_member(member_id.clone()), now);
            return self.wait_for_join(group, &member_id, now);
        }

        if group.pending_members.remove(&req.member_id).is_some() {
            if group.members.is_empty() {
                group.protocol_type = Some(req.protocol_type.clone());
            }
            group.add_member(new_member(req.member_id.clone()), now);
            return self.wait_for_join(group, &req.member_id, now);
        }
        if let Err(e) = group.check_member(&req.member_id, req.group_instance_id.as_deref()) {
            return fail(e);
        }
        let unchanged = group.rejoin_is_noop(&req.member_id, &req.protocols);
        let is_leader = group.leader.as_deref() == Some(req.member_id.as_str());
        if let Some(m) = group.members.get_mut(&req.member_id) {
            m.session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
            m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64);
            m.protocols = req.protocols.clone();
            m.touch(now);
        }
        match group.state {
            GroupState::CompletingRebalance if unchanged => {
                Step::Done(Ok(group.current_join_result(&req.member_id, false)))
            }
            GroupState::Stable if unchanged && !is_leader => {
                Step::Done(Ok(group.current_join_result(&req.member_id, false)))
            }
            _ => self.wait_for_join(group, &req.member_id, now),
        }
    }

    /// Parks a member's JoinGroup until the rebalance completes.
    fn wait_for_join(&self, group: &mut Group, member_id: &str, now: Instant) -> Step<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = group.members.get_mut(member_id) {
            if let Some(old) = m.join_waiter.replace(tx) {
                let _ = old.send(Err((
                    BrokerError::RebalanceInProgress,
                    member_id.to_string(),
                )));
            }
        }
        let initial_delay = Duration::from_millis(self.config.group_initial_rebalance_delay_ms());
        group.prepare_rebalance_with_delay(now, initial_delay);
        if group.maybe_complete_join(now) {
            self.after_join_completed(group);
        }
        Step::Wait(rx)
    }

    fn after_join_completed(&self, group: &Group) {
        debug!(group = %group.id, generation = group.generation, members = group.members.len(), state = group.state.name(), "join phase complete");
        if group.state == GroupState::Empty {
            self.persist_group(group);
        }
    }

    pub async fn sync_group(&self, req: SyncRequest) -> SyncOutcome {
        self.check_coordinator(&req.group_id)?;
        let step = {
            let mut groups = self.groups.lock();
            self.sync_locked(&mut groups, req)
        };
        match step {
            Step::Done(outcome) => outcome,
            Step::Wait(rx) => rx.await.unwrap_or(Err(BrokerError::RebalanceInProgress)),
        }
    }

    fn sync_locked(&self, groups: &mut super::Groups, req: SyncRequest) -> Step<SyncOutcome> {
        let Some(group) = groups.get_mut(&req.group_id) else {
            return Step::Done(Err(BrokerError::UnknownMemberId));
        };
        if let Err(e) = group.check_member(&req.member_id, req.group_instance_id.as_deref()) {
            return Step::Done(Err(e));
        }
        if req.generation != group.generation {
            return Step::Done(Err(BrokerError::IllegalGeneration));
        }
        let mismatch =
            |given: &Option<String>, have: &Option<String>| given.is_some() && given != have;
        if mismatch(&req.protocol_type, &group.protocol_type)
            || mismatch(&req.protocol_name, &group.protocol)
        {
            return Step::Done(Err(BrokerError::InconsistentGroupProtocol(
                "protocol type or name differs from the group's".into(),
            )));
        }
        let now = Instant::now();
        if let Some(m) = group.members.get_mut(&req.member_id) {
            m.touch(now);
        }
        match group.state {
            GroupState::PreparingRebalance => Step::Done(Err(BrokerError::RebalanceInProgress)),
            GroupState::Empty => Step::Done(Err(BrokerError::UnknownMemberId)),
            GroupState::Stable => {
                let m = &group.members[&req.member_id];
                Step::Done(Ok((
                    group.protocol_type.clone(),
                    group.protocol.clone(),
                    m.assignment.clone(),
                )))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = group.members.get_mut(&req.member_id) {
                    m.sync_waiter = Some(tx);
                }
                if group.leader.as_deref() == Some(req.member_id.as_str()) {
                    group.complete_sync(req.assignments.into_iter().collect());
                    info!(group = %group.id, generation = group.generation, members = group.members.len(), "group stable");
                    self.persist_group(group);
                }
                Step::Wait(rx)
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<()> {
        self.check_coordinator(group_id)?;
        let mut groups = self.groups.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or(BrokerError::UnknownMemberId)?;
        group.check_member(member_id, instance_id)?;
        if generation != group.generation {
            return Err(BrokerError::IllegalGeneration);
        }
        if let Some(m) = group.members.get_mut(member_id) {
            m.touch(Instant::now());
        }
        match group.state {
            GroupState::PreparingRebalance => Err(BrokerError::RebalanceInProgress),
            GroupState::Empty => Err(BrokerError::UnknownMemberId),
            _ => Ok(()),
        }
    }

    /// Removes members (by member id, or by group.instance.id for static members).
    pub fn leave_group(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<()>>> {
        self.check_coordinator(group_id)?;
        let mut groups = self.groups.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or(BrokerError::UnknownMemberId)?;
        let now = Instant::now();
        let mut removed = false;
        let results = members
            .iter()
            .map(|(member_id, instance)| {
                let id = match instance {
                    Some(instance) => {
                        let current = group
                            .static_members
                            .get(instance)
                            .cloned()
                            .ok_or(BrokerError::UnknownMemberId)?;
                        if !member_id.is_empty() && *member_id != current {
                            return Err(BrokerError::FencedInstanceId);
                        }
                        current
                    }
                    None => member_id.clone(),
                };
                if group.pending_members.remove(&id).is_some() {
                    return Ok(());
                }
                if !group.members.contains_key(&id) {
                    return Err(BrokerError::UnknownMemberId);
                }
                group.remove_member(&id);
                removed = true;
                Ok(())
            })
            .collect();
        if removed {
            info!(group = %group.id, "members left; rebalancing");
            group.on_members_removed(now);
            self.after_membership_change(group);
        }
        Ok(results)
    }

    fn after_membership_change(&self, group: &Group) {
        if group.state == GroupState::Empty {
            self.persist_group(group);
        }
    }

    /// Expires sessions, unanswered handed-out member ids and overdue rebalance phases.
    pub(crate) fn expire_group_timers(&self) {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        for group in groups.values_mut() {
            GroupCoordinator::expire_consumer_members(group, now, |topics| {
                self.partition_counts(topics)
            });
            group.pending_members.retain(|_, deadline| *deadline > now);
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| m.session_deadline <= now && m.join_waiter.is_none())
                .map(|m| m.member_id.clone())
                .collect();
            for id in &expired {
                info!(group = %group.id, member = %id, "session expired; removing member");
                group.remove_member(id);
            }
            if !expired.is_empty() {
                group.on_members_removed(now);
                self.after_membership_change(group);
                continue;
            }
            let overdue = group.rebalance_deadline.is_some_and(|d| d <= now);
            match group.state {
                GroupState::PreparingRebalance => {
                    let completed = if overdue {
                        group.complete_join(now);
                        true
                    } else {
                        group.maybe_complete_join(now)
                    };
                    if completed {
                        self.after_join_completed(group);
                    }
                }
                GroupState::CompletingRebalance if overdue => {
                    // The leader never sent its assignment: drop whoever did not sync, start over.
                    let stragglers: Vec<String> = group
                        .members
                        .values()
                        .filter(|m| m.sync_waiter.is_none())
                        .map(|m| m.member_id.clone())
                        .collect();
                    info!(group = %group.id, members = stragglers.len(), "members did not sync in time; rebalancing");
                    for id in &stragglers {
                        group.remove_member(id);
                    }
                    group.rebalance_deadline = None;
                    group.on_members_removed(now);
                    self.after_membership_change(group);
                }
                _ => {}
            }
        }
    }
}

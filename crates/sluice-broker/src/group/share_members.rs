//! Share group membership on the group coordinator (ShareGroupHeartbeat). Every member is
//! assigned every partition of the topics it subscribes to: records, not partitions, are
//! what members share, so a queue scales past its partition count.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use tracing::info;

use crate::error::{BrokerError, Result};
use crate::group::GroupCoordinator;

/// Partitions by (topic name, index).
pub type ShareAssignment = BTreeSet<(String, i32)>;

#[derive(Debug, Clone)]
pub struct ShareHeartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// None when unchanged since the member's last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone)]
pub struct ShareHeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it changed since the last one sent.
    pub assignment: Option<ShareAssignment>,
}

#[derive(Debug, Clone)]
pub struct ShareMember {
    pub epoch: i32,
    pub subscribed: Vec<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub assignment: ShareAssignment,
    session_deadline: Instant,
    /// The assignment this member was last told.
    sent: Option<ShareAssignment>,
}

#[derive(Debug, Default)]
pub struct ShareGroup {
    pub epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
}

pub type ShareGroups = HashMap<String, ShareGroup>;

const LEAVE: i32 = -1;

impl GroupCoordinator {
    pub fn share_group_heartbeat(&self, req: ShareHeartbeat) -> Result<ShareHeartbeatResult> {
        if req.group_id.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        if req.member_id.is_empty() {
            return Err(BrokerError::InvalidRequest(
                "a share group member names itself (a UUID) when it joins".into(),
            ));
        }
        self.check_coordinator(&req.group_id)?;
        self.refuse_if_consumer_group(&req.group_id)?;
        let session = Duration::from_millis(
            self.group_setting_for(&req.group_id, "share.session.timeout.ms") as u64,
        );
        let interval = self.group_setting_for(&req.group_id, "share.heartbeat.interval.ms") as i32;
        let now = Instant::now();
        let mut groups = self.share_groups.lock();
        let group = groups.entry(req.group_id.clone()).or_default();
        expire_members(&req.group_id, group, now);

        if req.member_epoch == LEAVE {
            if group.members.remove(&req.member_id).is_none() {
                return Err(BrokerError::UnknownMemberId);
            }
            group.epoch += 1;
            info!(group = %req.group_id, member = %req.member_id, "share group member left");
            return Ok(ShareHeartbeatResult {
                member_id: req.member_id,
                member_epoch: LEAVE,
                heartbeat_interval_ms: interval,
                assignment: None,
            });
        }
        let joining = req.member_epoch == 0;
        if !joining {
            let m = group
                .members
                .get(&req.member_id)
                .ok_or(BrokerError::UnknownMemberId)?;
            if m.epoch != req.member_epoch {
                return Err(BrokerError::FencedMemberEpoch);
            }
        } else {
            let Some(subscribed) = &req.subscribed_topic_names else {
                return Err(BrokerError::InvalidRequest(
                    "a joining member names the topics it subscribes to".into(),
                ));
            };
            if !group.members.contains_key(&req.member_id) {
                info!(group = %req.group_id, member = %req.member_id, topics = ?subscribed, "share group member joined");
            }
            group.epoch += 1;
            group.members.insert(
                req.member_id.clone(),
                ShareMember {
                    epoch: 0,
                    subscribed: Vec::new(),
                    rack_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    assignment: ShareAssignment::new(),
                    session_deadline: now,
                    sent: None,
                },
            );
        }
        let group_epoch = group.epoch;
        let m = group.members.get_mut(&req.member_id).expect("present");
        m.session_deadline = now + session;
        m.rack_id = req.rack_id;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        if let Some(topics) = req.subscribed_topic_names {
            m.subscribed = topics;
        }
        let assignment = self.every_partition_of(&m.subscribed);
        if assignment != m.assignment || joining {
            m.assignment = assignment;
            m.epoch = group_epoch.max(m.epoch + 1);
        }
        let changed = m.sent.as_ref() != Some(&m.assignment);
        if changed {
            m.sent = Some(m.assignment.clone());
        }
        Ok(ShareHeartbeatResult {
            member_id: req.member_id,
            member_epoch: m.epoch,
            heartbeat_interval_ms: interval,
            assignment: changed.then(|| m.assignment.clone()),
        })
    }

    /// Every partition of `topics` that exists now.
    fn every_partition_of(&self, topics: &[String]) -> ShareAssignment {
        let counts = self.partition_counts(&topics.iter().cloned().collect());
        counts
            .into_iter()
            .flat_map(|(t, n)| (0..n).map(move |p| (t.clone(), p)))
            .collect()
    }

    /// A group id in use by a consumer group is not a share group (Kafka's answer).
    pub(crate) fn refuse_if_consumer_group(&self, group: &str) -> Result<()> {
        let groups = self.groups.lock();
        match groups.get(group) {
            Some(g) if g.consumer.is_some() || !g.members.is_empty() => {
                Err(BrokerError::GroupIdNotFound)
            }
            _ => Ok(()),
        }
    }

    /// Whether `member` is a live member of share group `group` on this coordinator.
    pub fn is_share_member(&self, group: &str, member: &str) -> bool {
        let mut groups = self.share_groups.lock();
        let Some(g) = groups.get_mut(group) else {
            return false;
        };
        expire_members(group, g, Instant::now());
        g.members.contains_key(member)
    }

    /// The members of a share group, for describing it.
    pub fn share_group_members(&self, group: &str) -> Option<(i32, Vec<(String, ShareMember)>)> {
        let mut groups = self.share_groups.lock();
        let g = groups.get_mut(group)?;
        expire_members(group, g, Instant::now());
        Some((
            g.epoch,
            g.members
                .iter()
                .map(|(id, m)| (id.clone(), m.clone()))
                .collect(),
        ))
    }
}

/// Members whose session ran out leave the group.
fn expire_members(group_id: &str, group: &mut ShareGroup, now: Instant) {
    let before = group.members.len();
    group.members.retain(|id, m| {
        let alive = m.session_deadline > now;
        if !alive {
            info!(group = %group_id, member = %id, "share group member's session expired");
        }
        alive
    });
    if group.members.len() != before {
        group.epoch += 1;
    }
}

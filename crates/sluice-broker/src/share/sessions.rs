//! Share sessions: a member's partitions on this broker, opened, advanced and closed by the
//! epochs its requests carry, bounded in number (idle ones dropped when room is needed).

use super::*;

/// A member's share session with this broker: the partitions it fetches here.
pub(super) struct Session {
    /// The epoch the member's next request must carry.
    pub(super) next_epoch: i32,
    pub(super) partitions: BTreeSet<(Arc<str>, i32)>,
    pub(super) last_used: std::time::Instant,
}

/// Share sessions a broker keeps (Kafka's `group.share.max.share.sessions` default); past it
/// a new one is refused with SHARE_SESSION_LIMIT_REACHED, once idle ones are dropped.
pub(super) const MAX_SHARE_SESSIONS: usize = 2000;
/// A session unused this long is dropped when room is needed (its member is gone; what it
/// held comes back when the locks run out). Members fetch every few hundred ms.
pub(super) const IDLE_SESSION: Duration = Duration::from_secs(120);

impl SharePartitionManager {
    /// Ok if the group's coordinator knows `member` (here, or asked over the network):
    /// sessions open only for members, so made-up member ids cannot take the session slots
    /// real members need. UNKNOWN_MEMBER_ID otherwise (the member heartbeats and joins
    /// again).
    pub(super) async fn check_member(&self, group: &str, member: &str) -> Result<()> {
        let coordinator = match self.groups.group_coordinator(group) {
            Ok(c) => c,
            // Without `__consumer_offsets` no group has ever had a member.
            Err(BrokerError::CoordinatorNotAvailable) if !self.groups.offsets_topic_exists() => {
                return Err(BrokerError::UnknownMemberId)
            }
            Err(e) => return Err(e),
        };
        let known = if coordinator.node_id == self.replicas.config.node_id {
            self.groups.is_share_member(group, member)
        } else {
            self.coordinator
                .remote()?
                .is_member(coordinator, group.to_string(), member.to_string())
                .await?
        };
        if known {
            Ok(())
        } else {
            Err(BrokerError::UnknownMemberId)
        }
    }

    /// Checks and moves the member's share session on: opens it (epoch 0), closes it (-1)
    /// or checks the epoch and adds and forgets partitions. Returns the session's partitions,
    /// and those it left, where the caller releases what the member holds once it has
    /// applied the request's acknowledgements.
    #[allow(clippy::type_complexity)]
    pub(super) fn advance_session(
        &self,
        req: &ShareFetchRequest,
    ) -> Result<(Vec<(Arc<str>, i32)>, Vec<(Arc<str>, i32)>)> {
        let key = (req.group_id.clone(), req.member_id.clone());
        let mut sessions = self.sessions.lock();
        let released: Vec<(Arc<str>, i32)>;
        let partitions;
        match req.session_epoch {
            OPEN => {
                // A new session replaces an old one; what the old one held goes back.
                released = sessions
                    .remove(&key)
                    .map(|s| s.partitions.into_iter().collect())
                    .unwrap_or_default();
                if sessions.len() >= MAX_SHARE_SESSIONS {
                    sessions.retain(|_, s| s.last_used.elapsed() < IDLE_SESSION);
                    if sessions.len() >= MAX_SHARE_SESSIONS {
                        return Err(BrokerError::ShareSessionLimitReached);
                    }
                }
                let mut s = Session {
                    next_epoch: 1,
                    partitions: BTreeSet::new(),
                    last_used: std::time::Instant::now(),
                };
                for p in &req.partitions {
                    s.partitions.insert((p.topic.clone(), p.partition));
                }
                partitions = s.partitions.iter().cloned().collect();
                sessions.insert(key, s);
            }
            CLOSE => {
                let s = sessions
                    .remove(&key)
                    .ok_or(BrokerError::ShareSessionNotFound)?;
                released = s.partitions.into_iter().collect();
                partitions = Vec::new();
            }
            epoch => {
                let s = sessions
                    .get_mut(&key)
                    .ok_or(BrokerError::ShareSessionNotFound)?;
                if epoch != s.next_epoch {
                    return Err(BrokerError::InvalidShareSessionEpoch(format!(
                        "share session epoch {epoch}, expected {}",
                        s.next_epoch
                    )));
                }
                s.last_used = std::time::Instant::now();
                s.next_epoch = if s.next_epoch == i32::MAX {
                    1
                } else {
                    s.next_epoch + 1
                };
                for p in &req.partitions {
                    s.partitions.insert((p.topic.clone(), p.partition));
                }
                let mut gone = Vec::new();
                for f in &req.forgotten {
                    if s.partitions.remove(f) {
                        gone.push(f.clone());
                    }
                }
                released = gone;
                partitions = s.partitions.iter().cloned().collect();
            }
        }
        Ok((partitions, released))
    }
}

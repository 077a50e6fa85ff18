//! AlterShareGroupOffsets and DeleteShareGroupOffsets on the group coordinator: an
//! administrator moves an empty share group's start offsets, or forgets them (the group then
//! starts where `share.auto.offset.reset` says). Each writes a new state in a higher state
//! epoch at the share coordinators; share-partition leaders holding the old state are fenced
//! and read it again (at the latest when the next member opens its share session).

use super::state::PersistedState;
use super::SharePartitionManager;
use crate::error::{BrokerError, Result};

/// Where a deleted share-partition starts: not initialized.
const UNINITIALIZED: i64 = -1;

impl SharePartitionManager {
    /// Checks that `group` may have its offsets changed: this broker coordinates it, it is
    /// not a consumer group, and it has no members (GROUP_NOT_EMPTY otherwise).
    fn check_share_admin(&self, group: &str) -> Result<()> {
        let groups = &self.groups;
        groups.check_coordinator(group)?;
        groups.refuse_if_consumer_group(group)?;
        let members = groups
            .share_group_members(group)
            .map_or(0, |(_, m)| m.len());
        if members > 0 {
            return Err(BrokerError::NonEmptyGroup);
        }
        Ok(())
    }

    /// AlterShareGroupOffsets: sets the start offset of each (topic, partition); per
    /// partition outcomes, or an error for the whole group.
    pub async fn alter_share_group_offsets(
        &self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<Vec<Result<()>>> {
        self.check_share_admin(group)?;
        let mut out = Vec::with_capacity(offsets.len());
        for (topic, partition, start) in offsets {
            out.push(if *start < 0 {
                Err(BrokerError::InvalidRequest(format!(
                    "start offset {start} for {topic}-{partition}: must be 0 or more"
                )))
            } else {
                self.replace_share_state(group, topic, *partition, *start)
                    .await
            });
        }
        Ok(out)
    }

    /// DeleteShareGroupOffsets: forgets the group's state in every partition of each topic;
    /// per topic outcomes, or an error for the whole group.
    pub async fn delete_share_group_offsets(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Vec<Result<()>>> {
        self.check_share_admin(group)?;
        let mut out = Vec::with_capacity(topics.len());
        for topic in topics {
            let Some(count) = self.replicas.topic(topic).map(|t| t.partition_count) else {
                out.push(Err(BrokerError::UnknownTopicOrPartition));
                continue;
            };
            let mut outcome = Ok(());
            for p in 0..count {
                if let Err(e) = self
                    .replace_share_state(group, topic, p, UNINITIALIZED)
                    .await
                {
                    outcome = Err(e);
                }
            }
            out.push(outcome);
        }
        Ok(out)
    }

    /// Writes a fresh state (nothing in flight, starting at `start`) one state epoch above
    /// the current one.
    async fn replace_share_state(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
        start: i64,
    ) -> Result<()> {
        let count = self
            .replicas
            .topic(topic)
            .ok_or(BrokerError::UnknownTopicOrPartition)?
            .partition_count;
        if !(0..count).contains(&partition) {
            return Err(BrokerError::UnknownTopicOrPartition);
        }
        let key = self.state_key(group, topic, partition)?;
        let current = self.coordinator.load_share_state(&key).await?;
        if current.is_none() && start == UNINITIALIZED {
            return Ok(()); // nothing to forget
        }
        let fresh = PersistedState {
            state_epoch: current.map_or(0, |c| c.state_epoch) + 1,
            start_offset: start,
            batches: Vec::new(),
        };
        self.coordinator.store_share_state(&key, fresh).await
    }
}

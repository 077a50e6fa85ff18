//! The group coordinator follows the leadership of `__consumer_offsets` partitions, as
//! Kafka's does: when this broker comes to lead a partition it loads that partition's groups
//! and offsets from the log (its groups answer COORDINATOR_LOAD_IN_PROGRESS meanwhile), and
//! when it stops leading one it drops that partition's groups (another broker answers for
//! them; this one says NOT_COORDINATOR).

use std::collections::HashMap;
use std::time::Instant;

use sluice_log::txn::MarkerKind;
use tracing::{info, warn};

use super::records::{self, OffsetsRecord};
use super::state::Group;
use super::GroupCoordinator;
use crate::coordinated_topic::{for_each_entry, partition_for, Entry};
use crate::error::Result;
use crate::replica::partition::Partition;
use crate::replica::LeadershipFollower;

impl LeadershipFollower for GroupCoordinator {
    /// Brings the groups in memory in line with the offsets partitions this broker leads in
    /// its current image. Called after every image is applied (and at start).
    fn follow_leadership(&self) -> Result<()> {
        self.offsets.follow_leadership(
            "consumer groups",
            |lost, count| {
                let mut groups = self.groups.lock();
                let before = groups.len();
                groups.retain(|id, _| !lost.contains(&partition_for(id, count)));
                info!(partitions = ?lost, groups = before - groups.len(), "no longer coordinating the groups of these offsets partitions");
            },
            load_partition,
            |loaded| {
                let n = loaded.len();
                let mut state = self.groups.lock();
                for (id, group) in loaded {
                    // A group made in memory meanwhile (the topic was just created) wins.
                    state.entry(id).or_insert(group);
                }
                n
            },
        )
    }
}

/// The groups one offsets partition holds, replayed from its log.
fn load_partition(partition: &Partition) -> Result<HashMap<String, Group>> {
    let now = Instant::now();
    let mut groups: HashMap<String, Group> = HashMap::new();
    for_each_entry(partition, |entry| {
        let (header, key, value) = match entry {
            Entry::Record { header, key, value } => (header, key, value),
            // Offsets committed in a transaction count once its commit marker is read.
            Entry::Marker { header, marker } => {
                let commit = marker.kind == MarkerKind::Commit;
                for g in groups.values_mut() {
                    g.complete_txn_offsets(header.producer_id, commit);
                }
                return;
            }
        };
        match records::decode(key, value) {
            Ok(Some(OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            })) => {
                let g = groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group));
                match value {
                    Some(c) if header.is_transactional() => {
                        g.pending_txn_offsets
                            .entry(header.producer_id)
                            .or_default()
                            .insert((topic, partition), c);
                    }
                    Some(c) => {
                        g.offsets.insert((topic, partition), c);
                    }
                    None => {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            }
            Ok(Some(OffsetsRecord::Group { group, value })) => match value {
                Some(stored) => groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group))
                    .restore(stored, now),
                None => {
                    groups.remove(&group);
                }
            },
            Ok(None) => {}
            Err(e) => warn!(error = %e, "skipping an unreadable __consumer_offsets record"),
        }
    })?;
    groups.retain(|_, g| {
        !g.members.is_empty() || !g.offsets.is_empty() || !g.pending_txn_offsets.is_empty()
    });
    Ok(groups)
}

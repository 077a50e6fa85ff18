//! The group coordinator follows the leadership of `__consumer_offsets` partitions, as
//! Kafka's does: when this broker comes to lead a partition it loads that partition's groups
//! and offsets from the log (its groups answer COORDINATOR_LOAD_IN_PROGRESS meanwhile), and
//! when it stops leading one it drops that partition's groups (another broker answers for
//! them; this one says NOT_COORDINATOR).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use sluice_log::batch::{self, BatchHeader};
use sluice_log::txn::{self, Marker, MarkerKind};
use tracing::{info, warn};

use super::records::{self, OffsetsRecord};
use super::state::Group;
use super::{GroupCoordinator, OFFSETS_TOPIC};
use crate::error::{BrokerError, Result};
use crate::replica::partition::Partition;

impl GroupCoordinator<'_> {
    /// Brings the groups in memory in line with the offsets partitions this broker leads in
    /// its current image. Called after every image is applied (and at start). An error names
    /// a partition that could not be read; the others are loaded.
    pub(crate) fn follow_leadership(&self) -> Result<()> {
        let broker = self.broker;
        // Held throughout: one follower at a time. Lock order: offsets_led, group_state,
        // offsets_loading.
        let mut led = broker.offsets_led.lock();
        let image = broker.replicas.image();
        let hosted = broker.replicas.topic(OFFSETS_TOPIC);
        let (now_led, count) = match (image.topic(OFFSETS_TOPIC), &hosted) {
            (Some(meta), Some(hosted)) => {
                let me = broker.config.node_id;
                let led_here = (0..meta.partition_count())
                    .filter(|&i| {
                        meta.partition(i).is_some_and(|p| p.leader == me)
                            && hosted.partition(i).is_some()
                    })
                    .collect::<BTreeSet<i32>>();
                (led_here, meta.partition_count())
            }
            _ => (BTreeSet::new(), 0),
        };
        let lost: BTreeSet<i32> = led.difference(&now_led).copied().collect();
        let gained: Vec<i32> = now_led.difference(&led).copied().collect();
        if !lost.is_empty() {
            let mut groups = broker.group_state.lock();
            let before = groups.len();
            groups.retain(|id, _| !lost.contains(&records::partition_for(id, count)));
            info!(partitions = ?lost, groups = before - groups.len(), "no longer coordinating the groups of these offsets partitions");
        }
        let Some(hosted) = hosted else {
            *led = now_led;
            return Ok(());
        };
        broker
            .offsets_loading
            .write()
            .extend(gained.iter().copied());
        let mut failed = None;
        let started = Instant::now();
        let (mut loaded_groups, mut loaded_records) = (0, 0);
        for index in gained {
            let loaded = hosted
                .partition(index)
                .ok_or(BrokerError::CoordinatorNotAvailable)
                .and_then(|p| load_partition(p));
            match loaded {
                Ok((groups, records)) => {
                    loaded_groups += groups.len();
                    loaded_records += records;
                    let mut state = broker.group_state.lock();
                    for (id, group) in groups {
                        // A group made in memory meanwhile (the topic was just created) wins.
                        state.entry(id).or_insert(group);
                    }
                }
                Err(e) => {
                    warn!(partition = index, error = %e, "could not load the groups of an offsets partition");
                    failed = Some(BrokerError::Storage(format!(
                        "{OFFSETS_TOPIC}-{index}: {e}"
                    )));
                }
            }
            broker.offsets_loading.write().remove(&index);
        }
        if loaded_records > 0 {
            info!(
                groups = loaded_groups,
                records = loaded_records,
                ms = started.elapsed().as_millis() as u64,
                "loaded consumer groups"
            );
        }
        *led = now_led;
        failed.map_or(Ok(()), Err)
    }
}

/// The groups one offsets partition holds, replayed from its log, and the records read.
fn load_partition(partition: &Partition) -> Result<(HashMap<String, Group>, usize)> {
    let now = Instant::now();
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut count = 0usize;
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
        count += 1;
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
    Ok((groups, count))
}

/// Calls `f(key, value)` for every record of a partition, in offset order (markers
/// skipped).
pub(crate) fn for_each_record(
    partition: &Partition,
    mut f: impl FnMut(&[u8], Option<&[u8]>),
) -> Result<()> {
    for_each_entry(partition, |entry| {
        if let Entry::Record { key, value, .. } = entry {
            f(key, value)
        }
    })
}

/// What `for_each_entry` reads: a keyed record with its batch's header, or a transaction
/// marker.
pub(crate) enum Entry<'a> {
    Record {
        header: &'a BatchHeader,
        key: &'a [u8],
        value: Option<&'a [u8]>,
    },
    Marker {
        header: &'a BatchHeader,
        marker: Marker,
    },
}

/// Calls `f` for every keyed record and every marker of a partition, in offset order.
pub(crate) fn for_each_entry(partition: &Partition, mut f: impl FnMut(Entry<'_>)) -> Result<()> {
    let mut offset = partition.offsets().log_start_offset;
    loop {
        // To the log end: a new leader's log is the truth, committed or not yet.
        let (slice, _) = partition.read(offset, 8 << 20, sluice_log::ReadBound::LogEnd)?;
        let Some(slice) = slice else { return Ok(()) };
        let bytes = slice.read_to_vec()?;
        let mut pos = 0;
        let mut progressed = false;
        while pos + batch::HEADER_SIZE <= bytes.len() {
            let header = BatchHeader::parse(&bytes[pos..]);
            let end = pos + header.size();
            if end > bytes.len() {
                break; // partial batch at the end of the read: read again from it
            }
            if header.is_control() {
                if let Some(marker) = txn::parse_marker(&bytes[pos..end]) {
                    f(Entry::Marker {
                        header: &header,
                        marker,
                    });
                }
            } else {
                for r in batch::uncompressed_records(&bytes[pos..end])? {
                    if let Some(key) = r.key {
                        f(Entry::Record {
                            header: &header,
                            key,
                            value: r.value,
                        });
                    }
                }
            }
            offset = header.last_offset() + 1;
            progressed = true;
            pos = end;
        }
        if !progressed {
            return Err(BrokerError::CorruptMessage(format!(
                "{}-{}: unreadable batch at offset {offset}",
                partition.topic, partition.index
            )));
        }
    }
}

//! Durable share-partition state in `__share_group_state` (compacted, as in Kafka): one
//! snapshot record per (group, topic id, partition), written after every change that must
//! survive a crash (acknowledgements and releases) and read back when a share-partition is
//! first used on a leader. The broker leading the state partition of a key is that key's
//! share coordinator; it keeps the latest snapshots of its state partitions in memory,
//! loaded from the log on first use in each leader epoch.
//!
//! Record layout (big-endian): key = i16 type (0, a snapshot), string group, 16-byte topic
//! id, i32 partition; value = i16 version (0), i32 state epoch, i64 start offset (-1: not
//! initialized), i32 count, then per batch
//! i64 first offset, i64 last offset, i8 state (0 available, 2 acknowledged, 4 archived, as
//! Kafka's RecordState), i16 delivery count. A null value deletes the key.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use crate::coordinated_topic::partition_for;
use crate::error::Result;
use crate::record_fields::{Reader, Writer};
use crate::replica::partition::Partition;

pub use crate::admin::SHARE_STATE_PARTITIONS;

const SNAPSHOT: i16 = 0;

/// What is durable about one share-partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistedState {
    /// Bumped by an administrator's change (AlterShareGroupOffsets, DeleteShareGroupOffsets):
    /// a share-partition leader holding an older epoch is fenced and reads the state again.
    pub state_epoch: i32,
    /// -1: not initialized (a new share-partition starts where `share.auto.offset.reset` says).
    pub start_offset: i64,
    /// Runs of the window that are not "available, never delivered", in offset order.
    pub batches: Vec<StateBatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub state: i8,
    pub delivery_count: i16,
}

pub const STATE_AVAILABLE: i8 = 0;
/// Held by a member when the state was written (read back as available).
pub const STATE_ACQUIRED: i8 = 1;
pub const STATE_ACKNOWLEDGED: i8 = 2;
pub const STATE_ARCHIVED: i8 = 4;

/// (group, topic id, partition).
pub type StateKey = (String, Uuid, i32);

/// A key as FindCoordinator names it (key type 2): Kafka's "group:topicId:partition".
pub fn coordinator_key(key: &StateKey) -> String {
    format!("{}:{}:{}", key.0, key.1, key.2)
}

/// The state partition that holds a key.
pub fn state_partition_of(key: &StateKey) -> i32 {
    state_partition_for(&coordinator_key(key))
}

/// The state partition of a FindCoordinator share key.
pub fn state_partition_for(coordinator_key: &str) -> i32 {
    partition_for(coordinator_key, SHARE_STATE_PARTITIONS)
}

pub fn encode_key(key: &StateKey) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(SNAPSHOT);
    w.string(&key.0);
    w.0.extend_from_slice(key.1.as_bytes());
    w.i32(key.2);
    w.0
}

pub fn encode_value(state: &PersistedState) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(0);
    w.i32(state.state_epoch);
    w.i64(state.start_offset);
    w.i32(state.batches.len() as i32);
    for b in &state.batches {
        w.i64(b.first_offset);
        w.i64(b.last_offset);
        w.0.push(b.state as u8);
        w.i16(b.delivery_count);
    }
    w.0
}

pub fn decode_key(bytes: &[u8]) -> std::result::Result<Option<StateKey>, String> {
    let mut r = Reader(bytes);
    if r.i16()? != SNAPSHOT {
        return Ok(None);
    }
    let group = r.string()?;
    let id = Uuid::from_slice(r.take(16)?).map_err(|e| e.to_string())?;
    Ok(Some((group, id, r.i32()?)))
}

pub fn decode_value(bytes: &[u8]) -> std::result::Result<PersistedState, String> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if version != 0 {
        return Err(format!("unknown share state version {version}"));
    }
    let state_epoch = r.i32()?;
    let start_offset = r.i64()?;
    let count = r.i32()?;
    // Bounded by the bytes present, not by the count the record claims.
    if count < 0 || count as usize > bytes.len() / 19 {
        return Err(format!("bad share state batch count {count}"));
    }
    let mut batches = Vec::with_capacity(count as usize);
    for _ in 0..count {
        batches.push(StateBatch {
            first_offset: r.i64()?,
            last_offset: r.i64()?,
            state: r.take(1)?[0] as i8,
            delivery_count: r.i16()?,
        });
    }
    Ok(PersistedState {
        state_epoch,
        start_offset,
        batches,
    })
}

/// The snapshots of the state partitions this broker leads, by partition, each with the
/// leader epoch it was loaded in (a new epoch loads again: another leader may have written).
#[derive(Default)]
pub struct StateCache {
    loaded: HashMap<i32, (i32, BTreeMap<StateKey, PersistedState>)>,
}

impl StateCache {
    /// The snapshot of `key` held in `partition` (led here, in `leader_epoch`), loading the
    /// partition first if needed (it normally is: the coordinator loads the partitions it
    /// comes to lead, but a new leader epoch here must be read again).
    pub fn get(&mut self, partition: &Partition, key: &StateKey) -> Result<Option<PersistedState>> {
        let epoch = partition.leader_epoch();
        let fresh = self
            .loaded
            .get(&partition.index)
            .is_some_and(|(e, _)| *e == epoch);
        if !fresh {
            let states = read_partition(partition)?;
            tracing::info!(
                partition = partition.index,
                snapshots = states.len(),
                "loaded share group state"
            );
            self.loaded.insert(partition.index, (epoch, states));
        }
        Ok(self.loaded[&partition.index].1.get(key).cloned())
    }

    /// Notes a snapshot written to `partition`.
    pub fn put(&mut self, partition: &Partition, key: StateKey, state: PersistedState) {
        if let Some((epoch, states)) = self.loaded.get_mut(&partition.index) {
            if *epoch == partition.leader_epoch() {
                states.insert(key, state);
            }
        }
    }

    /// Holds the snapshots of partition `index`, read in `leader_epoch`.
    pub fn install(
        &mut self,
        index: i32,
        leader_epoch: i32,
        states: BTreeMap<StateKey, PersistedState>,
    ) {
        self.loaded.insert(index, (leader_epoch, states));
    }

    /// Forgets the partitions this broker no longer leads.
    pub fn drop_partitions(&mut self, lost: &std::collections::BTreeSet<i32>) {
        self.loaded.retain(|index, _| !lost.contains(index));
    }
}

/// Every snapshot a state partition holds, replayed from its log (the last record of a key
/// wins; a tombstone removes it).
pub fn read_partition(partition: &Partition) -> Result<BTreeMap<StateKey, PersistedState>> {
    let mut states = BTreeMap::new();
    crate::coordinated_topic::for_each_record(partition, |k, v| {
        let Ok(Some(key)) = decode_key(k) else {
            return;
        };
        match v.map(decode_value) {
            Some(Ok(state)) => {
                states.insert(key, state);
            }
            None => {
                states.remove(&key);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "skipping an unreadable share state record"),
        }
    })?;
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_bad_ones_are_refused() {
        let key = ("g".to_string(), Uuid::from_u128(7), 3);
        assert_eq!(decode_key(&encode_key(&key)).unwrap(), Some(key));
        let state = PersistedState {
            state_epoch: 3,
            start_offset: 10,
            batches: vec![
                StateBatch {
                    first_offset: 10,
                    last_offset: 12,
                    state: STATE_AVAILABLE,
                    delivery_count: 2,
                },
                StateBatch {
                    first_offset: 13,
                    last_offset: 13,
                    state: STATE_ARCHIVED,
                    delivery_count: 5,
                },
            ],
        };
        let bytes = encode_value(&state);
        assert_eq!(decode_value(&bytes).unwrap(), state);
        assert!(decode_value(&bytes[..bytes.len() - 1]).is_err());
        let mut lying = bytes.clone();
        lying[14..18].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_value(&lying).is_err());
    }

    #[test]
    fn the_cache_holds_what_is_installed_until_its_partition_is_lost() {
        let key = ("g".to_string(), Uuid::from_u128(7), 3);
        let state = PersistedState {
            state_epoch: 2,
            start_offset: 40,
            batches: Vec::new(),
        };
        let mut cache = StateCache::default();
        cache.install(1, 5, BTreeMap::from([(key.clone(), state.clone())]));
        cache.install(2, 5, BTreeMap::new());
        cache.drop_partitions(&std::collections::BTreeSet::from([2]));
        assert_eq!(cache.loaded[&1], (5, BTreeMap::from([(key, state)])));
        assert!(
            !cache.loaded.contains_key(&2),
            "a partition no longer led is forgotten"
        );
    }
}

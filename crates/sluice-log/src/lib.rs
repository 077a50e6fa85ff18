//! sluice-log: the storage engine. Segment files of Kafka record batches stored as sent,
//! sparse offset and time indexes, crash recovery. Knows bytes and offsets, not the network.

pub mod batch;
pub mod cleaner;
pub mod codec;
pub mod epochs;
mod error;
pub mod file_cache;
pub mod fuzzing;
mod index;
mod log;
pub mod producer_state;
pub mod records;
mod segment;
pub mod txn;
pub mod verify;

pub use error::{LogError, RecordError, Result};
pub use log::{
    segment_file_name, sync_filesystem, AppendInfo, Log, LogConfig, LogPosition, PendingWrite,
    PreparedAppend, PreparedReplicated, ReadBound, ReadSlice, RecoveryCheckpoint, ReplicatedWrite,
    StagedClose, TimestampLookup,
};

#[cfg(test)]
mod replication_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;

static CORRUPTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Damaged batches and torn tails found (and cut) by recovery since the process started.
pub fn corruptions_found() -> u64 {
    CORRUPTIONS.load(std::sync::atomic::Ordering::Relaxed)
}

fn note_corruption() {
    CORRUPTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

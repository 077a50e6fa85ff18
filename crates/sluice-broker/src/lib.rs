//! sluice-broker: the broker core. Topics and partitions, the produce and fetch paths,
//! group commit of fsyncs, topic administration. Protocol-neutral: no Kafka wire types.

mod admin;
pub mod auth;
mod broker;
pub mod config;
mod coordinated_topic;
mod elections;
mod error;
pub mod group;
pub mod interfaces;
pub mod isr_tracker;
pub mod listeners;
pub mod metrics;
mod producer_ids;
mod record_fields;
pub mod replica;
pub mod scram_users;
pub mod share;
pub mod txn;

pub use admin::{
    metadata_config_checks, ConfigEntry, ConfigOp, TopicAdmin, MAX_PARTITIONS_PER_TOPIC,
};
pub use broker::{lock_data_dir, Broker};
pub use config::{BrokerConfig, ConfigSource, ConfigType, FlushPolicy};
pub use error::{BrokerError, Result};
pub use producer_ids::{BlockSource, ProducerIds, PRODUCER_ID_BLOCK};
pub use replica::fetch::{fetch, FetchTarget, FetchedPartition};
pub use replica::partition::{FollowerState, IsrProposal, Partition, PartitionOffsets};
pub use replica::produce::{AppendOrigin, PendingAppend};
pub use replica::topic::{
    is_internal_topic, validate_topic_name, Topic, OFFSETS_TOPIC, SHARE_STATE_TOPIC, TXN_TOPIC,
};
pub use replica::{FollowTarget, ReplicaManager};

/// Waits, from synchronous code, for a coordinator call. Embedded calls are ready at once; an
/// etcd call is a network round trip: on a tokio worker thread the worker is handed over
/// first (`block_in_place`), so the runtime's other tasks and its I/O go on meanwhile.
pub(crate) fn wait_for<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll};
    let mut future = std::pin::pin!(future);
    let waker = futures::task::noop_waker();
    if let Poll::Ready(v) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
        return v;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(future))
        }
        _ => futures::executor::block_on(future),
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How many segment files the broker may hold open (the descriptors left for logs).
pub fn set_segment_file_budget(files: usize) {
    sluice_log::file_cache::set_budget(files);
}

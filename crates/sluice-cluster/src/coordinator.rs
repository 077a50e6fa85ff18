//! The coordination service as the broker sees it: it publishes the metadata image, and
//! applies the controller's changes to it. Embedded (one node, the data directory) and etcd
//! (a cluster) implement it; the broker above does not know which it has.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::image::{MetadataChange, MetadataImage};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CoordinatorError {
    /// This broker is not (or no longer) the controller: the write was not made.
    #[error("this broker is not the controller")]
    NotController,
    /// The record changed since the image the change was based on (or, for a create,
    /// already exists): nothing was written.
    #[error("{0}")]
    Conflict(String),
    /// The coordination service cannot be reached or failed: the write may not have happened.
    #[error("coordination service unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Storage(String),
}

/// What `sluice cluster status` and the logs report about the coordination service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorStatus {
    /// "embedded" or "etcd".
    pub kind: &'static str,
    /// Whether the service answers (always true when embedded).
    pub connected: bool,
    /// The last failure, while not connected.
    pub last_error: Option<String>,
    /// Records read from the service that failed their checks and were skipped
    /// (`validate`); always 0 embedded, which reads only what this broker wrote.
    pub skipped_records: u64,
}

pub trait Coordinator: Send + Sync + 'static {
    /// This broker's node id.
    fn node_id(&self) -> i32;

    /// The newest image; a receiver to wait for the next one.
    fn watch(&self) -> watch::Receiver<Arc<MetadataImage>>;

    fn image(&self) -> Arc<MetadataImage> {
        self.watch().borrow().clone()
    }

    /// Whether this broker holds the controller role now.
    fn is_controller(&self) -> bool;

    /// Applies `changes` as one transaction, if this broker is the controller and no record
    /// they replace moved on; answers with an image that includes them.
    fn commit(
        &self,
        changes: Vec<MetadataChange>,
    ) -> BoxFuture<'_, Result<Arc<MetadataImage>, CoordinatorError>>;

    /// Reserves `count` producer ids no other broker will ever give out; returns the first.
    fn allocate_producer_ids(&self, count: i64) -> BoxFuture<'_, Result<i64, CoordinatorError>>;

    fn status(&self) -> CoordinatorStatus;

    /// Leaves the cluster (gives up the controller role and the registration) at shutdown.
    fn leave(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

//! sluice-cluster: what the cluster is and who decides it. The metadata image (brokers, the
//! controller, topics and where their partitions live), the `Coordinator` trait that publishes
//! it and applies the controller's changes, replica placement, and the embedded coordinator of
//! a single node. The etcd coordinator lives in sluice-etcd; both sit behind the same trait,
//! so everything above has one code path.

mod coordinator;
pub mod election;
mod embedded;
mod image;
pub mod placement;
pub mod validate;

pub use coordinator::{Coordinator, CoordinatorError, CoordinatorStatus};
pub use embedded::{new_cluster_id, EmbeddedCoordinator, MetadataFile, TopicRecord};
pub use image::{
    BrokerInfo, Endpoint, MetadataChange, MetadataImage, PartitionMeta, ScramCredential, ScramUser,
    TopicMeta,
};

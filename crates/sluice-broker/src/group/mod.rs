//! Consumer groups (the classic protocol and KIP-848): membership and rebalancing, committed
//! offsets in `__consumer_offsets`, group configs, and the read side (list, describe, lag).
//! `GroupCoordinator` is their room (`Broker::groups`).

pub(crate) mod configs;
mod consumer;
mod consumer_coordinator;
mod coordinator;
pub(crate) mod leadership;
mod offsets;
pub(crate) mod records;
pub(crate) mod share_members;
mod state;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::admin::TopicAdmin;
use crate::config::BrokerConfig;
use crate::coordinated_topic::CoordinatedTopic;
use crate::replica::topic::OFFSETS_TOPIC;
use crate::replica::ReplicaManager;

pub use crate::coordinated_topic::partition_for as offsets_partition_for;
pub use configs::{group_config_def, GROUP_CONFIGS};
pub use consumer::{Assignment, ASSIGNORS};
pub use consumer_coordinator::{
    ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResult, ConsumerMemberDescription,
};
pub use coordinator::{JoinRequest, SyncRequest};
pub use offsets::{
    GroupDescription, GroupListing, MemberDescription, OffsetCommit, PartitionLag, TopicOffsets,
    TxnCommitter,
};
pub use records::CommittedOffset;
pub use state::{JoinOutcome, JoinResult, SyncOutcome};

/// Every group this coordinator knows, by group id.
pub type Groups = HashMap<String, state::Group>;

/// The group coordinator: the groups of the `__consumer_offsets` partitions this broker
/// leads (consumer groups and the membership of share groups), their offsets, and group
/// configs.
pub struct GroupCoordinator {
    pub(crate) config: Arc<BrokerConfig>,
    pub(crate) replicas: Arc<ReplicaManager>,
    pub(crate) admin: Arc<TopicAdmin>,
    /// `__consumer_offsets`: which partitions are led and loaded here.
    pub(crate) offsets: CoordinatedTopic,
    /// Consumer groups, by id; one lock, as group operations are not on the data path.
    pub(crate) groups: Mutex<Groups>,
    /// Share groups' members and assignments (share_members.rs).
    pub(crate) share_groups: Mutex<share_members::ShareGroups>,
}

impl GroupCoordinator {
    pub(crate) fn new(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        admin: Arc<TopicAdmin>,
    ) -> GroupCoordinator {
        GroupCoordinator {
            offsets: CoordinatedTopic::new(OFFSETS_TOPIC, replicas.clone(), admin.clone()),
            config,
            replicas,
            admin,
            groups: Mutex::new(Groups::new()),
            share_groups: Mutex::new(Default::default()),
        }
    }
}

//! Consumer groups (the classic protocol and KIP-848): membership and rebalancing, committed
//! offsets in `__consumer_offsets`, group configs, and the read side (list, describe, lag).
//! `GroupCoordinator` is their room: `Broker::groups()` gives it.

mod configs;
mod consumer;
mod consumer_coordinator;
mod coordinator;
pub(crate) mod leadership;
mod offsets;
pub(crate) mod records;
mod state;

use std::collections::HashMap;

pub use configs::{group_config_def, GROUP_CONFIGS};
pub use consumer::{Assignment, ASSIGNORS};
pub use consumer_coordinator::{
    ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResult, ConsumerMemberDescription,
};
pub use coordinator::{JoinRequest, SyncRequest};
pub use offsets::{
    GroupDescription, GroupListing, MemberDescription, OffsetCommit, PartitionLag, TopicOffsets,
    TxnCommitter, OFFSETS_TOPIC,
};
pub use records::partition_for as offsets_partition_for;
pub use records::CommittedOffset;
pub use state::{JoinOutcome, JoinResult, SyncOutcome};

/// Every group this coordinator knows, by group id.
pub type Groups = HashMap<String, state::Group>;

/// The group coordinator, over the broker's state (its groups, and the offsets partitions it
/// leads).
pub struct GroupCoordinator<'a> {
    pub(crate) broker: &'a crate::broker::Broker,
}

impl crate::broker::Broker {
    pub fn groups(&self) -> GroupCoordinator<'_> {
        GroupCoordinator { broker: self }
    }
}

//! Telling a client where a partition's leader is when it asked the wrong broker (KIP-951):
//! the leader id and epoch for the partition's CurrentLeader field, and the endpoints of the
//! brokers so named, collected once per response.

use std::collections::BTreeMap;

use sluice_broker::BrokerError;
use sluice_cluster::{BrokerInfo, MetadataImage};

/// The brokers a response names as current leaders, by node id.
#[derive(Default)]
pub struct LeaderHints {
    named: BTreeMap<i32, BrokerInfo>,
}

impl LeaderHints {
    /// The (leader id, leader epoch) to tell a client that got `error`, if it names a live
    /// leader; the leader's endpoint is kept for the response.
    pub fn note(&mut self, image: &MetadataImage, error: &BrokerError) -> Option<(i32, i32)> {
        let BrokerError::NotLeaderOrFollower {
            leader,
            leader_epoch,
        } = error
        else {
            return None;
        };
        let broker = image.broker(*leader)?;
        self.named.insert(*leader, broker.clone());
        Some((*leader, *leader_epoch))
    }

    pub fn brokers(self) -> impl Iterator<Item = BrokerInfo> {
        self.named.into_values()
    }
}

//! The controller's election rounds: partitions whose leader's broker is gone get a new
//! leader, gone brokers leave ISRs, offline partitions come back when an in-sync replica does
//! (sluice_cluster::election decides each partition), and, less often, preferred replicas get
//! their leadership back (`auto.leader.rebalance.enable`).

use sluice_cluster::election::{elect, ElectionRules};
use sluice_cluster::{MetadataChange, TopicMeta};
use tracing::{info, warn};

use crate::admin::TopicAdmin;
use crate::config::TopicSettings;
use crate::error::Result;

impl TopicAdmin {
    /// One election round, if this broker is the controller: every change in one commit.
    /// Returns how many topics changed.
    pub fn elect_leaders(&self, preferred: bool) -> Result<usize> {
        let _admin = self.lock.lock();
        if !self.coordinator.is_controller() {
            return Ok(0);
        }
        let image = self.coordinator.image();
        let mut changes = Vec::new();
        for topic in image.topics.values() {
            let settings = TopicSettings {
                overrides: topic.configs.clone(),
            };
            let rules = ElectionRules {
                unclean: settings.unclean_leader_election(&self.config),
                preferred,
            };
            let mut next: Option<TopicMeta> = None;
            for (index, p) in topic.partitions.iter().enumerate() {
                let Some(changed) = elect(&image, p, rules) else {
                    continue;
                };
                if changed.leader != p.leader {
                    if changed.leader == -1 {
                        warn!(topic = %topic.name, partition = index, isr = ?changed.isr, "partition offline: no in-sync replica is alive");
                    } else {
                        info!(topic = %topic.name, partition = index, leader = changed.leader, leader_epoch = changed.leader_epoch, was = p.leader, "elected a leader");
                    }
                }
                next.get_or_insert_with(|| (**topic).clone()).partitions[index] = changed;
            }
            if let Some(next) = next {
                changes.push(MetadataChange::UpdateTopic(next));
            }
        }
        if changes.is_empty() {
            return Ok(0);
        }
        let count = changes.len();
        let image = crate::wait_for(self.coordinator.commit(changes))?;
        drop(_admin);
        self.replicas.apply_image(image)?;
        Ok(count)
    }
}

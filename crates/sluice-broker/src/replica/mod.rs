//! The replica manager: the partitions this broker hosts, kept in step with the metadata
//! image (apply.rs), and the one lookup that answers "the local leader of this partition" or
//! the error a client must see. Its rooms: the leader's write path (produce.rs, then
//! appender.rs and flusher.rs), reads (fetch.rs), the leader's view of its followers
//! (leader.rs), the follower's side (follower.rs), and the periodic upkeep of the logs
//! (upkeep.rs). It knows nothing of coordinators or the Kafka wire.

use std::collections::HashMap;
use std::fs;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use sluice_cluster::MetadataImage;
use tracing::warn;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};

pub(crate) mod appender;
mod apply;
pub(crate) mod fetch;
pub(crate) mod flusher;
mod follower;
pub mod follower_fetcher;
pub(crate) mod header_marks;
mod leader;
pub(crate) mod partition;
pub(crate) mod produce;
pub(crate) mod topic;
mod upkeep;

pub(crate) use apply::Prepared;
pub use follower::FollowTarget;

use appender::Appender;
use flusher::Flusher;
use partition::Partition;
use topic::Topic;

/// A part that follows which partitions this broker leads (a coordinator loading the state
/// of the internal partitions it comes to lead, dropping those it no longer leads).
pub trait LeadershipFollower: Send + Sync {
    /// Called after every applied image, outside the apply lock. An error names a
    /// partition that could not be loaded; the others are.
    fn follow_leadership(&self) -> Result<()>;
}

/// The partitions hosted here and the machinery that writes them.
pub struct ReplicaManager {
    pub(crate) config: Arc<BrokerConfig>,
    /// The image the hosted replicas match (apply.rs).
    image: RwLock<Arc<MetadataImage>>,
    /// The replicas this broker hosts, by topic.
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    /// Serialises image applies, and holds replicas made ahead of the commit placing them.
    pub(crate) apply: Mutex<Prepared>,
    flusher: Flusher,
    appender: Appender,
    /// Set at shutdown; held while recovery points are saved, so the two never overlap.
    logs_closed: Mutex<bool>,
    /// Told after every image is applied: the coordinators, which follow the leadership of
    /// their internal topics' partitions.
    leadership_followers: RwLock<Vec<Weak<dyn LeadershipFollower>>>,
    /// Woken when a follower catches up with a partition this broker leads, so the ISR
    /// tracker adds it without waiting for its next round.
    pub isr_wakeup: tokio::sync::Notify,
}

/// Unlinks deleted segments' files (outside any lock; open readers keep their data).
pub(crate) fn remove_files(files: &[std::path::PathBuf]) {
    for f in files {
        if let Err(e) = fs::remove_file(f) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(file = %f.display(), error = %e, "could not remove a deleted segment's file");
            }
        }
    }
}

impl ReplicaManager {
    /// No replicas yet: `apply_image` opens those the first image places here. Starts the
    /// append and flush threads.
    pub(crate) fn new(config: Arc<BrokerConfig>) -> ReplicaManager {
        let flusher = Flusher::start();
        ReplicaManager {
            config,
            image: RwLock::new(Arc::new(MetadataImage {
                revision: i64::MIN,
                ..Default::default()
            })),
            topics: RwLock::new(HashMap::new()),
            apply: Mutex::new(Prepared::new()),
            flusher: flusher.clone(),
            appender: Appender::start(flusher),
            logs_closed: Mutex::new(false),
            leadership_followers: RwLock::new(Vec::new()),
            isr_wakeup: tokio::sync::Notify::new(),
        }
    }

    /// Tells `follower` of every image applied from now on.
    pub(crate) fn add_leadership_follower(&self, follower: Weak<dyn LeadershipFollower>) {
        self.leadership_followers.write().push(follower);
    }

    /// Makes the hosted replicas match `image` (`apply_image_locked`), then tells the
    /// leadership followers. File work: call it off the async threads.
    pub(crate) fn apply_image(&self, image: Arc<MetadataImage>) -> Result<()> {
        let mut prepared = self.apply.lock();
        self.apply_image_locked(image, &mut prepared);
        drop(prepared);
        // Outside the apply lock: group requests hold the group lock and may append.
        self.tell_leadership_followers()
    }

    /// Lets every leadership follower catch up with the applied image; the first error, if
    /// any, after all have run.
    pub(crate) fn tell_leadership_followers(&self) -> Result<()> {
        let followers: Vec<_> = self
            .leadership_followers
            .read()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut first_error = Ok(());
        for f in followers {
            let result = f.follow_leadership();
            if first_error.is_ok() {
                first_error = result;
            }
        }
        first_error
    }

    /// The image the hosted replicas match: what handlers answer from.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// This broker's registration as the image knows it (`BrokerInfo::incarnation`; 0 when
    /// embedded or not seen yet): the broker epoch its fetches carry.
    pub fn own_registration(&self) -> i64 {
        let image = self.image.read();
        image
            .broker(self.config.node_id)
            .map_or(0, |b| b.incarnation)
    }

    pub fn cluster_id(&self) -> String {
        self.image.read().cluster_id.clone()
    }

    /// The partition if this broker leads it; otherwise the error for the client. With
    /// `leader_epoch` (the request's current leader epoch, -1 for none) a stale or future
    /// epoch is FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH.
    pub fn local_leader(
        &self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
    ) -> Result<Arc<Partition>> {
        let image = self.image();
        let placement = image
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if leader_epoch >= 0 && leader_epoch < placement.leader_epoch {
            return Err(BrokerError::FencedLeaderEpoch(leader_epoch));
        }
        if leader_epoch > placement.leader_epoch {
            return Err(BrokerError::UnknownLeaderEpoch(leader_epoch));
        }
        if placement.leader == self.config.node_id && !image.leads(placement, self.config.node_id) {
            // Restarted since elected: the controller elects it again in a new epoch.
            return Err(BrokerError::LeaderNotAvailable);
        }
        if placement.leader != self.config.node_id {
            return Err(if image.brokers.contains_key(&placement.leader) {
                BrokerError::NotLeaderOrFollower {
                    leader: placement.leader,
                    leader_epoch: placement.leader_epoch,
                }
            } else {
                BrokerError::LeaderNotAvailable
            });
        }
        self.topic(topic)
            .and_then(|t| t.partition(partition).cloned())
            .ok_or(BrokerError::NotLeaderOrFollower {
                leader: -1,
                leader_epoch: placement.leader_epoch,
            })
    }

    /// A replica hosted here that a consumer may read (KIP-392): the leader's, or, while the
    /// partition has a live leader, a follower's (read to its high watermark, which is the
    /// leader's as of its last fetch). Epochs are checked as in `local_leader`.
    pub fn local_replica(
        &self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
    ) -> Result<Arc<Partition>> {
        match self.local_leader(topic, partition, leader_epoch) {
            Err(e @ BrokerError::NotLeaderOrFollower { .. }) => self
                .topic(topic)
                .and_then(|t| t.partition(partition).cloned())
                .ok_or(e),
            other => other,
        }
    }

    /// KIP-392: the in-sync replica a consumer in `rack` should read from, if the rack-aware
    /// selector is on and that is not this leader (None: read here).
    pub fn preferred_read_replica(&self, topic: &str, partition: i32, rack: &str) -> Option<i32> {
        if !self.config.rack_aware_replica_selector() {
            return None;
        }
        let image = self.image();
        let p = image.topic(topic)?.partition(partition)?;
        let me = self.config.node_id;
        if p.leader != me {
            return None; // a follower serves what it is asked
        }
        let in_rack = |id: i32| {
            image
                .broker(id)
                .is_some_and(|b| b.rack.as_deref() == Some(rack))
        };
        if in_rack(me) {
            return None;
        }
        p.isr.iter().copied().find(|&r| r != me && in_rack(r))
    }

    /// Flush requests made and fsyncs done so far (group commit makes the second smaller).
    pub fn flush_stats(&self) -> &crate::replica::flusher::FlushStats {
        self.flusher.stats()
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.topics.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

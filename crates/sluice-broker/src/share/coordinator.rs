//! The share coordinator: where a share-partition's state is made durable, the broker
//! leading the key's `__share_group_state` partition. The share-partition leader writes there itself
//! when it is that broker, and otherwise asks it over the network (ReadShareGroupState and
//! WriteShareGroupState, through `ShareStateRemote`, which the Kafka front end provides).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sluice_cluster::BrokerInfo;

use parking_lot::Mutex;

use super::state::{self, PersistedState, StateCache, StateKey};
use crate::admin::TopicAdmin;
use crate::config::BrokerConfig;
use crate::coordinated_topic::CoordinatedTopic;
use crate::error::{BrokerError, Result};
use crate::replica::partition::Partition;
use crate::replica::topic::Topic;
use crate::replica::topic::SHARE_STATE_TOPIC;
use crate::replica::{LeadershipFollower, ReplicaManager};

/// How long a share state write waits for the state partition's in-sync replicas.
const STATE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The network side of share groups: state for keys another broker coordinates, and
/// membership kept by another broker's group coordinator.
pub trait ShareStateRemote: Send + Sync {
    /// Whether the group coordinator `to` knows `member` of share group `group`
    /// (ShareGroupDescribe).
    fn is_member(
        &self,
        to: BrokerInfo,
        group: String,
        member: String,
    ) -> BoxFuture<'_, Result<bool>>;
    fn read(&self, to: BrokerInfo, key: StateKey) -> BoxFuture<'_, Result<Option<PersistedState>>>;
    fn write(
        &self,
        to: BrokerInfo,
        key: StateKey,
        state: PersistedState,
    ) -> BoxFuture<'_, Result<()>>;
    /// Asks the controller to create `__share_group_state` (a share coordinator lookup).
    fn create_state_topic(&self) -> BoxFuture<'_, Result<()>>;
    /// Writes `batch` to a partition led by `to`, acks=all (dead letters for a topic whose
    /// partitions are led elsewhere).
    fn produce(
        &self,
        to: BrokerInfo,
        topic: String,
        partition: i32,
        batch: bytes::Bytes,
    ) -> BoxFuture<'_, Result<()>>;
}

/// Where a key's state partition is led.
enum Place {
    Here(Arc<Partition>),
    At(BrokerInfo),
}

/// The share coordinator: the snapshots of the `__share_group_state` partitions this
/// broker leads, and the way to the share coordinators on other brokers.
pub struct ShareCoordinator {
    config: Arc<BrokerConfig>,
    replicas: Arc<ReplicaManager>,
    state_topic: CoordinatedTopic,
    /// The snapshots of the `__share_group_state` partitions this broker leads.
    cache: Mutex<StateCache>,
    remote: std::sync::OnceLock<Arc<dyn ShareStateRemote>>,
}

impl ShareCoordinator {
    pub(crate) fn new(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        admin: Arc<TopicAdmin>,
    ) -> ShareCoordinator {
        ShareCoordinator {
            state_topic: CoordinatedTopic::new(SHARE_STATE_TOPIC, replicas.clone(), admin),
            config,
            replicas,
            cache: Mutex::new(StateCache::default()),
            remote: std::sync::OnceLock::new(),
        }
    }

    /// How this broker reaches share coordinators on other brokers.
    pub fn set_share_state_remote(&self, remote: Arc<dyn ShareStateRemote>) {
        let _ = self.remote.set(remote);
    }

    /// `__share_group_state`, created on first use with the broker's settings.
    pub fn state_topic(&self) -> Result<Arc<Topic>> {
        self.state_topic.topic()
    }

    /// The persisted state of a share-partition, from its share coordinator.
    pub async fn load_share_state(&self, key: &StateKey) -> Result<Option<PersistedState>> {
        match self.place_of(key).await? {
            Place::Here(partition) => self.cache.lock().get(&partition, key),
            Place::At(coordinator) => self.remote()?.read(coordinator, key.clone()).await,
        }
    }

    /// Makes a share-partition's snapshot durable at its share coordinator (acks=all there).
    pub async fn store_share_state(&self, key: &StateKey, snapshot: PersistedState) -> Result<()> {
        match self.place_of(key).await? {
            Place::Here(_) => self.coordinator_write_share_state(key, snapshot).await,
            Place::At(coordinator) => {
                self.remote()?
                    .write(coordinator, key.clone(), snapshot)
                    .await
            }
        }
    }

    /// The share coordinator's ReadShareGroupState: NOT_COORDINATOR unless this broker leads
    /// the key's state partition.
    pub fn coordinator_read_share_state(&self, key: &StateKey) -> Result<Option<PersistedState>> {
        let partition = self.coordinated_partition(key)?;
        self.cache.lock().get(&partition, key)
    }

    /// The share coordinator's WriteShareGroupState: appends the snapshot and waits until
    /// the state partition's in-sync replicas have it.
    pub async fn coordinator_write_share_state(
        &self,
        key: &StateKey,
        snapshot: PersistedState,
    ) -> Result<()> {
        let partition = self.coordinated_partition(key)?;
        let (k, v) = (state::encode_key(key), state::encode_value(&snapshot));
        let batch = sluice_log::batch::build_batch(
            crate::now_ms(),
            &[(Some(k.as_slice()), Some(v.as_slice()))],
        );
        let pending = {
            // Appended under the cache's lock, so the log and the cache agree on the order.
            let mut cache = self.cache.lock();
            // A leader still holding the state an administrator replaced may not write.
            if cache
                .get(&partition, key)?
                .is_some_and(|current| current.state_epoch > snapshot.state_epoch)
            {
                return Err(BrokerError::FencedStateEpoch);
            }
            let pending = self.replicas.append(
                &partition,
                batch.into(),
                -1,
                crate::AppendOrigin::Coordinator,
            )?;
            cache.put(&partition, key.clone(), snapshot);
            pending
        };
        pending.wait(STATE_WRITE_TIMEOUT).await.map(|_| ())
    }

    fn coordinated_partition(&self, key: &StateKey) -> Result<Arc<Partition>> {
        self.state_topic
            .partition_at(state::state_partition_of(key))
    }

    async fn place_of(&self, key: &StateKey) -> Result<Place> {
        if self.replicas.topic(SHARE_STATE_TOPIC).is_none() {
            match self.state_topic() {
                Ok(_) => {}
                // Not the controller: ask it, and let the client retry meanwhile.
                Err(BrokerError::CoordinatorNotAvailable) if self.remote.get().is_some() => {
                    self.remote()?.create_state_topic().await?;
                    return Err(BrokerError::CoordinatorNotAvailable);
                }
                Err(e) => return Err(e),
            }
        }
        let index = state::state_partition_of(key);
        let leader = self.state_topic.coordinator_at(index)?;
        if leader.node_id == self.config.node_id {
            Ok(Place::Here(self.coordinated_partition(key)?))
        } else {
            Ok(Place::At(leader))
        }
    }

    pub(crate) fn remote(&self) -> Result<&Arc<dyn ShareStateRemote>> {
        self.remote
            .get()
            .ok_or(BrokerError::CoordinatorNotAvailable)
    }
}

impl LeadershipFollower for ShareCoordinator {
    /// Loads the snapshots of the state partitions this broker comes to lead and forgets
    /// those of partitions it no longer leads.
    fn follow_leadership(&self) -> Result<()> {
        self.state_topic.follow_leadership(
            "share group state",
            |lost, _| self.cache.lock().drop_partitions(lost),
            |partition| {
                let states = state::read_partition(partition)?;
                Ok((partition.index, partition.leader_epoch(), states))
            },
            |(index, epoch, states)| {
                let n = states.len();
                self.cache.lock().install(index, epoch, states);
                n
            },
        )
    }
}

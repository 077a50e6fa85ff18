//! The broker: the composition root that opens the parts (the replica manager, topic
//! admin, producer ids, the group, transaction and share coordinators), applies the metadata
//! image to them and runs their background work.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_cluster::{Coordinator, EmbeddedCoordinator};
use tracing::{info, warn};

use crate::admin::TopicAdmin;
use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::group::GroupCoordinator;
use crate::producer_ids::ProducerIds;
use crate::replica::{LeadershipFollower, ReplicaManager};
use crate::share::{ShareCoordinator, SharePartitionManager};
use crate::txn::TransactionCoordinator;

/// Takes the data directory for this process: a second broker on it is refused.
pub fn lock_data_dir(dir: &std::path::Path) -> Result<fs::File> {
    fs::create_dir_all(dir)?;
    let lock = fs::File::create(dir.join(".lock"))?;
    if lock.try_lock().is_err() {
        return Err(BrokerError::Storage(format!(
            "data directory {} is in use by another broker",
            dir.display()
        )));
    }
    Ok(lock)
}

/// How often group sessions and rebalance deadlines are checked.
const GROUP_TIMER_TICK: Duration = Duration::from_millis(100);

pub struct Broker {
    pub config: Arc<BrokerConfig>,
    /// Publishes the metadata image and applies the controller's changes (embedded or etcd).
    pub(crate) coordinator: Arc<dyn Coordinator>,
    /// The partitions hosted here, their write path and the replication between brokers.
    pub replicas: Arc<ReplicaManager>,
    /// Topic administration, the controller's metadata changes.
    pub admin: Arc<TopicAdmin>,
    /// InitProducerId's producer ids, from blocks the coordinator reserves.
    pub producer_ids: Arc<ProducerIds>,
    /// The group coordinator: consumer groups, share group membership, offsets.
    pub groups: Arc<GroupCoordinator>,
    /// Share groups (queues) on the leaders of their partitions: share sessions and
    /// share-partitions.
    pub shares: Arc<SharePartitionManager>,
    /// The share coordinator: share-partitions' durable state.
    pub share_coordinator: Arc<ShareCoordinator>,
    /// The transaction coordinator (txn/).
    pub transactions: Arc<TransactionCoordinator>,
    /// Held for the broker's lifetime: a second broker on the same directory is refused.
    _dir_lock: fs::File,
}

/// Gives memory the allocator holds but no longer uses back to the system. glibc keeps
/// freed request buffers of a few MB in its heap (its mmap threshold rises with them), so a
/// burst of large requests would otherwise leave the broker's resident size high after it.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How often the controller looks for partitions whose leader or in-sync replicas are gone.
const ELECTION_ROUND: Duration = Duration::from_millis(250);

/// How often share-partitions release expired locks and persist what no acknowledgement
/// wrote (acquisitions, raised delivery counts) when nobody fetches.
const SHARE_STATE_REFRESH: Duration = Duration::from_secs(1);
/// How often the transaction coordinator looks for prepared transactions to finish.
const TRANSACTION_ROUND: Duration = Duration::from_millis(100);
/// How often segment files are checked for idleness, and how long unused before closed.
const SEGMENT_FILE_SWEEP: Duration = Duration::from_secs(10);
const SEGMENT_FILE_IDLE: Duration = Duration::from_secs(60);

impl Broker {
    /// Opens a single node: the embedded coordinator keeps its metadata in the data directory.
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>> {
        let dir_lock = lock_data_dir(&config.data_dir)?;
        let coordinator = EmbeddedCoordinator::open(&config.data_dir, config.broker_info())
            .map_err(BrokerError::Storage)?;
        Broker::open_with(config, dir_lock, Arc::new(coordinator))
    }

    /// Opens the data directory (locked by `lock_data_dir`) as one broker of the cluster that
    /// `coordinator` describes: the replicas placed here are opened (recovering after a
    /// crash), directories of replicas no longer placed here are removed.
    pub fn open_with(
        config: BrokerConfig,
        dir_lock: fs::File,
        coordinator: Arc<dyn Coordinator>,
    ) -> Result<Arc<Broker>> {
        let config = Arc::new(config);
        let replicas = Arc::new(ReplicaManager::new(config.clone()));
        let admin = Arc::new(TopicAdmin {
            config: config.clone(),
            coordinator: coordinator.clone(),
            replicas: replicas.clone(),
            lock: Mutex::new(()),
        });
        let groups = Arc::new(GroupCoordinator::new(
            config.clone(),
            replicas.clone(),
            admin.clone(),
        ));
        let producer_ids = Arc::new(ProducerIds::new(coordinator.clone()));
        let transactions = Arc::new(TransactionCoordinator::new(
            config.clone(),
            replicas.clone(),
            admin.clone(),
            groups.clone(),
            producer_ids.clone(),
        ));
        let share_coordinator = Arc::new(ShareCoordinator::new(
            config.clone(),
            replicas.clone(),
            admin.clone(),
        ));
        let shares = Arc::new(SharePartitionManager::new(
            replicas.clone(),
            groups.clone(),
            share_coordinator.clone(),
        ));
        let followers: [Arc<dyn LeadershipFollower>; 3] = [
            groups.clone(),
            transactions.clone(),
            share_coordinator.clone(),
        ];
        for f in &followers {
            replicas.add_leadership_follower(Arc::downgrade(f));
        }
        let broker = Arc::new(Broker {
            admin,
            groups,
            replicas,
            config,
            coordinator: coordinator.clone(),
            shares,
            share_coordinator,
            transactions,
            producer_ids,
            _dir_lock: dir_lock,
        });
        // Hosted replicas first, then the groups of the offsets partitions led here.
        broker.replicas.apply_image(broker.coordinator.image())?;
        broker.replicas.remove_orphan_dirs();
        info!(topics = broker.replicas.topics().len(), cluster_id = %broker.replicas.cluster_id(), "broker state loaded");
        Ok(broker)
    }

    /// Whether this broker is the controller, which alone changes metadata.
    pub fn is_controller(&self) -> bool {
        self.coordinator.is_controller()
    }

    pub fn coordinator_status(&self) -> sluice_cluster::CoordinatorStatus {
        self.coordinator.status()
    }

    /// Follows the coordinator's images until the broker is dropped: each is applied to the
    /// hosted replicas (on the blocking pool: it opens and deletes files). The image current
    /// when following starts is applied first: one published since the broker opened (this
    /// broker's own registration, say) would otherwise wait for the next change, which a
    /// quiet cluster may not make.
    fn follow_images(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let mut images = self.coordinator.watch();
        tokio::spawn(async move {
            loop {
                let image = images.borrow_and_update().clone();
                let Some(broker) = weak.upgrade() else { return };
                let applied =
                    tokio::task::spawn_blocking(move || broker.replicas.apply_image(image)).await;
                if let Ok(Err(e)) = applied {
                    warn!(error = %e, "applying the metadata image");
                }
                if images.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Starts the background work: relaxed-policy flushes, group session and rebalance
    /// timers, offset expiry. Each task ends when the broker is dropped.
    pub fn spawn_background_tasks(self: &Arc<Self>) {
        self.follow_images();
        let ms = Duration::from_millis;
        self.every(ms(self.config.flush_scheduler_interval_ms()), false, |b| {
            b.replicas.flush_due_partitions()
        });
        self.every(GROUP_TIMER_TICK, false, |b| b.groups.expire_group_timers());
        self.every(
            ms(self.config.offsets_retention_check_interval_ms()),
            false,
            |b| b.groups.expire_offsets(),
        );
        self.every(ms(self.config.retention_check_interval_ms()), false, |b| {
            b.replicas.apply_retention()
        });
        // The controller's elections wait for etcd: on blocking threads.
        self.every(ELECTION_ROUND, true, |b| {
            if let Err(e) = b.admin.elect_leaders(false) {
                warn!(error = %e, "leader election round failed");
            }
        });
        if self.config.auto_leader_rebalance() {
            self.every(self.config.leader_imbalance_check_interval(), true, |b| {
                if let Err(e) = b.admin.elect_leaders(true) {
                    warn!(error = %e, "preferred leader round failed");
                }
            });
        }
        // These read and write whole files: keep them off the async workers.
        self.every(
            ms(self.config.recovery_checkpoint_interval_ms()),
            true,
            |b| b.replicas.checkpoint_recovery_points(),
        );
        self.every(ms(self.config.cleaner_backoff_ms()), true, |b| {
            b.replicas.compact_all()
        });
        self.persist_share_partitions_every(SHARE_STATE_REFRESH);
        self.drive_transactions_every(
            TRANSACTION_ROUND,
            ms(self.config.transaction_abort_interval_ms()),
        );
        self.every(SEGMENT_FILE_SWEEP, false, |_| {
            sluice_log::file_cache::close_idle(SEGMENT_FILE_IDLE.as_millis() as i64);
            release_free_memory();
        });
    }

    /// Share-partitions' periodic pass (`persist_share_partitions`), one at a time.
    fn persist_share_partitions_every(self: &Arc<Self>, period: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(broker) = weak.upgrade() else { return };
                broker.shares.persist_share_partitions().await;
            }
        });
    }

    /// The transaction coordinator's pass (`drive_transactions`) every `period`, aborting
    /// timed-out transactions every `abort_period`.
    fn drive_transactions_every(self: &Arc<Self>, period: Duration, abort_period: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_abort = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                let Some(broker) = weak.upgrade() else { return };
                let abort = last_abort.elapsed() >= abort_period;
                if abort {
                    last_abort = tokio::time::Instant::now();
                }
                broker.transactions.drive_transactions(abort);
            }
        });
    }

    /// Runs `work` every `period` until the broker is dropped, on a blocking thread if asked.
    fn every(self: &Arc<Self>, period: Duration, blocking: bool, work: fn(&Broker)) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            // The first run is one period after start, not at start: a broker with many
            // partitions should not begin with every periodic job at once.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tick.tick().await;
                let Some(broker) = weak.upgrade() else { return };
                if blocking {
                    let _ = tokio::task::spawn_blocking(move || work(&broker)).await;
                } else {
                    work(&broker);
                }
            }
        });
    }

    /// Syncs and closes every log, leaving clean-shutdown markers.
    pub fn shutdown(&self) {
        self.replicas.close_logs();
    }

    /// Leaves the cluster: the registration (and the controller role, if held) goes at once,
    /// so the others need not wait for it to expire.
    pub async fn leave_cluster(&self) {
        self.coordinator.leave().await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;

    pub(crate) fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let config = BrokerConfig::new(
            1,
            "127.0.0.1:0".parse().unwrap(),
            ("localhost".into(), 0),
            dir.to_path_buf(),
            BTreeMap::new(),
        )
        .unwrap();
        Broker::open(config).unwrap()
    }
}

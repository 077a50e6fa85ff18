//! The broker core: the topic registry, opening and closing logs, and the flush scheduler.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use sluice_cluster::{Coordinator, EmbeddedCoordinator, MetadataImage};
use sluice_log::Log;
use tracing::{info, warn};
use uuid::Uuid;

use crate::appender::Appender;
use crate::config::{BrokerConfig, FlushPolicy, TopicSettings};
use crate::error::{BrokerError, Result};
use crate::flusher::Flusher;
use crate::partition::Partition;
use crate::producer_ids::ProducerIds;
use crate::replicas::Prepared;
use crate::topic::{partition_dir, Topic};

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
    pub config: BrokerConfig,
    /// Publishes the metadata image and applies the controller's changes (embedded or etcd).
    pub(crate) coordinator: Arc<dyn Coordinator>,
    /// The image the hosted replicas match (replicas.rs).
    pub(crate) image: RwLock<Arc<MetadataImage>>,
    /// The replicas this broker hosts, by topic.
    pub(crate) topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    /// Serialises image applies, and holds replicas made ahead of the commit placing them.
    pub(crate) apply: Mutex<Prepared>,
    /// Serialises the controller's metadata changes (topic admin, group configs).
    pub(crate) admin_lock: Mutex<()>,
    pub(crate) flusher: Flusher,
    pub(crate) appender: Appender,
    /// Set at shutdown; held while recovery points are saved, so the two never overlap.
    logs_closed: Mutex<bool>,
    /// InitProducerId's producer ids, from blocks the coordinator reserves.
    pub producer_ids: ProducerIds,
    /// Consumer groups (`groups()` works on them); one lock, as group operations are not on
    /// the data path.
    pub(crate) group_state: Mutex<crate::group::Groups>,
    /// Share groups (queues): membership, share sessions and share-partitions.
    pub(crate) shares: crate::share::Shares,
    /// The `__consumer_offsets` partitions whose groups are in `group_state` (those this
    /// broker leads), and those being loaded (group/leadership.rs).
    pub(crate) offsets_led: Mutex<std::collections::BTreeSet<i32>>,
    pub(crate) offsets_loading: RwLock<std::collections::BTreeSet<i32>>,
    /// The transaction coordinator's state (txn/).
    pub(crate) txns: crate::txn::Transactions,
    /// Woken when a follower catches up with a partition this broker leads, so the ISR
    /// tracker adds it without waiting for its next round.
    pub isr_wakeup: tokio::sync::Notify,
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
        let flusher = Flusher::start();
        let broker = Broker {
            config,
            image: RwLock::new(Arc::new(MetadataImage {
                revision: i64::MIN,
                ..Default::default()
            })),
            coordinator: coordinator.clone(),
            topics: RwLock::new(HashMap::new()),
            apply: Mutex::new(Prepared::new()),
            admin_lock: Mutex::new(()),
            flusher: flusher.clone(),
            appender: Appender::start(flusher),
            logs_closed: Mutex::new(false),
            group_state: Mutex::new(Default::default()),
            shares: Default::default(),
            offsets_led: Mutex::new(Default::default()),
            offsets_loading: RwLock::new(Default::default()),
            txns: Default::default(),
            producer_ids: ProducerIds::new(coordinator.clone()),
            isr_wakeup: tokio::sync::Notify::new(),
            _dir_lock: dir_lock,
        };
        // Hosted replicas first, then the groups of the offsets partitions led here.
        broker.apply_image(broker.coordinator.image())?;
        broker.remove_orphan_dirs(&broker.topics.read());
        info!(topics = broker.topics.read().len(), cluster_id = %broker.cluster_id(), "broker state loaded");
        Ok(Arc::new(broker))
    }

    /// Creates the logs of new partitions `indexes` of a topic. If one fails, the
    /// directories made so far are removed: a failed create leaves nothing behind.
    pub(crate) fn create_partitions_files(
        &self,
        topic: &Arc<str>,
        indexes: &[i32],
        settings: &TopicSettings,
    ) -> Result<Vec<Arc<Partition>>> {
        let mut created = Vec::with_capacity(indexes.len());
        for (i, &index) in indexes.iter().enumerate() {
            match self.open_partition(topic, index, settings) {
                Ok(p) => created.push(p),
                Err(e) => {
                    drop(created);
                    for &index in &indexes[..=i] {
                        let _ =
                            fs::remove_dir_all(partition_dir(&self.config.data_dir, topic, index));
                    }
                    warn!(%topic, partition = index, error = %e, "could not create a partition; removed the new ones");
                    return Err(e);
                }
            }
        }
        Ok(created)
    }

    pub(crate) fn open_partition(
        &self,
        topic: &Arc<str>,
        index: i32,
        settings: &TopicSettings,
    ) -> Result<Arc<Partition>> {
        let dir = partition_dir(&self.config.data_dir, topic, index);
        let log = Log::open(&dir, settings.log_config(&self.config), crate::now_ms())?;
        Ok(Arc::new(Partition::new(
            topic.clone(),
            index,
            log,
            settings.flush_policy(&self.config),
        )))
    }

    /// Deletes partition directories left by a topic deletion that a crash interrupted.
    fn remove_orphan_dirs(&self, topics: &HashMap<Arc<str>, Arc<Topic>>) {
        let Ok(entries) = fs::read_dir(&self.config.data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some((topic, partition)) = name.rsplit_once('-') else {
                continue;
            };
            let Ok(partition) = partition.parse::<i32>() else {
                continue;
            };
            let known = topics
                .get(topic)
                .is_some_and(|t| t.partition(partition).is_some());
            if !known && entry.path().is_dir() {
                warn!(dir = %name, "removing the directory of a deleted topic");
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Flush requests made and fsyncs done so far (group commit makes the second smaller).
    pub fn flush_stats(&self) -> &crate::flusher::FlushStats {
        self.flusher.stats()
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    /// Whether this broker is the controller, which alone changes metadata.
    pub fn is_controller(&self) -> bool {
        self.coordinator.is_controller()
    }

    pub fn coordinator_status(&self) -> sluice_cluster::CoordinatorStatus {
        self.coordinator.status()
    }

    /// Follows the coordinator's images until the broker is dropped: each is applied to the
    /// hosted replicas (on the blocking pool: it opens and deletes files).
    fn follow_images(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let mut images = self.coordinator.watch();
        tokio::spawn(async move {
            while images.changed().await.is_ok() {
                let image = images.borrow_and_update().clone();
                let Some(broker) = weak.upgrade() else { return };
                let applied = tokio::task::spawn_blocking(move || broker.apply_image(image)).await;
                if let Ok(Err(e)) = applied {
                    warn!(error = %e, "applying the metadata image");
                }
            }
        });
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.topics.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Starts the background work: relaxed-policy flushes, group session and rebalance
    /// timers, offset expiry. Each task ends when the broker is dropped.
    pub fn spawn_background_tasks(self: &Arc<Self>) {
        self.follow_images();
        let ms = Duration::from_millis;
        self.every(ms(self.config.flush_scheduler_interval_ms()), false, |b| {
            b.flush_due_partitions()
        });
        self.every(GROUP_TIMER_TICK, false, |b| {
            b.groups().expire_group_timers()
        });
        self.every(
            ms(self.config.offsets_retention_check_interval_ms()),
            false,
            |b| b.groups().expire_offsets(),
        );
        self.every(ms(self.config.retention_check_interval_ms()), false, |b| {
            b.apply_retention()
        });
        // The controller's elections wait for etcd: on blocking threads.
        self.every(ELECTION_ROUND, true, |b| {
            if let Err(e) = b.admin().elect_leaders(false) {
                warn!(error = %e, "leader election round failed");
            }
        });
        if self.config.auto_leader_rebalance() {
            self.every(self.config.leader_imbalance_check_interval(), true, |b| {
                if let Err(e) = b.admin().elect_leaders(true) {
                    warn!(error = %e, "preferred leader round failed");
                }
            });
        }
        // These read and write whole files: keep them off the async workers.
        self.every(
            ms(self.config.recovery_checkpoint_interval_ms()),
            true,
            |b| b.checkpoint_recovery_points(),
        );
        self.every(ms(self.config.cleaner_backoff_ms()), true, |b| {
            b.compact_all()
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
                broker.persist_share_partitions().await;
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
                broker.drive_transactions(abort);
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

    /// Deletes segments past their topic's retention (cleanup.policy with `delete`).
    pub fn apply_retention(&self) {
        let now = crate::now_ms();
        for topic in self.topics() {
            let Some((ms, bytes)) = topic.settings.retention(&self.config) else {
                continue;
            };
            for p in &topic.partitions {
                let files = p.log().apply_retention(now, ms, bytes);
                remove_files(&files);
            }
        }
    }

    /// Saves each partition's recovery point (taken under its lock, written outside it).
    /// Saves every partition's recovery point: every file written in place, then one
    /// filesystem sync (a sync per partition would be thousands of journal commits).
    pub fn checkpoint_recovery_points(&self) {
        let closed = self.logs_closed.lock();
        if *closed {
            return;
        }
        let mut written = 0;
        for topic in self.topics() {
            for p in &topic.partitions {
                let checkpoint = p.log().recovery_checkpoint();
                match checkpoint.map(|c| c.write_unsynced()) {
                    Some(Ok(())) => written += 1,
                    Some(Err(e)) => {
                        warn!(topic = %topic.name, partition = p.index, error = %e, "could not save the recovery point")
                    }
                    None => {}
                }
            }
        }
        if written > 0 {
            if let Err(e) = sluice_log::sync_filesystem(&self.config.data_dir) {
                warn!(error = %e, "could not sync the recovery points");
            }
        }
    }

    /// One compaction pass over every partition of compacted topics, a partition at a time,
    /// the heavy work outside the partition's lock.
    pub fn compact_all(&self) {
        for topic in self.topics() {
            let Some(config) = topic.settings.cleaner(&self.config) else {
                continue;
            };
            for p in &topic.partitions {
                let now = crate::now_ms();
                let Some(plan) = p.log().plan_cleaning(now, &config) else {
                    continue;
                };
                let started = std::time::Instant::now();
                match sluice_log::cleaner::clean(&plan, &config, now) {
                    Ok(cleaned) => {
                        let (before, after, skipped): (u64, u64, u64) =
                            cleaned.iter().fold((0, 0, 0), |(b, a, s), c| {
                                (
                                    b + c.records_before,
                                    a + c.records_after,
                                    s + c.skipped_batches,
                                )
                            });
                        let bytes: u64 = plan.segments.iter().map(|s| s.size).sum();
                        if let Err(e) = p.log().install_cleaned(cleaned, now) {
                            warn!(topic = %topic.name, partition = p.index, error = %e, "could not install cleaned segments");
                            continue;
                        }
                        info!(
                            topic = %topic.name, partition = p.index, records_before = before, records_after = after, skipped_batches = skipped,
                            mb_per_s = bytes as f64 / 1e6 / started.elapsed().as_secs_f64().max(1e-6),
                            "compacted"
                        );
                    }
                    Err(e) => {
                        warn!(topic = %topic.name, partition = p.index, error = %e, "compaction failed")
                    }
                }
            }
        }
    }

    /// DeleteRecords: moves a partition's log start to `offset` (-1: the high watermark).
    /// Returns the new low watermark.
    pub fn delete_records(&self, partition: &Partition, offset: i64) -> Result<i64> {
        if crate::topic::is_internal_topic(&partition.topic) {
            return Err(BrokerError::InvalidTopic(format!(
                "cannot delete records of internal topic {}",
                partition.topic
            )));
        }
        let (files, low) = {
            let mut log = partition.log();
            let target = if offset == -1 {
                log.high_watermark()
            } else {
                offset
            };
            let files = log.advance_log_start(target)?;
            (files, log.log_start_offset())
        };
        remove_files(&files);
        Ok(low)
    }

    /// Requests flushes of partitions whose relaxed policy's `flush.ms` has passed.
    fn flush_due_partitions(&self) {
        let now = crate::now_ms();
        for topic in self.topics() {
            for p in &topic.partitions {
                if let FlushPolicy::Interval { ms, .. } = p.flush_policy() {
                    let end = p.log().end();
                    if end.offset > p.log().flushed_offset() && p.ms_since_flush(now) >= ms {
                        p.flush_requested(now);
                        self.flusher.request(p.clone(), end, None);
                    }
                }
            }
        }
    }

    /// Leaves the cluster: the registration (and the controller role, if held) goes at once,
    /// so the others need not wait for it to expire.
    pub async fn leave_cluster(&self) {
        self.coordinator.leave().await;
    }

    /// Syncs and closes every log, leaving clean-shutdown markers.
    pub fn shutdown(&self) {
        // Appends already accepted reach their logs before the logs close, and no checkpoint
        // runs while they close.
        self.appender.drain();
        let mut closed = self.logs_closed.lock();
        *closed = true;
        // Closing log by log would sync several files each: with 10,000 partitions, minutes
        // of journal commits. Instead every log stages its files, one filesystem sync makes
        // them all durable, and a second one the clean-shutdown markers.
        let mut staged = Vec::new();
        for topic in self.topics() {
            for p in &topic.partitions {
                match p.log().close_staged() {
                    Ok(s) => staged.push(s),
                    Err(e) => {
                        warn!(topic = %topic.name, partition = p.index, error = %e, "closing log")
                    }
                }
            }
        }
        let data_dir = &self.config.data_dir;
        if let Err(e) = sluice_log::sync_filesystem(data_dir) {
            warn!(error = %e, "sync at shutdown failed: logs will be recovered at the next start");
            return;
        }
        let mut closed = 0;
        for s in staged {
            match s.finish() {
                Ok(()) => closed += 1,
                Err(e) => warn!(error = %e, "marking a log clean"),
            }
        }
        if let Err(e) = sluice_log::sync_filesystem(data_dir) {
            warn!(error = %e, "sync at shutdown failed");
        }
        info!(partitions = closed, "logs closed");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::Ordering;

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

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_appends_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path());
        let topic = broker
            .admin()
            .create_topic("gc", 1, 1, BTreeMap::new(), false)
            .unwrap();
        let p = topic.partitions[0].clone();
        let batch = sluice_log::batch::build_batch(1, &[(None, Some(b"v"))]);
        let pending: Vec<_> = (0..200)
            .map(|_| {
                broker
                    .append(&p, batch.clone().into(), -1, crate::AppendOrigin::Client)
                    .unwrap()
            })
            .collect();
        let mut offsets = Vec::new();
        for w in pending {
            offsets.push(
                w.wait(std::time::Duration::from_secs(5))
                    .await
                    .unwrap()
                    .base_offset,
            );
        }
        assert_eq!(offsets, (0..200).collect::<Vec<_>>());
        let stats = broker.flush_stats();
        let (requests, fsyncs) = (
            stats.requests.load(Ordering::Relaxed),
            stats.fsyncs.load(Ordering::Relaxed),
        );
        assert_eq!(requests, 200);
        assert!(
            fsyncs < 100,
            "200 acknowledged appends took {fsyncs} fsyncs: group commit is not grouping"
        );
        assert_eq!(
            p.offsets().high_watermark,
            200,
            "everything acknowledged is visible"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn acknowledgement_waits_for_the_flush() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path());
        let topic = broker
            .admin()
            .create_topic("w", 1, 1, BTreeMap::new(), false)
            .unwrap();
        let p = topic.partitions[0].clone();
        let batch = sluice_log::batch::build_batch(1, &[(None, Some(b"v"))]);
        let pending = broker
            .append(&p, batch.into(), 1, crate::AppendOrigin::Client)
            .unwrap();
        let info = pending
            .wait(std::time::Duration::from_secs(5))
            .await
            .unwrap();
        // Once acknowledged, the log's flushed point covers the record.
        assert!(p.log().flushed_offset() > info.last_offset);
    }
}

//! Followers copy their leaders' logs, as Kafka's replica fetchers do: one fetcher per
//! leader broker, fetching every partition this broker follows there in one request (as a
//! replica, so the leader reads to its log end and learns where this replica's log ends).
//! Before fetching a partition in a leader epoch it has not checked, a fetcher asks the
//! leader where its own latest epoch ends there and cuts any divergent tail.
//!
//! The wire is behind `LeaderPort` (sluice-kafka frames the Fetch and OffsetForLeaderEpoch
//! requests); this module decides what to ask and what to do with the answers.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use sluice_cluster::BrokerInfo;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{FollowTarget, ReplicaManager};

/// How often the set of followed partitions is recomputed from the image.
const REFRESH: Duration = Duration::from_millis(200);

/// One partition of a follower's fetch.
pub struct FetchAsk {
    pub topic: Arc<str>,
    pub topic_id: uuid::Uuid,
    pub partition: i32,
    pub current_leader_epoch: i32,
    /// This replica's log end: where it reads from, and what the leader counts as its end.
    pub fetch_offset: i64,
    /// The epoch of this replica's last batch (-1 when empty), for the leader's divergence check.
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
}

/// The leader's answer for one partition of a fetch.
pub struct FetchAnswer {
    pub topic: Arc<str>,
    pub partition: i32,
    pub outcome: FetchOutcome,
}

pub enum FetchOutcome {
    /// What the leader has from the fetch offset (it may end inside a batch), and its high
    /// watermark.
    Records {
        records: Option<Bytes>,
        high_watermark: i64,
    },
    /// The logs part: the leader's `epoch` (the latest at or below ours) ends at `end_offset`.
    Diverging { epoch: i32, end_offset: i64 },
    /// The fetch offset is outside the leader's log, which starts at `log_start_offset`.
    OutOfRange { log_start_offset: i64 },
    /// Any other error (the leader moved, or has not applied the image yet), as its Kafka
    /// error code for the log.
    Failed(i16),
}

/// A connection to one leader.
pub trait LeaderLink: Send {
    /// One fetch of every partition asked, held by the leader while it has nothing new.
    /// `broker_epoch` is this broker's registration (`BrokerInfo::incarnation`): the leader
    /// counts a fetch only from the registration it knows (KIP-903).
    fn fetch<'a>(
        &'a mut self,
        asks: &'a [FetchAsk],
        broker_epoch: i64,
    ) -> BoxFuture<'a, io::Result<Vec<FetchAnswer>>>;

    /// Where `leader_epoch` ends in the leader's log of the partition: the latest epoch there
    /// at or below it and its end offset (-1 when the leader knows no epoch that old).
    fn end_of_epoch<'a>(
        &'a mut self,
        topic: &'a str,
        partition: i32,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> BoxFuture<'a, io::Result<(i32, i64)>>;
}

/// Opens links to leaders.
pub trait LeaderPort: Send + Sync + 'static {
    fn connect<'a>(
        &'a self,
        leader: &'a BrokerInfo,
    ) -> BoxFuture<'a, io::Result<Box<dyn LeaderLink>>>;
}

/// Runs the fetchers until `shutdown` turns true: one per leader this broker follows.
pub async fn run(
    replicas: Arc<ReplicaManager>,
    port: Arc<dyn LeaderPort>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut fetchers: HashMap<i32, watch::Sender<Vec<FollowTarget>>> = HashMap::new();
    loop {
        let wanted = replicas.follow_targets();
        fetchers.retain(|leader, tx| {
            let keep = wanted.contains_key(leader);
            if !keep {
                let _ = tx.send(Vec::new());
            }
            keep
        });
        for (leader, targets) in wanted {
            match fetchers.get(&leader) {
                Some(tx) => {
                    tx.send_if_modified(|current| {
                        let changed = !same_targets(current, &targets);
                        if changed {
                            *current = targets.clone();
                        }
                        changed
                    });
                }
                None => {
                    let (tx, rx) = watch::channel(targets);
                    tokio::spawn(fetch_from(replicas.clone(), port.clone(), leader, rx));
                    fetchers.insert(leader, tx);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn same_targets(a: &[FollowTarget], b: &[FollowTarget]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            Arc::ptr_eq(&x.partition, &y.partition)
                && x.leader_epoch == y.leader_epoch
                && x.leader == y.leader
        })
}

/// One leader's fetcher: copies its partitions until it has none left to follow.
async fn fetch_from(
    replicas: Arc<ReplicaManager>,
    port: Arc<dyn LeaderPort>,
    leader: i32,
    mut targets: watch::Receiver<Vec<FollowTarget>>,
) {
    // Partitions whose divergence was checked, with the leader epoch it was checked in.
    let mut checked: HashMap<(Arc<str>, i32), i32> = HashMap::new();
    let mut kept: Option<Box<dyn LeaderLink>> = None;
    loop {
        let current = targets.borrow_and_update().clone();
        if current.is_empty() {
            return; // the manager dropped this leader
        }
        let mut link = match kept.take() {
            Some(link) => link,
            None => match port.connect(&current[0].leader).await {
                Ok(link) => link,
                Err(e) => {
                    debug!(leader, error = %e, "cannot reach the leader; retrying");
                    wait_or_change(&mut targets, Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        let work = async {
            for t in &current {
                let key = (t.topic.clone(), t.partition.index);
                if checked.get(&key) != Some(&t.leader_epoch) {
                    truncate_divergent(&replicas, link.as_mut(), t).await?;
                    checked.insert(key, t.leader_epoch);
                }
            }
            fetch_once(&replicas, link.as_mut(), &current).await
        };
        // A change of the followed partitions (a new topic, a new leader epoch) cuts a long
        // poll short, so new partitions are copied at once; the connection, with a response
        // still to come on it, is dropped.
        let result = tokio::select! {
            r = work => Some(r),
            _ = targets.changed() => None,
        };
        match result {
            None => {}
            Some(Ok(())) => kept = Some(link),
            Some(Err(e)) => {
                debug!(leader, error = %e, "replica fetch failed; reconnecting");
                checked.clear();
                wait_or_change(&mut targets, Duration::from_millis(200)).await;
            }
        }
    }
}

async fn wait_or_change(targets: &mut watch::Receiver<Vec<FollowTarget>>, pause: Duration) {
    let _ = tokio::time::timeout(pause, targets.changed()).await;
}

/// Asks the leader where this replica's latest epoch ends there and cuts this replica's log
/// at that offset if it runs past it (the tail a former leader wrote that the new one lacks).
async fn truncate_divergent(
    replicas: &Arc<ReplicaManager>,
    link: &mut dyn LeaderLink,
    t: &FollowTarget,
) -> io::Result<()> {
    let (latest, log_end) = {
        let log = t.partition.log();
        (log.epochs().latest_epoch(), log.log_end_offset())
    };
    let Some(latest) = latest else {
        return Ok(()); // an empty log cannot diverge
    };
    let (leader_epoch, leader_end) = link
        .end_of_epoch(&t.topic, t.partition.index, t.leader_epoch, latest)
        .await?;
    if leader_end < 0 {
        return Ok(()); // the leader knows no epoch as old as ours: nothing to compare
    }
    cut_divergent_tail(replicas, t, latest, log_end, leader_epoch, leader_end).await
}

/// The leader's log has `leader_epoch` (the latest it has at or below ours) ending at
/// `leader_end`: cut this replica's log there, or at its own end of that epoch if that comes
/// first (from there on it holds a later epoch the leader lacks).
async fn cut_divergent_tail(
    replicas: &Arc<ReplicaManager>,
    t: &FollowTarget,
    latest: i32,
    log_end: i64,
    leader_epoch: i32,
    leader_end: i64,
) -> io::Result<()> {
    let to = if leader_epoch == latest {
        leader_end
    } else {
        let (_, own_end) = t.partition.log().end_offset_for_epoch(leader_epoch);
        if own_end < 0 {
            leader_end
        } else {
            leader_end.min(own_end)
        }
    };
    // At `to == log_end` nothing is cut but an empty epoch of ours at the end is forgotten.
    if to <= log_end {
        if to < log_end {
            info!(topic = %t.topic, partition = t.partition.index, from = log_end, to, "truncating a divergent tail");
        }
        let r = replicas.clone();
        let target = t.clone();
        tokio::task::spawn_blocking(move || r.truncate_replica(&target, to))
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)?;
    }
    Ok(())
}

/// One fetch of every followed partition, and the append of what it brings.
async fn fetch_once(
    replicas: &Arc<ReplicaManager>,
    link: &mut dyn LeaderLink,
    targets: &[FollowTarget],
) -> io::Result<()> {
    let asks: Vec<FetchAsk> = targets
        .iter()
        .map(|t| {
            let log = t.partition.log();
            FetchAsk {
                topic: t.topic.clone(),
                topic_id: t.topic_id,
                partition: t.partition.index,
                current_leader_epoch: t.leader_epoch,
                fetch_offset: log.log_end_offset(),
                last_fetched_epoch: log.epochs().latest_epoch().unwrap_or(-1),
                log_start_offset: log.log_start_offset(),
            }
        })
        .collect();
    let broker_epoch = replicas.own_registration();
    let answers = link.fetch(&asks, broker_epoch).await?;
    let by_partition: BTreeMap<(&str, i32), &FollowTarget> = targets
        .iter()
        .map(|t| ((&*t.topic, t.partition.index), t))
        .collect();
    // Appends that must be on disk before the next fetch reports them.
    let mut syncing = Vec::new();
    for answer in answers {
        let Some(&t) = by_partition.get(&(&*answer.topic, answer.partition)) else {
            continue;
        };
        let log_end = t.partition.log().log_end_offset();
        match answer.outcome {
            FetchOutcome::OutOfRange { log_start_offset } if log_start_offset > log_end => {
                // Away while the leader's retention deleted what this replica lacks: start
                // over at the leader's log start.
                info!(topic = %t.topic, partition = t.partition.index, from = log_end, at = log_start_offset, "behind the leader's log start: starting over there");
                let r = replicas.clone();
                let target = t.clone();
                tokio::task::spawn_blocking(move || {
                    r.restart_replica_at(&target, log_start_offset)
                })
                .await
                .map_err(io::Error::other)?
                .map_err(io::Error::other)?;
            }
            FetchOutcome::OutOfRange { .. } => {
                return Err(io::Error::other(format!(
                    "{}-{}: fetch offset {log_end} out of the leader's range",
                    t.topic, t.partition.index
                )));
            }
            FetchOutcome::Failed(code) => {
                // The leader moved or has not caught up with the image yet: the manager
                // gives the new assignment.
                return Err(io::Error::other(format!(
                    "{}-{}: fetch error {code}",
                    t.topic, t.partition.index
                )));
            }
            FetchOutcome::Diverging { epoch, end_offset } => {
                // The leader says where our logs part (KIP-320's DivergingEpoch).
                let latest = t.partition.log().epochs().latest_epoch();
                cut_divergent_tail(
                    replicas,
                    t,
                    latest.unwrap_or(-1),
                    log_end,
                    epoch,
                    end_offset,
                )
                .await?;
            }
            FetchOutcome::Records {
                records,
                high_watermark,
            } => {
                let whole = records
                    .as_ref()
                    .map(whole_batches)
                    .filter(|r| !r.is_empty());
                if let Some(whole) = whole {
                    let r = replicas.clone();
                    let target = t.clone();
                    let appended =
                        tokio::task::spawn_blocking(move || r.append_replicated(&target, &whole))
                            .await
                            .map_err(io::Error::other)?;
                    match appended {
                        Ok(synced) => syncing.push(synced),
                        Err(e) => {
                            warn!(topic = %t.topic, partition = t.partition.index, error = %e, "could not append replicated batches");
                            return Err(io::Error::other(e.to_string()));
                        }
                    }
                }
                t.partition.note_leader_high_watermark(high_watermark);
            }
        }
    }
    // One group commit covers them all (the flusher syncs each partition once).
    for synced in syncing {
        match synced.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(io::Error::other(e.to_string())),
            Err(_) => return Err(io::Error::other("the flusher stopped")),
        }
    }
    Ok(())
}

/// The leading whole batches of a fetched range (a fetch may end inside a batch).
fn whole_batches(records: &Bytes) -> Bytes {
    let mut pos = 0usize;
    while pos + sluice_log::batch::HEADER_SIZE <= records.len() {
        let size = sluice_log::batch::BatchHeader::parse(&records[pos..]).size();
        if pos + size > records.len() {
            break;
        }
        pos += size;
    }
    records.slice(..pos)
}

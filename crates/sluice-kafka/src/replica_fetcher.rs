//! Followers copy their leaders' logs with the Fetch API, as Kafka's replica fetchers do: one
//! fetcher per leader broker, fetching every partition this broker follows there in one
//! request (replica id set, so the leader reads to its log end and learns where this
//! replica's log ends). Before fetching a partition in a leader epoch it has not checked, a
//! fetcher asks OffsetForLeaderEpoch where its own latest epoch ends on the leader and cuts
//! any divergent tail there.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_broker::{Broker, FollowTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info, warn};

const FETCH_VERSION: i16 = 12;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const EPOCH_VERSION: i16 = 4;
/// How long the leader may hold a fetch with nothing new.
const MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const RESPONSE_MAX_BYTES: usize = 64 << 20;
/// How often the set of followed partitions is recomputed from the image.
const REFRESH: Duration = Duration::from_millis(200);

/// Runs the fetchers until `shutdown` turns true: one per leader this broker follows.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut fetchers: HashMap<i32, watch::Sender<Vec<FollowTarget>>> = HashMap::new();
    loop {
        let wanted = broker.replicas.follow_targets();
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
                    tokio::spawn(fetch_from(broker.clone(), leader, rx));
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
    broker: Arc<Broker>,
    leader: i32,
    mut targets: watch::Receiver<Vec<FollowTarget>>,
) {
    let me = broker.config.node_id;
    // Partitions whose divergence was checked, with the leader epoch it was checked in.
    let mut checked: HashMap<(Arc<str>, i32), i32> = HashMap::new();
    let mut conn: Option<TcpStream> = None;
    loop {
        let current = targets.borrow_and_update().clone();
        if current.is_empty() {
            return; // the manager dropped this leader
        }
        let address = (current[0].leader.host.clone(), current[0].leader.port);
        let stream = match conn.take() {
            Some(s) => s,
            None => match TcpStream::connect((address.0.as_str(), address.1)).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s
                }
                Err(e) => {
                    debug!(leader, error = %e, "cannot reach the leader; retrying");
                    wait_or_change(&mut targets, Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        let mut stream = stream;
        let work = async {
            for t in &current {
                let key = (t.topic.clone(), t.partition.index);
                if checked.get(&key) != Some(&t.leader_epoch) {
                    truncate_divergent(&broker, &mut stream, me, t).await?;
                    checked.insert(key, t.leader_epoch);
                }
            }
            fetch_once(&broker, &mut stream, me, &current).await
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
            Some(Ok(())) => conn = Some(stream),
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
    broker: &Arc<Broker>,
    stream: &mut TcpStream,
    me: i32,
    t: &FollowTarget,
) -> std::io::Result<()> {
    let (latest, log_end) = {
        let log = t.partition.log();
        (log.epochs().latest_epoch(), log.log_end_offset())
    };
    let Some(latest) = latest else {
        return Ok(()); // an empty log cannot diverge
    };
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(me))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_string(t.topic.to_string())))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(t.partition.index)
                .with_current_leader_epoch(t.leader_epoch)
                .with_leader_epoch(latest)])]);
    let response: OffsetForLeaderEpochResponse = call(
        stream,
        me,
        ApiKey::OffsetForLeaderEpoch,
        EPOCH_VERSION,
        &request,
    )
    .await?;
    let Some(answer) = response
        .topics
        .first()
        .and_then(|topic| topic.partitions.first())
    else {
        return Err(std::io::Error::other(
            "OffsetForLeaderEpoch answered no partition",
        ));
    };
    if answer.error_code != 0 {
        return Err(std::io::Error::other(format!(
            "OffsetForLeaderEpoch error {}",
            answer.error_code
        )));
    }
    if answer.end_offset < 0 {
        return Ok(()); // the leader knows no epoch as old as ours: nothing to compare
    }
    cut_divergent_tail(
        broker,
        t,
        latest,
        log_end,
        answer.leader_epoch,
        answer.end_offset,
    )
    .await
}

/// The leader's log has `leader_epoch` (the latest it has at or below ours) ending at
/// `leader_end`: cut this replica's log there, or at its own end of that epoch if that comes
/// first (from there on it holds a later epoch the leader lacks).
async fn cut_divergent_tail(
    broker: &Arc<Broker>,
    t: &FollowTarget,
    latest: i32,
    log_end: i64,
    leader_epoch: i32,
    leader_end: i64,
) -> std::io::Result<()> {
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
        let b = broker.clone();
        let target = t.clone();
        tokio::task::spawn_blocking(move || b.replicas.truncate_replica(&target, to))
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// One Fetch for every followed partition, and the append of what it brings.
async fn fetch_once(
    broker: &Arc<Broker>,
    stream: &mut TcpStream,
    me: i32,
    targets: &[FollowTarget],
) -> std::io::Result<()> {
    let mut by_topic: BTreeMap<Arc<str>, Vec<&FollowTarget>> = BTreeMap::new();
    for t in targets {
        by_topic.entry(t.topic.clone()).or_default().push(t);
    }
    let topics = by_topic
        .iter()
        .map(|(topic, ts)| {
            let partitions = ts
                .iter()
                .map(|t| {
                    let log = t.partition.log();
                    FetchPartition::default()
                        .with_partition(t.partition.index)
                        .with_current_leader_epoch(t.leader_epoch)
                        .with_fetch_offset(log.log_end_offset())
                        .with_last_fetched_epoch(log.epochs().latest_epoch().unwrap_or(-1))
                        .with_log_start_offset(log.log_start_offset())
                        .with_partition_max_bytes(PARTITION_MAX_BYTES)
                })
                .collect();
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_MAX_BYTES as i32)
        .with_topics(topics);
    let response: FetchResponse = call(stream, me, ApiKey::Fetch, FETCH_VERSION, &request).await?;
    // Appends that must be on disk before the next fetch reports them.
    let mut syncing = Vec::new();
    for topic in response.responses {
        let Some(ts) = by_topic.get(topic.topic.0.as_str()) else {
            continue;
        };
        for p in topic.partitions {
            let Some(t) = ts.iter().find(|t| t.partition.index == p.partition_index) else {
                continue;
            };
            let log_end = t.partition.log().log_end_offset();
            if p.error_code == OFFSET_OUT_OF_RANGE && p.log_start_offset > log_end {
                // Away while the leader's retention deleted what this replica lacks: start
                // over at the leader's log start.
                info!(topic = %t.topic, partition = t.partition.index, from = log_end, at = p.log_start_offset, "behind the leader's log start: starting over there");
                let b = broker.clone();
                let target = (*t).clone();
                let at = p.log_start_offset;
                tokio::task::spawn_blocking(move || b.replicas.restart_replica_at(&target, at))
                    .await
                    .map_err(std::io::Error::other)?
                    .map_err(std::io::Error::other)?;
                continue;
            }
            if p.error_code != 0 {
                // The leader moved or has not caught up with the image yet: the manager
                // gives the new assignment.
                return Err(std::io::Error::other(format!(
                    "{}-{}: fetch error {}",
                    t.topic, t.partition.index, p.error_code
                )));
            }
            if p.diverging_epoch.epoch >= 0 {
                // The leader says where our logs part (KIP-320's DivergingEpoch).
                let (latest, log_end) = {
                    let log = t.partition.log();
                    (log.epochs().latest_epoch(), log.log_end_offset())
                };
                let d = &p.diverging_epoch;
                cut_divergent_tail(
                    broker,
                    t,
                    latest.unwrap_or(-1),
                    log_end,
                    d.epoch,
                    d.end_offset,
                )
                .await?;
                continue;
            }
            let whole = p
                .records
                .as_ref()
                .map(whole_batches)
                .filter(|r| !r.is_empty());
            if let Some(whole) = whole {
                let b = broker.clone();
                let target = (*t).clone();
                let appended = tokio::task::spawn_blocking(move || {
                    b.replicas.append_replicated(&target, &whole)
                })
                .await
                .map_err(std::io::Error::other)?;
                match appended {
                    Ok(Some(synced)) => syncing.push(synced),
                    Ok(None) => {}
                    Err(e) => {
                        warn!(topic = %t.topic, partition = t.partition.index, error = %e, "could not append replicated batches");
                        return Err(std::io::Error::other(e.to_string()));
                    }
                }
            }
            t.partition.note_leader_high_watermark(p.high_watermark);
        }
    }
    // One group commit covers them all (the flusher syncs each partition once).
    for synced in syncing {
        match synced.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(std::io::Error::other(e.to_string())),
            Err(_) => return Err(std::io::Error::other("the flusher stopped")),
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

/// Sends one request and reads its response on `stream`.
async fn call<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    me: i32,
    api: ApiKey,
    version: i16,
    request: &Req,
) -> std::io::Result<Resp> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_string(format!("sluice-replica-{me}"))));
    let mut frame = BytesMut::new();
    frame.put_u32(0);
    header
        .encode(&mut frame, api.request_header_version(version))
        .and_then(|_| request.encode(&mut frame, version))
        .map_err(std::io::Error::other)?;
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    let exchange = async {
        stream.write_all(&frame).await?;
        let len = stream.read_u32().await? as usize;
        if len > RESPONSE_MAX_BYTES + 4096 {
            return Err(std::io::Error::other(format!("a {len}-byte response")));
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>(Bytes::from(body))
    };
    let mut body = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| std::io::Error::other("the leader did not answer in 30 s"))??;
    ResponseHeader::decode(&mut body, api.response_header_version(version))
        .map_err(std::io::Error::other)?;
    Resp::decode(&mut body, version).map_err(std::io::Error::other)
}

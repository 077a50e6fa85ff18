//! Fetch (1): stored batches from each partition, long-polling until `min_bytes` are
//! available or `max_wait_ms` passes. Topics are named, or identified by id from v13.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, ProducerId};
use sluice_broker::{fetch, BrokerError, FetchTarget};
use sluice_log::ReadBound;

use crate::errors;
use crate::fetch_frame::{self, PartitionAnswer, TopicAnswer};
use crate::leaders::LeaderHints;
use crate::reply::{Reply, Response, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (4, 17);

/// The longest a fetch may wait, whatever the client asks: clients' request timeout (30 s by
/// default), past which they stop waiting anyway. Consumers ask for 0.5 s.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

/// A requested partition: where its answer goes, and what to read (or why not).
struct Slot {
    topic: usize,
    partition: i32,
    target: SlotTarget,
}

enum SlotTarget {
    /// Read the target at this index.
    Read(usize),
    /// An error code, and the current leader to tell the client.
    Error(i16, Option<(i32, i32)>),
    /// KIP-392: read from this replica in the client's rack instead.
    Redirect(i32, sluice_broker::PartitionOffsets),
    /// A follower's log diverges: this epoch ends at this offset here.
    Diverging(i32, i64, sluice_broker::PartitionOffsets),
}

pub fn handle(ctx: &Context, reply: Reply, req: FetchRequest) -> ResponseFuture {
    let broker = &ctx.broker;
    let image = broker.replicas.image();
    let mut hints = LeaderHints::default();
    let by_id = reply.version >= 13;
    // A follower names itself (replica id, in ReplicaState from v15): it reads to the log
    // end, and its fetch offset tells the leader where its log ends.
    let (replica, replica_epoch) = if reply.version >= 15 {
        (req.replica_state.replica_id.0, req.replica_state.replica_epoch)
    } else {
        (req.replica_id.0, -1)
    };
    // Only a broker may fetch as a follower: its fetch offset moves the high watermark.
    let from_broker = replica < 0 || ctx.from_broker(&reply);
    // KIP-392: a consumer naming its rack (v11+) may read from a replica there, and a
    // follower serves such consumers.
    let consumer_v11 = replica < 0 && reply.version >= 11;
    // read_committed consumers (isolation level 1) read to the last stable offset and are
    // told which transactions were aborted in what they get.
    let committed = replica < 0 && req.isolation_level == 1;
    let consumer_bound = if committed {
        ReadBound::LastStable
    } else {
        ReadBound::HighWatermark
    };
    let client_rack = consumer_v11
        .then(|| req.rack_id.as_str())
        .filter(|r| !r.is_empty());
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut slots = Vec::new();
    let mut targets = Vec::new();
    for (ti, ft) in req.topics.iter().enumerate() {
        let name = if by_id {
            image.topic_by_id(ft.topic_id).map(|t| t.name.as_str())
        } else {
            Some(ft.topic.0.as_str())
        };
        topics.push((ft.topic.clone(), ft.topic_id));
        for fp in &ft.partitions {
            let leader = match name {
                Some(name) if consumer_v11 => broker
                    .replicas.local_replica(name, fp.partition, fp.current_leader_epoch)
                    .map(|p| (p, None)),
                Some(name) if replica < 0 => broker
                    .replicas
                    .local_leader(name, fp.partition, fp.current_leader_epoch)
                    .map(|p| (p, None)),
                Some(_) if !from_broker => Err(BrokerError::ClusterAuthorizationFailed(
                    "only brokers fetch as followers".into(),
                )),
                // A follower whose log diverges is told where (v12+).
                Some(name) => broker.replicas.follower_fetch(
                    name,
                    fp.partition,
                    fp.current_leader_epoch,
                    replica,
                    replica_epoch,
                    fp.fetch_offset,
                    (reply.version >= 12).then_some(fp.last_fetched_epoch),
                ),
                None => Err(BrokerError::UnknownTopicOrPartition),
            };
            let redirect = match (&leader, client_rack, name) {
                (Ok((p, _)), Some(rack), Some(name)) => broker
                    .replicas.preferred_read_replica(name, fp.partition, rack)
                    .map(|r| (r, p.offsets())),
                _ => None,
            };
            let target = match (leader, redirect) {
                (Ok(_), Some((r, offsets))) => SlotTarget::Redirect(r, offsets),
                (Ok((p, Some((epoch, end)))), None) => {
                    SlotTarget::Diverging(epoch, end, p.offsets())
                }
                (Ok((p, None)), None) => {
                    targets.push(FetchTarget {
                        partition: p,
                        offset: fp.fetch_offset,
                        max_bytes: fp.partition_max_bytes.max(0) as usize,
                        bound: if replica >= 0 {
                            ReadBound::LogEnd
                        } else {
                            consumer_bound
                        },
                    });
                    SlotTarget::Read(targets.len() - 1)
                }
                (Err(BrokerError::UnknownTopicOrPartition), _) if name.is_none() => {
                    SlotTarget::Error(ResponseError::UnknownTopicId.code(), None)
                }
                (Err(e), _) => SlotTarget::Error(errors::code(&e), hints.note(&image, &e)),
            };
            slots.push(Slot {
                topic: ti,
                partition: fp.partition,
                target,
            });
        }
    }
    let min_bytes = req.min_bytes.max(0) as usize;
    let broker_max = broker.config.fetch_max_bytes();
    let max_bytes = if req.max_bytes <= 0 {
        broker_max
    } else {
        (req.max_bytes as usize).min(broker_max)
    };
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let endpoints = hints
        .brokers()
        .filter_map(|b| {
            let (host, port) = b.endpoint(&reply.listener)?;
            Some(
                NodeEndpoint::default()
                    .with_node_id(BrokerId(b.node_id))
                    .with_host(super::str(host))
                    .with_port(port as i32)
                    .with_rack(b.rack.as_deref().map(super::str)),
            )
        })
        .collect();
    Box::pin(async move {
        let mut fetched = fetch(&targets, min_bytes, max_bytes, max_wait).await;
        let mut answers: Vec<TopicAnswer> = topics
            .into_iter()
            .map(|(name, id)| TopicAnswer {
                name,
                id,
                partitions: Vec::new(),
            })
            .collect();
        for slot in slots {
            let mut pd = PartitionData::default().with_partition_index(slot.partition);
            let mut records = None;
            match slot.target {
                SlotTarget::Diverging(epoch, end, offsets) => {
                    pd.diverging_epoch = EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end);
                    pd.high_watermark = offsets.high_watermark;
                    pd.last_stable_offset = offsets.last_stable_offset;
                    pd.log_start_offset = offsets.log_start_offset;
                }
                SlotTarget::Redirect(r, offsets) => {
                    pd.preferred_read_replica = BrokerId(r);
                    pd.high_watermark = offsets.high_watermark;
                    pd.last_stable_offset = offsets.last_stable_offset;
                    pd.log_start_offset = offsets.log_start_offset;
                }
                SlotTarget::Error(code, leader) => {
                    pd.error_code = code;
                    if let Some((id, epoch)) = leader {
                        pd.current_leader = LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(id))
                            .with_leader_epoch(epoch);
                    }
                }
                SlotTarget::Read(i) => match std::mem::replace(
                    &mut fetched[i].result,
                    Err(BrokerError::Storage(String::new())),
                ) {
                    Ok((data, offsets)) => {
                        pd.high_watermark = offsets.high_watermark;
                        pd.last_stable_offset = offsets.last_stable_offset;
                        pd.log_start_offset = offsets.log_start_offset;
                        if committed {
                            pd.aborted_transactions = Some(aborted_in(
                                &targets[i],
                                data.as_ref(),
                                offsets.last_stable_offset,
                            ));
                        }
                        records = data;
                    }
                    Err(e) => {
                        pd.error_code = errors::code(&e);
                        if let BrokerError::OffsetOutOfRange(_) = e {
                            let offsets = targets[i].partition.offsets();
                            pd.high_watermark = offsets.high_watermark;
                            pd.log_start_offset = offsets.log_start_offset;
                        }
                    }
                },
            }
            answers[slot.topic]
                .partitions
                .push(PartitionAnswer { data: pd, records });
        }
        match fetch_frame::encode(reply.version, reply.correlation_id, answers, endpoints) {
            Ok(chunks) => Response::Chunks(chunks),
            Err(e) => Response::Close(format!("could not encode Fetch v{}: {e}", reply.version)),
        }
    })
}

/// The aborted transactions with records in what a read_committed fetch returns (from the
/// fetch offset to the last stable offset): the client drops their records.
fn aborted_in(
    target: &FetchTarget,
    data: Option<&sluice_log::ReadSlice>,
    last_stable: i64,
) -> Vec<AbortedTransaction> {
    if data.is_none_or(|d| d.len == 0) {
        return Vec::new();
    }
    target
        .partition
        .aborted_transactions(target.offset, last_stable)
        .into_iter()
        .map(|a| {
            AbortedTransaction::default()
                .with_producer_id(ProducerId(a.producer_id))
                .with_first_offset(a.first_offset)
        })
        .collect()
}

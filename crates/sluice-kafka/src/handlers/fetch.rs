//! Fetch (1): stored batches from each partition, long-polling until `min_bytes` are
//! available or `max_wait_ms` passes. Topics are named, or identified by id from v13.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::FetchRequest;
use sluice_broker::{fetch, BrokerError, FetchTarget};

use crate::errors;
use crate::fetch_frame::{self, PartitionAnswer, TopicAnswer};
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
    target: Result<usize, i16>,
}

pub fn handle(ctx: &Context, reply: Reply, req: FetchRequest) -> ResponseFuture {
    let broker = &ctx.broker;
    let by_id = reply.version >= 13;
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut slots = Vec::new();
    let mut targets = Vec::new();
    for (ti, ft) in req.topics.iter().enumerate() {
        let topic = if by_id {
            broker.topic_by_id(ft.topic_id)
        } else {
            broker.topic(&ft.topic)
        };
        let missing = if by_id {
            ResponseError::UnknownTopicId.code()
        } else {
            ResponseError::UnknownTopicOrPartition.code()
        };
        topics.push((ft.topic.clone(), ft.topic_id));
        for fp in &ft.partitions {
            let target = match topic.as_ref().and_then(|t| t.partition(fp.partition)) {
                Some(p) => {
                    targets.push(FetchTarget {
                        partition: p.clone(),
                        offset: fp.fetch_offset,
                        max_bytes: fp.partition_max_bytes.max(0) as usize,
                    });
                    Ok(targets.len() - 1)
                }
                None => Err(if topic.is_some() {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    missing
                }),
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
                Err(code) => pd.error_code = code,
                Ok(i) => match std::mem::replace(
                    &mut fetched[i].result,
                    Err(BrokerError::Storage(String::new())),
                ) {
                    Ok((data, offsets)) => {
                        pd.high_watermark = offsets.high_watermark;
                        pd.last_stable_offset = offsets.high_watermark;
                        pd.log_start_offset = offsets.log_start_offset;
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
        match fetch_frame::encode(reply.version, reply.correlation_id, answers, Vec::new()) {
            Ok(chunks) => Response::Chunks(chunks),
            Err(e) => Response::Close(format!("could not encode Fetch v{}: {e}", reply.version)),
        }
    })
}

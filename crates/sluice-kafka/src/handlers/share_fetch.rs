//! ShareFetch (78): records for a share group member, acquired under a lock, with the
//! acknowledgements of earlier ones riding along (KIP-932). Topics travel by id.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{ShareFetchRequest, ShareFetchResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_broker::share::{self, AckBatch, ShareFetchPartition};
use sluice_broker::{Broker, BrokerError};
use uuid::Uuid;

use crate::errors;
use crate::reply::{Reply, ResponseFuture};
use crate::share_frame;
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (1, 2);

/// The longest a share fetch waits, whatever it asks (as Fetch's bound).
const MAX_WAIT_MS: i32 = 30_000;

pub fn handle(ctx: &Context, reply: Reply, req: ShareFetchRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    Box::pin(async move {
        let Some((group_id, member_id)) = ids(&req.group_id, &req.member_id) else {
            return reply.encode(&top_level_error(&BrokerError::InvalidRequest(
                "a share fetch names its group and member".into(),
            )));
        };
        let mut unknown: Vec<(Uuid, i32)> = Vec::new();
        let mut partitions = Vec::new();
        for t in &req.topics {
            let Some(topic) = broker.replicas.topic_by_id(t.topic_id) else {
                unknown.extend(t.partitions.iter().map(|p| (t.topic_id, p.partition_index)));
                continue;
            };
            let name: Arc<str> = Arc::from(topic.name.as_ref());
            for p in &t.partitions {
                partitions.push(ShareFetchPartition {
                    topic: name.clone(),
                    partition: p.partition_index,
                    acks: p
                        .acknowledgement_batches
                        .iter()
                        .map(|b| AckBatch {
                            first_offset: b.first_offset,
                            last_offset: b.last_offset,
                            types: b.acknowledge_types.clone(),
                        })
                        .collect(),
                });
            }
        }
        let forgotten = req
            .forgotten_topics_data
            .iter()
            .filter_map(|t| {
                broker
                    .replicas.topic_by_id(t.topic_id)
                    .map(|topic| (topic, &t.partitions))
            })
            .flat_map(|(topic, ps)| {
                let name: Arc<str> = Arc::from(topic.name.as_ref());
                ps.iter().map(move |p| (name.clone(), *p))
            })
            .collect();
        let Some(acquire_mode) = share::AcquireMode::from_code(req.share_acquire_mode) else {
            return reply.encode(&top_level_error(&BrokerError::InvalidRequest(format!(
                "unknown share acquire mode {}",
                req.share_acquire_mode
            ))));
        };
        let request = share::ShareFetchRequest {
            group_id,
            member_id,
            session_epoch: req.share_session_epoch,
            max_wait: Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_MS) as u64),
            // Bounded as Fetch is: what a share fetch reads into memory is the broker's
            // `fetch.max.bytes` at most, whatever the request asks.
            max_bytes: (req.max_bytes.max(0) as usize).min(broker.config.fetch_max_bytes()),
            max_records: req.max_records.max(1) as usize,
            acquire_mode,
            partitions,
            forgotten,
        };
        let result = match broker.shares.share_fetch(request).await {
            Ok(r) => r,
            Err(e) => return reply.encode(&top_level_error(&e)),
        };
        // Each partition, with its records to send in place of a placeholder (share_frame).
        // A partition with nothing to deliver gets an empty record set, never null: the
        // schema allows null, but Kafka never sends it and librdkafka drops the whole
        // response when it sees one (MessageSetSize -1).
        type Answer = (PartitionData, Option<(bytes::Bytes, share::ShareRecords)>);
        let mut by_topic: BTreeMap<Uuid, Vec<Answer>> = BTreeMap::new();
        for (id, p) in unknown {
            by_topic.entry(id).or_default().push((
                PartitionData::default()
                    .with_partition_index(p)
                    .with_error_code(kafka_protocol::error::ResponseError::UnknownTopicId.code())
                    .with_records(Some(bytes::Bytes::new())),
                None,
            ));
        }
        for p in result.partitions {
            let Some(topic) = broker.replicas.topic(&p.topic) else {
                continue;
            };
            let (error_code, error_message) = error_of(&p.error);
            let (ack_code, ack_message) = error_of(&p.ack_error);
            let records = p.records.map(|r| (share_frame::placeholder(), r));
            let data = PartitionData::default()
                .with_partition_index(p.partition)
                .with_error_code(error_code)
                .with_error_message(error_message)
                .with_acknowledge_error_code(ack_code)
                .with_acknowledge_error_message(ack_message)
                .with_current_leader(leader_of(&broker, &p.topic, p.partition))
                .with_records(Some(
                    records
                        .as_ref()
                        .map_or_else(bytes::Bytes::new, |(mark, _)| mark.clone()),
                ))
                .with_acquired_records(
                    p.acquired
                        .iter()
                        .map(|a| {
                            AcquiredRecords::default()
                                .with_first_offset(a.first_offset)
                                .with_last_offset(a.last_offset)
                                .with_delivery_count(a.delivery_count)
                        })
                        .collect(),
                );
            by_topic.entry(topic.id).or_default().push((data, records));
        }
        let mut parts = Vec::new();
        let mut topics = Vec::with_capacity(by_topic.len());
        for (id, answers) in by_topic {
            let mut partitions = Vec::with_capacity(answers.len());
            for (data, records) in answers {
                partitions.push(data);
                parts.extend(records);
            }
            topics.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(id)
                    .with_partitions(partitions),
            );
        }
        let response = ShareFetchResponse::default()
            .with_acquisition_lock_timeout_ms(result.lock_duration_ms.min(i32::MAX as i64) as i32)
            .with_responses(topics);
        share_frame::encode(&reply, &response, parts)
    })
}

/// The group and member ids, both required.
pub fn ids(
    group: &Option<kafka_protocol::messages::GroupId>,
    member: &Option<StrBytes>,
) -> Option<(String, String)> {
    let group = group
        .as_ref()
        .map(|g| g.to_string())
        .filter(|g| !g.is_empty())?;
    let member = member
        .as_ref()
        .map(|m| m.to_string())
        .filter(|m| !m.is_empty())?;
    Some((group, member))
}

pub fn error_of(e: &Option<BrokerError>) -> (i16, Option<StrBytes>) {
    match e {
        Some(e) => (errors::code(e), errors::message(e)),
        None => (0, None),
    }
}

/// The partition's leader and epoch as this broker knows them (for clients to move on).
pub fn leader_of(broker: &Broker, topic: &str, partition: i32) -> LeaderIdAndEpoch {
    let image = broker.replicas.image();
    match image.topic(topic).and_then(|t| t.partition(partition)) {
        Some(p) => LeaderIdAndEpoch::default()
            .with_leader_id(p.leader)
            .with_leader_epoch(p.leader_epoch),
        None => LeaderIdAndEpoch::default()
            .with_leader_id(-1)
            .with_leader_epoch(-1),
    }
}

fn top_level_error(e: &BrokerError) -> ShareFetchResponse {
    ShareFetchResponse::default()
        .with_error_code(errors::code(e))
        .with_error_message(errors::message(e))
}

//! Produce (0): append each partition's batches now (in request order), answer once every
//! append is durable per its topic's flush policy (acks=1) and copied by every in-sync
//! replica (acks=all). acks=0 requests get no response.

use std::time::Duration;

use futures::future::join_all;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_broker::{AppendOrigin, BrokerError};
use tracing::debug;

use crate::errors;
use crate::leaders::LeaderHints;
use crate::reply::{Reply, Response, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised; v0-2 only so librdkafka enables compression
/// and record batch v2 (see versions.rs), and refused when used.
pub const VERSIONS: (i16, i16) = (0, 12);

pub fn handle(ctx: &Context, reply: Reply, req: ProduceRequest) -> ResponseFuture {
    let broker = &ctx.broker;
    let acks = req.acks;
    // How long acks=all waits for the in-sync replicas (the request's timeout).
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let image = broker.replicas.image();
    let mut hints = LeaderHints::default();
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic_data in req.topic_data {
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for pd in topic_data.partition_data {
            let transactional_id = req.transactional_id.as_ref().map(|t| t.as_str());
            let result = broker
                .replicas.local_leader(&topic_data.name, pd.index, -1)
                .and_then(|p| {
                    let records = pd.records.clone().unwrap_or_default();
                    // v12+: transactions v2, the partition joins the transaction here.
                    broker.transactions.verify_transactional_append(
                        transactional_id,
                        &p,
                        &records,
                        reply.version >= 12,
                    )?;
                    broker
                        .replicas.append(&p, records, acks, AppendOrigin::Client)
                        .map(|pending| (pending, p))
                });
            let leader = match &result {
                Err(e) => {
                    debug!(topic = %topic_data.name.0, partition = pd.index, error = %e, "produce rejected");
                    hints.note(&image, e)
                }
                Ok(_) => None,
            };
            partitions.push((pd.index, result, leader));
        }
        topics.push((topic_data.name, partitions));
    }
    let endpoints: Vec<NodeEndpoint> = hints
        .brokers()
        .filter_map(|b| {
            let (host, port) = b.endpoint(&reply.listener)?;
            Some(
                NodeEndpoint::default()
                    .with_node_id(BrokerId(b.node_id))
                    .with_host(StrBytes::from_string(host.to_string()))
                    .with_port(port as i32)
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect();
    Box::pin(async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, partitions) in topics {
            let waits = partitions
                .into_iter()
                .map(|(index, result, leader)| async move {
                    let outcome = match result {
                        Ok((pending, partition)) => pending
                            .wait(timeout)
                            .await
                            .map(|info| (info, partition.offsets().log_start_offset)),
                        Err(e) => Err(e),
                    };
                    let mut r = PartitionProduceResponse::default().with_index(index);
                    match outcome {
                        Ok((info, log_start)) => {
                            r.base_offset = info.base_offset;
                            r.log_append_time_ms = info.log_append_time;
                            r.log_start_offset = log_start;
                        }
                        Err(e) => {
                            debug!(partition = index, error = %e, "produce failed");
                            r.error_code = errors::code(&e);
                            r.error_message = errors::message(&e);
                            r.base_offset = -1;
                            r.record_errors = record_errors(&e);
                            if let Some((id, epoch)) = leader {
                                r.current_leader = LeaderIdAndEpoch::default()
                                    .with_leader_id(BrokerId(id))
                                    .with_leader_epoch(epoch);
                            }
                        }
                    }
                    r
                });
            let partition_responses = join_all(waits).await;
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_partition_responses(partition_responses),
            );
        }
        if acks == 0 {
            return Response::Nothing;
        }
        reply.encode(
            &ProduceResponse::default()
                .with_responses(responses)
                .with_node_endpoints(endpoints),
        )
    })
}

/// The records a refused batch names (KIP-467, Produce v8+; older versions drop the field).
fn record_errors(e: &BrokerError) -> Vec<BatchIndexAndErrorMessage> {
    match e {
        BrokerError::RecordErrors { records, .. } => records
            .iter()
            .map(|r| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(r.batch_index)
                    .with_batch_index_error_message(Some(StrBytes::from_string(r.message.clone())))
            })
            .collect(),
        _ => Vec::new(),
    }
}

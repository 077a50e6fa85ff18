//! WriteTxnMarkers (27), between brokers: a transaction coordinator asks this broker, the
//! leader of the partitions, to append commit or abort markers to them.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use sluice_broker::txn::TxnMarker;

use crate::errors;
use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions served (see versions.rs, BETWEEN_BROKERS).
pub const VERSIONS: (i16, i16) = (1, 1);

pub fn handle(ctx: &Context, reply: Reply, req: WriteTxnMarkersRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    Box::pin(async move {
        let mut markers = Vec::with_capacity(req.markers.len());
        for m in &req.markers {
            let marker = TxnMarker {
                producer_id: m.producer_id.0,
                producer_epoch: m.producer_epoch,
                commit: m.transaction_result,
                coordinator_epoch: m.coordinator_epoch,
            };
            let partitions = m
                .topics
                .iter()
                .flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.to_string(), *p)))
                .collect();
            let results = broker.transactions.write_txn_markers(marker, partitions).await;
            let mut topics: Vec<WritableTxnMarkerTopicResult> = Vec::new();
            for ((topic, index), result) in results {
                let r = WritableTxnMarkerPartitionResult::default()
                    .with_partition_index(index)
                    .with_error_code(errors::of(&result).0);
                match topics.last_mut() {
                    Some(t) if t.name.as_str() == topic => t.partitions.push(r),
                    _ => topics.push(
                        WritableTxnMarkerTopicResult::default()
                            .with_name(TopicName(super::str(&topic)))
                            .with_partitions(vec![r]),
                    ),
                }
            }
            markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(topics),
            );
        }
        reply.encode(&WriteTxnMarkersResponse::default().with_markers(markers))
    })
}

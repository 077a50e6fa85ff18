//! The answer to a broker-to-broker request that does not come from a broker: every
//! partition (or the request, where the response has no partitions) refused with
//! CLUSTER_AUTHORIZATION_FAILED, in that API's response, as Kafka answers a client without
//! CLUSTER_ACTION.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, AlterPartitionRequest,
    AlterPartitionResponse, ApiKey, ReadShareGroupStateRequest, WriteShareGroupStateRequest,
    WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::reply::{Reply, Response};

const MESSAGE: &str = "only brokers may send this request";

fn code() -> i16 {
    ResponseError::ClusterAuthorizationFailed.code()
}

/// Every partition of a share-state request (read or write: the same shape, different
/// types) refused.
macro_rules! share_state_refusals {
    ($req:expr, $result:ty, $partition:ty) => {
        $req.topics
            .into_iter()
            .map(|t| {
                <$result>::default()
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partitions
                            .into_iter()
                            .map(|p| {
                                <$partition>::default()
                                    .with_partition(p.partition)
                                    .with_error_code(code())
                                    .with_error_message(Some(StrBytes::from_static_str(MESSAGE)))
                            })
                            .collect(),
                    )
            })
            .collect()
    };
}

/// The refusal of `reply.api`'s request `body`; Err for an API that is not broker-only or a
/// body that does not decode (the connection is closed, as for any malformed request).
pub fn refuse(reply: &Reply, body: &mut Bytes) -> Result<Response, String> {
    let v = reply.version;
    let malformed = |e: anyhow::Error| format!("malformed {:?} v{v} request: {e}", reply.api);
    Ok(match reply.api {
        ApiKey::AlterPartition => {
            AlterPartitionRequest::decode(body, v).map_err(malformed)?;
            reply.encode(&AlterPartitionResponse::default().with_error_code(code()))
        }
        ApiKey::AllocateProducerIds => {
            AllocateProducerIdsRequest::decode(body, v).map_err(malformed)?;
            reply.encode(&AllocateProducerIdsResponse::default().with_error_code(code()))
        }
        ApiKey::WriteTxnMarkers => {
            use kafka_protocol::messages::write_txn_markers_response::*;
            let req = WriteTxnMarkersRequest::decode(body, v).map_err(malformed)?;
            let markers = req.markers.into_iter().map(|m| {
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(
                        m.topics
                            .into_iter()
                            .map(|t| {
                                WritableTxnMarkerTopicResult::default()
                                    .with_name(t.name)
                                    .with_partitions(
                                        t.partition_indexes
                                            .into_iter()
                                            .map(|p| {
                                                WritableTxnMarkerPartitionResult::default()
                                                    .with_partition_index(p)
                                                    .with_error_code(code())
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            });
            reply.encode(&WriteTxnMarkersResponse::default().with_markers(markers.collect()))
        }
        ApiKey::ReadShareGroupState => {
            use kafka_protocol::messages::read_share_group_state_response as r;
            let req = ReadShareGroupStateRequest::decode(body, v).map_err(malformed)?;
            let results = share_state_refusals!(req, r::ReadStateResult, r::PartitionResult);
            reply.encode(&r::ReadShareGroupStateResponse::default().with_results(results))
        }
        ApiKey::WriteShareGroupState => {
            use kafka_protocol::messages::write_share_group_state_response as w;
            let req = WriteShareGroupStateRequest::decode(body, v).map_err(malformed)?;
            let results = share_state_refusals!(req, w::WriteStateResult, w::PartitionResult);
            reply.encode(&w::WriteShareGroupStateResponse::default().with_results(results))
        }
        other => return Err(format!("{other:?} is not a broker-only API")),
    })
}

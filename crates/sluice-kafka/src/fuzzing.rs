//! Entry points for fuzzing (fuzz/ and the fuzz smoke test): the request path up to the
//! handlers, without a broker. Whatever the bytes, these return; they never panic or
//! allocate more than the input justifies.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use crate::dispatch::sanitize_client_id;
use crate::versions;

/// Decodes one request frame (without its length prefix) as the connection would: client id
/// clean-up, header, API and version check, then the body as that API's request type.
/// Returns the API on success, the reason the connection would close otherwise.
pub fn decode_request(frame: &[u8]) -> Result<ApiKey, String> {
    if frame.len() < 8 {
        return Err("frame shorter than a header".into());
    }
    let mut owned = frame.to_vec();
    sanitize_client_id(&mut owned);
    let mut buf = Bytes::from(owned);
    let key = i16::from_be_bytes([buf[0], buf[1]]);
    let version = i16::from_be_bytes([buf[2], buf[3]]);
    let api = ApiKey::try_from(key).map_err(|_| format!("unknown API key {key}"))?;
    RequestHeader::decode(&mut buf, api.request_header_version(version))
        .map_err(|e| format!("header: {e}"))?;
    if !versions::implemented(api, version) {
        return Err(format!("{api:?} v{version} is not supported"));
    }
    crate::handlers::decode_body(api, version, &mut buf)?;
    Ok(api)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    /// A frame (no length prefix) of `body` as `api` at `version`.
    fn frame<R: Encodable>(api: ApiKey, version: i16, body: &R) -> Vec<u8> {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("fuzz")))
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.to_vec()
    }

    fn seeds() -> Vec<Vec<u8>> {
        let batch = sluice_log::batch::build_batch(1, &[(Some(b"k"), Some(b"v"))]);
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.into()))])]);
        let topic = metadata_request::MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("t"))));
        let create = create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_num_partitions(3);
        vec![
            frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
            frame(
                ApiKey::Metadata,
                12,
                &MetadataRequest::default().with_topics(Some(vec![topic])),
            ),
            frame(ApiKey::Produce, 9, &produce),
            frame(ApiKey::Produce, 3, &produce),
            frame(ApiKey::Fetch, 12, &FetchRequest::default()),
            frame(
                ApiKey::CreateTopics,
                5,
                &CreateTopicsRequest::default().with_topics(vec![create]),
            ),
            frame(ApiKey::JoinGroup, 9, &JoinGroupRequest::default()),
            frame(ApiKey::OffsetCommit, 8, &OffsetCommitRequest::default()),
            frame(
                ApiKey::ConsumerGroupHeartbeat,
                0,
                &ConsumerGroupHeartbeatRequest::default(),
            ),
        ]
    }

    /// The request_decode fuzz target over a few seconds of mutations, plus every crash ever
    /// found (fuzz/regressions/request_decode/).
    #[test]
    fn request_decode_smoke_fuzz() {
        sluice_log::fuzzing::replay_regressions("request_decode", |f| {
            let _ = decode_request(f);
        });
        let seeds = seeds();
        for s in &seeds {
            decode_request(s).unwrap_or_else(|e| panic!("a valid seed was refused: {e}"));
        }
        let runs = sluice_log::fuzzing::smoke(&seeds, std::time::Duration::from_secs(3), |f| {
            let _ = decode_request(f);
        });
        assert!(runs > 1000, "only {runs} inputs in 3 s");
    }
}

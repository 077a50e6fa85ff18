//! Malformed and hostile input over raw TCP: each case gets a Kafka error code or a closed
//! connection, and the broker keeps serving everyone else with its logs intact.

mod common;

use common::raw::{batch, produce_request, Raw};
use common::Broker;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, ProduceResponse,
    ResponseHeader,
};
use kafka_protocol::protocol::Decodable;

fn produce_error(raw: &mut Raw, topic: &str, records: Vec<u8>) -> (i16, i64) {
    let p = raw.produce(topic, records);
    (p.error_code, p.base_offset)
}

/// The broker still answers a well-formed request on a fresh connection.
fn assert_serving(broker: &Broker) {
    let mut raw = Raw::connect(broker);
    let c = raw.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let r: ApiVersionsResponse = raw.receive_response(ApiKey::ApiVersions, 3, c);
    assert_eq!(r.error_code, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn framing_errors_close_only_that_connection() {
    let broker = Broker::start();
    // A bystander connection opened before the bad ones must keep working.
    let mut bystander = Raw::connect(&broker);

    // An HTTP request read as a length prefix (about 1.1 GB).
    let mut raw = Raw::connect(&broker);
    raw.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    raw.assert_closed();
    // A negative length.
    let mut raw = Raw::connect(&broker);
    raw.send_raw(&(-5i32).to_be_bytes());
    raw.assert_closed();
    // Just above socket.request.max.bytes.
    let mut raw = Raw::connect(&broker);
    raw.send_raw(&(100 * 1024 * 1024 + 1i32).to_be_bytes());
    raw.assert_closed();
    // A request cut short by the client going away.
    let mut raw = Raw::connect(&broker);
    raw.send_raw(&100i32.to_be_bytes());
    raw.send_raw(&[0, 18, 0, 3, 0, 0]);
    drop(raw);
    // An unknown API key.
    let mut raw = Raw::connect(&broker);
    raw.send_raw(&[0, 0, 0, 10, 0x03, 0xE7, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    raw.assert_closed();
    // A known API at a version nobody implements.
    let mut raw = Raw::connect(&broker);
    raw.send(ApiKey::Metadata, 13, &MetadataRequest::default());
    let _ = raw.receive(); // v13 is served; now ask for v14 by hand
    raw.send_raw(&[0, 0, 0, 12, 0, 3, 0, 14, 0, 0, 0, 9, 0, 0, 0, 0]);
    raw.assert_closed();
    // A valid header followed by a body that does not parse.
    let mut raw = Raw::connect(&broker);
    raw.send_raw(&[
        0, 0, 0, 14, 0, 19, 0, 2, 0, 0, 0, 7, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
    ]);
    raw.assert_closed();

    let c = bystander.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let r: ApiVersionsResponse = bystander.receive_response(ApiKey::ApiVersions, 3, c);
    assert_eq!(r.error_code, 0);
    assert_serving(&broker);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_versions_at_an_unknown_version_gets_a_v0_answer() {
    let broker = Broker::start();
    let mut raw = Raw::connect(&broker);
    // ApiVersions v99 (header v2: client id + empty tagged fields), empty body.
    raw.send_raw(&[0, 0, 0, 11, 0, 18, 0, 99, 0, 0, 0, 42, 0xff, 0xff, 0]);
    let mut frame = raw.receive().expect("an answer");
    let header = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, 42);
    let r = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    let produce = r.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 12));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_batches_get_error_codes_and_store_nothing() {
    let broker = Broker::start();
    broker
        .create_topic("guarded", 1, &[("max.message.bytes", "10000")])
        .await;
    let mut raw = Raw::connect(&broker);

    assert_eq!(produce_error(&mut raw, "guarded", batch(b"good")), (0, 0));

    let mut bad_crc = batch(b"flipped");
    *bad_crc.last_mut().unwrap() ^= 0xff;
    assert_eq!(
        produce_error(&mut raw, "guarded", bad_crc).0,
        2,
        "CORRUPT_MESSAGE"
    );

    let mut old_magic = batch(b"old");
    old_magic[16] = 1;
    assert_eq!(
        produce_error(&mut raw, "guarded", old_magic).0,
        35,
        "UNSUPPORTED_VERSION"
    );

    assert_eq!(
        produce_error(&mut raw, "guarded", batch(&[7u8; 20_000])).0,
        10,
        "MESSAGE_TOO_LARGE"
    );

    let mut overrun = batch(b"overrun");
    overrun[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    assert_eq!(
        produce_error(&mut raw, "guarded", overrun).0,
        2,
        "CORRUPT_MESSAGE"
    );

    let good = batch(b"x");
    assert_eq!(
        produce_error(&mut raw, "guarded", good[..good.len() - 3].to_vec()).0,
        2,
        "truncated batch"
    );
    assert_eq!(
        produce_error(&mut raw, "nonexistent", batch(b"x")).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    let c = raw.send(
        ApiKey::Produce,
        9,
        &produce_request("guarded", batch(b"x"), 7),
    );
    let r: ProduceResponse = raw.receive_response(ApiKey::Produce, 9, c);
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 21,
        "INVALID_REQUIRED_ACKS"
    );

    // Only the good batch was stored, and the log still takes appends at the next offset.
    assert_eq!(produce_error(&mut raw, "guarded", batch(b"after")), (0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_zero_gets_no_response_and_responses_keep_request_order() {
    let broker = Broker::start();
    broker.create_topic("quiet", 1, &[]).await;
    let mut raw = Raw::connect(&broker);
    raw.send(
        ApiKey::Produce,
        9,
        &produce_request("quiet", batch(b"fire and forget"), 0),
    );
    let c1 = raw.send(
        ApiKey::Produce,
        9,
        &produce_request("quiet", batch(b"second"), 1),
    );
    let c2 = raw.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let r: ProduceResponse = raw.receive_response(ApiKey::Produce, 9, c1);
    assert_eq!(
        r.responses[0].partition_responses[0].base_offset, 1,
        "the acks=0 batch took offset 0"
    );
    let _: ApiVersionsResponse = raw.receive_response(ApiKey::ApiVersions, 3, c2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_id_that_is_not_utf8_is_served() {
    let broker = Broker::start();
    let mut raw = Raw::connect(&broker);
    // ApiVersions v0: header v1 with a 3-byte client id that is not UTF-8.
    raw.send_raw(&[0, 0, 0, 13, 0, 18, 0, 0, 0, 0, 0, 5, 0, 3, 0xff, 0xfe, b'x']);
    let mut frame = raw.receive().expect("an answer, not a closed connection");
    let header = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, 5);
    let r = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(r.error_code, 0);
}

/// Group and transactional ids longer than their state records' keys can hold (a 16-bit
/// length) are refused, not stored truncated under another id.
#[tokio::test(flavor = "multi_thread")]
async fn ids_too_long_for_their_records_are_refused() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetCommitResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let broker = Broker::start();
    broker.create_topic("long-ids", 1, &[]).await;
    let mut raw = Raw::connect(&broker);
    let long = "g".repeat(40_000);
    let c = raw.send(
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(long)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("long-ids")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1)])]),
    );
    let r: OffsetCommitResponse = raw.receive_response(ApiKey::OffsetCommit, 8, c);
    assert_eq!(r.topics[0].partitions[0].error_code, 24, "INVALID_GROUP_ID");
    assert_serving(&broker);
}

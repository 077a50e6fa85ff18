//! What one client can hold of the broker is bounded: requests in flight per connection, the
//! bytes of requests being handled broker-wide (`queued.max.request.bytes`), and the work of
//! a client that went away, which is dropped at once.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::raw::{served, Raw};
use common::Broker;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

/// A long-poll Fetch v12 of partition 0 of `topic` at offset 0, waiting up to `wait_ms`.
fn long_poll(topic: &str, wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])])
}

/// The framed bytes of `count` long polls, correlation ids from 1.
fn many_long_polls(topic: &str, wait_ms: i32, count: i32) -> Vec<u8> {
    let req = long_poll(topic, wait_ms);
    let mut out = Vec::new();
    for c in 1..=count {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(12)
            .with_correlation_id(c)
            .encode(&mut buf, ApiKey::Fetch.request_header_version(12))
            .unwrap();
        req.encode(&mut buf, 12).unwrap();
        out.extend_from_slice(&(buf.len() as i32).to_be_bytes());
        out.extend_from_slice(&buf);
    }
    out
}

/// Sockets on the broker's port that the client closed and the broker has not (CLOSE_WAIT).
fn close_wait_sockets(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let local_port = cols[1].rsplit(':').next().unwrap();
            u16::from_str_radix(local_port, 16).unwrap() == port && cols[3] == "08"
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_has_at_most_sixteen_requests_in_flight() {
    let broker = Broker::start();
    broker.create_topic("quiet", 1, &[]).await;
    let mut raw = Raw::connect(&broker);
    // 17 fetches that each wait 2 s for data that never comes, then an ApiVersions: the
    // 17th is read only once the first is answered, so everything takes two rounds.
    let started = Instant::now();
    raw.send_raw(&many_long_polls("quiet", 2000, 17));
    let c = raw.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    for _ in 0..17 {
        raw.receive().expect("a fetch response");
    }
    let _: ApiVersionsResponse = raw.receive_response(ApiKey::ApiVersions, 3, c);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(3500), "answered in {took:?}");

    // 30,000 pipelined long polls are not all taken in: the broker's memory stays flat.
    let before = broker.rss_kb();
    let mut flood = Raw::connect(&broker);
    flood.send_raw(&many_long_polls("quiet", 20_000, 30_000));
    std::thread::sleep(Duration::from_secs(2));
    let grown = broker.rss_kb().saturating_sub(before);
    assert!(grown < 8 * 1024, "RSS grew by {grown} KB");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_frees_its_pending_work_at_once() {
    let broker = Broker::start();
    broker.create_topic("quiet", 1, &[]).await;
    let mut raw = Raw::connect(&broker);
    raw.send_raw(&many_long_polls("quiet", 20_000, 10));
    std::thread::sleep(Duration::from_millis(300));
    drop(raw);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let waiting = close_wait_sockets(broker.port);
        if waiting == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} socket(s) still in CLOSE_WAIT: the broker kept the dead client's fetches"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bytes_are_bounded_broker_wide() {
    // Room for about ten small requests at once.
    let broker = Broker::start_with_config("queued.max.request.bytes = 1000\n");
    broker.create_topic("quiet", 1, &[]).await;
    let mut holder = Raw::connect(&broker);
    let polls = many_long_polls("quiet", 2500, 16);
    assert!(polls.len() - 16 * 4 > 1000, "{} bytes", polls.len());
    holder.send_raw(&polls);
    std::thread::sleep(Duration::from_millis(300));
    // Another client's request waits until the long polls give their bytes back.
    let mut other = Raw::connect(&broker);
    let started = Instant::now();
    let c = other.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let r: ApiVersionsResponse = other.receive_response(ApiKey::ApiVersions, 3, c);
    assert_eq!(r.error_code, 0);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1500), "answered in {took:?}");
    for _ in 0..16 {
        holder.receive().expect("a fetch response");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_and_requests_that_never_complete_are_cut() {
    let broker = Broker::start_with_config(
        "connections.max.idle.ms = 1200\nsocket.request.read.timeout.ms = 700\n",
    );
    // Silent after connecting.
    let mut silent = Raw::connect(&broker);
    // A request that announces 100 bytes and sends 10 (slowloris).
    let mut partial = Raw::connect(&broker);
    partial.send_raw(&100i32.to_be_bytes());
    partial.send_raw(&[0, 18, 0, 3, 0, 0, 0, 1, 0, 0]);
    // A busy connection is not idle.
    let mut busy = Raw::connect(&broker);
    for _ in 0..6 {
        let c = busy.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let _: ApiVersionsResponse = busy.receive_response(ApiKey::ApiVersions, 3, c);
        std::thread::sleep(Duration::from_millis(300));
    }
    silent.assert_closed();
    partial.assert_closed();
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_per_ip_limit_are_closed() {
    let broker = Broker::start_with_config("max.connections.per.ip = 3\n");
    std::thread::sleep(Duration::from_millis(300));
    let held: Vec<Raw> = (0..3).map(|_| Raw::connect(&broker)).collect();
    assert!(
        !served(&broker),
        "a fourth connection from 127.0.0.1 is refused"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        served(&broker),
        "places are given back when connections close"
    );

    let broker = Broker::start_with_config(
        "\"max.connections.per.ip\" = 1\n\"max.connections.per.ip.overrides\" = \"127.0.0.1:4\"\n",
    );
    // (The harness's own probe connection may take a moment to be let go.)
    std::thread::sleep(Duration::from_millis(300));
    let held: Vec<Raw> = (0..3).map(|_| Raw::connect(&broker)).collect();
    assert!(served(&broker), "the override allows 4");
    drop(held);

    let broker = Broker::start_with_config("max.connections = 2\n");
    std::thread::sleep(Duration::from_millis(300));
    let held: Vec<Raw> = (0..2).map(|_| Raw::connect(&broker)).collect();
    assert!(!served(&broker), "max.connections is reached");
    drop(held);
}

#[test]
fn connections_opened_faster_than_the_per_ip_rate_are_closed() {
    let broker = Broker::start_with_config("\"max.connection.creation.rate.per.ip\" = 5\n");
    // The harness's own probes took tokens; a second refills them all.
    std::thread::sleep(Duration::from_millis(1100));
    let started = Instant::now();
    let answered: Vec<bool> = (0..12).map(|_| served(&broker)).collect();
    let took = started.elapsed().as_secs_f64();
    let ok = answered.iter().filter(|a| **a).count();
    // A burst of 5, and 5 more per second while the loop ran.
    assert!(
        ok >= 5 && (ok as f64) <= 5.0 + 5.0 * took + 1.0,
        "{ok} of 12 in {took:.2} s: {answered:?}"
    );
    assert!(
        !answered[11],
        "the twelfth in a burst is refused: {answered:?}"
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert!(served(&broker), "the rate refills");
}

//! A raw Kafka protocol client for tests that need exact bytes on the wire.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::Broker;

pub struct Raw {
    stream: TcpStream,
    next_correlation: i32,
}

impl Raw {
    pub fn connect(broker: &Broker) -> Raw {
        Raw::connect_to(&broker.host, broker.port)
    }

    /// Connects to a broker at an address of its own choosing (another interface).
    pub fn connect_to(host: &str, port: u16) -> Raw {
        Raw::over(TcpStream::connect((host, port)).unwrap())
    }

    fn over(stream: TcpStream) -> Raw {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw {
            stream,
            next_correlation: 1,
        }
    }

    /// Connects from `source` (an address of this machine, e.g. 127.0.0.5: any of 127/8
    /// is local), so the broker sees a peer that is not at a broker's address.
    pub fn connect_from(broker: &Broker, source: &str) -> Raw {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let from: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
        socket.bind(&from.into()).unwrap();
        let to: std::net::SocketAddr = format!("{}:{}", broker.host, broker.port).parse().unwrap();
        socket.connect(&to.into()).unwrap();
        Raw::over(socket.into())
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn send<R: Encodable>(&mut self, api: ApiKey, version: i16, body: &R) -> i32 {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("raw-test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&buf);
        self.send_raw(&frame);
        correlation
    }

    /// The next response frame, or None if the broker closed the connection.
    pub fn receive(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    pub fn receive_response<R: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation: i32,
    ) -> R {
        let mut frame = self.receive().expect("a response");
        let header =
            ResponseHeader::decode(&mut frame, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation);
        R::decode(&mut frame, version).unwrap()
    }

    /// Produces `records` to partition 0 of `topic` with acks=all (Produce v9) and returns the
    /// partition's answer.
    pub fn produce(&mut self, topic: &str, records: Vec<u8>) -> PartitionProduceResponse {
        let c = self.send(ApiKey::Produce, 9, &produce_request(topic, records, -1));
        let mut r: ProduceResponse = self.receive_response(ApiKey::Produce, 9, c);
        r.responses.remove(0).partition_responses.remove(0)
    }

    pub fn assert_closed(&mut self) {
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the broker to close the connection, got {other:?}"),
        }
    }
}

/// Connects and reports whether the broker answers an ApiVersions on the new connection.
pub fn served(broker: &Broker) -> bool {
    let mut raw = Raw::connect(broker);
    raw.send_raw(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    raw.receive().is_some()
}

/// A Produce request of `records` for partition 0 of `topic`.
pub fn produce_request(topic: &str, records: Vec<u8>, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])])
}

/// A valid magic-2 batch with one record.
pub fn batch(value: &[u8]) -> Vec<u8> {
    sluice_test_batch::build(value, -1, -1, -1)
}

/// A one-record batch from an idempotent producer.
pub fn idempotent_batch(value: &[u8], producer_id: i64, epoch: i16, sequence: i32) -> Vec<u8> {
    sluice_test_batch::build(value, producer_id, epoch, sequence)
}

/// Produce (acks=all) at `version` naming `transactional_id`: the partition's error code.
pub fn produce_transactional(
    raw: &mut Raw,
    version: i16,
    transactional_id: &str,
    (topic, partition): (&str, i32),
    batch: Vec<u8>,
) -> i16 {
    let request = ProduceRequest::default()
        .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(
            StrBytes::from_string(transactional_id.to_string()),
        )))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch.into()))])]);
    let c = raw.send(ApiKey::Produce, version, &request);
    let r: ProduceResponse = raw.receive_response(ApiKey::Produce, version, c);
    r.responses[0].partition_responses[0].error_code
}

/// A transactional batch (attribute bit 4) of one record per value.
pub fn transactional_batch(values: &[&str], producer_id: i64, epoch: i16, seq: i32) -> Vec<u8> {
    use sluice_test_batch::{batch_of, record, Header};
    let records: Vec<u8> = values
        .iter()
        .enumerate()
        .flat_map(|(i, v)| record(i as i64, 0, None, Some(v.as_bytes())))
        .collect();
    let header = Header {
        attributes: 0x10,
        producer: (producer_id, epoch, seq),
        timestamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
        ..Header::plain(values.len() as i32)
    };
    batch_of(&records, &header)
}

pub mod sluice_test_batch {
    /// Builds an uncompressed magic-2 batch by hand (the broker under test must not share code
    /// with the test's encoder, so this is written out here).
    pub fn build(value: &[u8], producer_id: i64, epoch: i16, sequence: i32) -> Vec<u8> {
        let records = record(0, 0, None, Some(value));
        let header = Header {
            producer: (producer_id, epoch, sequence),
            ..Header::plain(1)
        };
        batch_of(&records, &header)
    }

    /// One encoded record (attributes 0, no headers).
    pub fn record(
        offset_delta: i64,
        ts_delta: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut rec = vec![0u8]; // attributes
        zigzag(&mut rec, ts_delta);
        zigzag(&mut rec, offset_delta);
        for field in [key, value] {
            match field {
                Some(b) => {
                    zigzag(&mut rec, b.len() as i64);
                    rec.extend_from_slice(b);
                }
                None => zigzag(&mut rec, -1),
            }
        }
        rec.push(0); // no headers
        let mut out = Vec::new();
        zigzag(&mut out, rec.len() as i64);
        out.extend_from_slice(&rec);
        out
    }

    /// The header fields a test may set.
    pub struct Header {
        pub record_count: i32,
        pub last_offset_delta: i32,
        pub timestamp: i64,
        pub attributes: i16,
        pub producer: (i64, i16, i32),
    }

    impl Header {
        /// `count` records, timestamps at 2023-11-14, no compression, no producer id.
        pub fn plain(count: i32) -> Header {
            Header {
                record_count: count,
                last_offset_delta: count - 1,
                timestamp: 1_700_000_000_000,
                attributes: 0,
                producer: (-1, -1, -1),
            }
        }
    }

    /// A magic-2 batch around `records` (encoded, and compressed if the attributes say so).
    pub fn batch_of(records: &[u8], h: &Header) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes()); // base offset
        b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 4]); // crc, filled below
        b.extend_from_slice(&h.attributes.to_be_bytes());
        b.extend_from_slice(&h.last_offset_delta.to_be_bytes());
        b.extend_from_slice(&h.timestamp.to_be_bytes());
        b.extend_from_slice(&h.timestamp.to_be_bytes());
        b.extend_from_slice(&h.producer.0.to_be_bytes());
        b.extend_from_slice(&h.producer.1.to_be_bytes());
        b.extend_from_slice(&h.producer.2.to_be_bytes());
        b.extend_from_slice(&h.record_count.to_be_bytes());
        b.extend_from_slice(records);
        let crc = crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn zigzag(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    /// Bitwise CRC-32C (Castagnoli), slow and independent of the broker's implementation.
    fn crc32c(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= byte as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}

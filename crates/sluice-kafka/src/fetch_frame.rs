//! The Fetch response as a list of chunks: encoded fields in memory, and records as file
//! ranges that the connection sends straight from the page cache (sendfile). The records are
//! never read into the broker's memory nor copied into an encode buffer.
//!
//! The frame is Kafka's FetchResponse byte for byte: each partition is encoded by the
//! kafka-protocol crate with null records, and its null marker is replaced by the records'
//! length and the file range. Tagged fields (a partition's DivergingEpoch, CurrentLeader and
//! SnapshotId, the response's NodeEndpoints) are encoded by the crate too. A test compares the
//! result with the crate's own encoding of the same response at every version.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{NodeEndpoint, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_log::ReadSlice;
use uuid::Uuid;

/// Part of a response frame.
pub enum Chunk {
    Memory(Bytes),
    File(ReadSlice),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Memory(b) => b.len(),
            Chunk::File(s) => s.len,
        }
    }
}

/// One partition's answer: its fields (records left `None`) and the records to send.
pub struct PartitionAnswer {
    pub data: PartitionData,
    pub records: Option<ReadSlice>,
}

pub struct TopicAnswer {
    pub name: TopicName,
    pub id: Uuid,
    pub partitions: Vec<PartitionAnswer>,
}

const FIRST_FLEXIBLE_VERSION: i16 = 12;
const FIRST_TOPIC_ID_VERSION: i16 = 13;

/// Builds the whole response frame (length prefix included) for `version`. `node_endpoints`
/// (v16+) names the brokers a CurrentLeader points at (KIP-951).
pub fn encode(
    version: i16,
    correlation_id: i32,
    topics: Vec<TopicAnswer>,
    node_endpoints: Vec<NodeEndpoint>,
) -> anyhow::Result<Vec<Chunk>> {
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    let mut out = FrameBuilder::default();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut out.buf, ApiKey::Fetch.response_header_version(version))?;
    if version >= 1 {
        out.buf.put_i32(0); // throttle_time_ms
    }
    if version >= 7 {
        out.buf.put_i16(0); // error_code
        out.buf.put_i32(0); // session_id: sessions are not kept
    }
    put_array_len(&mut out.buf, topics.len(), flexible);
    for topic in topics {
        if version >= FIRST_TOPIC_ID_VERSION {
            out.buf.put_slice(topic.id.as_bytes());
        } else {
            put_string(&mut out.buf, &topic.name.0, flexible);
        }
        put_array_len(&mut out.buf, topic.partitions.len(), flexible);
        for p in topic.partitions {
            out.partition(p, version, flexible)?;
        }
        if flexible {
            out.buf.put_u8(0); // no tagged fields
        }
    }
    if flexible {
        out.response_tagged_fields(version, node_endpoints)?;
    }
    Ok(out.finish())
}

/// Bytes of a flexible FetchResponse before its responses array: throttle time, error code,
/// session id.
const FLEXIBLE_FIXED_FIELDS: usize = 4 + 2 + 4;

#[derive(Default)]
struct FrameBuilder {
    chunks: Vec<Chunk>,
    buf: BytesMut,
}

impl FrameBuilder {
    fn partition(
        &mut self,
        p: PartitionAnswer,
        version: i16,
        flexible: bool,
    ) -> anyhow::Result<()> {
        let PartitionAnswer { mut data, records } = p;
        data.records = None;
        let start = self.buf.len();
        // The partition's tagged fields, encoded by the crate: what follows the null records
        // marker when the partition is encoded with them, against without.
        let tagged = if flexible && has_tagged_fields(&data) {
            let mut with = BytesMut::new();
            data.encode(&mut with, version)?;
            let mut without = data.clone();
            clear_tagged_fields(&mut without);
            let plain_len = without.compute_size(version)?;
            // `plain_len` ends in the null marker and an empty tagged section (1 byte each).
            Some(with.split_off(plain_len - 1).freeze())
        } else {
            None
        };
        if tagged.is_some() {
            clear_tagged_fields(&mut data);
        }
        data.encode(&mut self.buf, version)?;
        // With null records the encoding ends in the null marker, then (flexible) an empty
        // tagged-field section: cut both and write the real records in their place.
        let tail = if flexible { 2 } else { 4 };
        debug_assert!(self.buf.len() - start >= tail);
        self.buf.truncate(self.buf.len() - tail);
        let len = records.as_ref().map_or(0, |r| r.len);
        if flexible {
            put_uvarint(&mut self.buf, len as u64 + 1);
        } else {
            self.buf.put_i32(len as i32);
        }
        if let Some(r) = records.filter(|r| r.len > 0) {
            self.chunks.push(Chunk::Memory(self.buf.split().freeze()));
            self.chunks.push(Chunk::File(r));
        }
        match tagged {
            Some(t) => self.buf.put_slice(&t),
            None if flexible => self.buf.put_u8(0),
            None => {}
        }
        Ok(())
    }

    /// The response's tagged-field section: NodeEndpoints, encoded by the crate.
    fn response_tagged_fields(
        &mut self,
        version: i16,
        node_endpoints: Vec<NodeEndpoint>,
    ) -> anyhow::Result<()> {
        if node_endpoints.is_empty() || version < 16 {
            self.buf.put_u8(0);
            return Ok(());
        }
        let mut encoded = BytesMut::new();
        FetchResponse::default()
            .with_node_endpoints(node_endpoints)
            .encode(&mut encoded, version)?;
        // After the fixed fields comes the empty responses array (one byte), then the tags.
        self.buf.put_slice(&encoded[FLEXIBLE_FIXED_FIELDS + 1..]);
        Ok(())
    }

    /// The chunks, with the frame's length prefix in front.
    fn finish(mut self) -> Vec<Chunk> {
        if !self.buf.is_empty() {
            self.chunks.push(Chunk::Memory(self.buf.split().freeze()));
        }
        let body: usize = self.chunks.iter().map(Chunk::len).sum();
        let prefix = Bytes::copy_from_slice(&(body as i32).to_be_bytes());
        let mut chunks = Vec::with_capacity(self.chunks.len() + 1);
        chunks.push(Chunk::Memory(prefix));
        chunks.extend(self.chunks);
        chunks
    }
}

fn has_tagged_fields(p: &PartitionData) -> bool {
    let default = PartitionData::default();
    p.diverging_epoch != default.diverging_epoch
        || p.current_leader != default.current_leader
        || p.snapshot_id != default.snapshot_id
        || !p.unknown_tagged_fields.is_empty()
}

fn clear_tagged_fields(p: &mut PartitionData) {
    let default = PartitionData::default();
    p.diverging_epoch = default.diverging_epoch;
    p.current_leader = default.current_leader;
    p.snapshot_id = default.snapshot_id;
    p.unknown_tagged_fields.clear();
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_array_len(buf: &mut BytesMut, n: usize, flexible: bool) {
    if flexible {
        put_uvarint(buf, n as u64 + 1);
    } else {
        buf.put_i32(n as i32);
    }
}

fn put_string(buf: &mut BytesMut, s: &StrBytes, flexible: bool) {
    if flexible {
        put_uvarint(buf, s.len() as u64 + 1);
    } else {
        buf.put_i16(s.len() as i16);
    }
    buf.put_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch,
    };
    use kafka_protocol::messages::BrokerId;
    use std::io::Write;
    use std::sync::Arc;

    fn flatten(chunks: &[Chunk]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            match c {
                Chunk::Memory(b) => out.extend_from_slice(b),
                Chunk::File(s) => out.extend_from_slice(&s.read_to_vec().unwrap()),
            }
        }
        out
    }

    #[test]
    fn frames_match_the_crates_encoding_at_every_version() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        file.write_all(&data).unwrap();
        let file = Arc::new(file);
        let slice = |pos: usize, len: usize| ReadSlice {
            file: file.clone(),
            position: pos as u64,
            len,
            whole_through: None,
        };
        let names = ["alpha", "b"];
        let ids = [Uuid::from_u128(7), Uuid::from_u128(9)];
        // (topic, partition, error, records as (position, length))
        type Part = (usize, i32, i16, Option<(usize, usize)>);
        let parts: Vec<Part> = vec![
            (0, 0, 0, Some((0, 1000))),
            (0, 3, 0, None),
            (0, 4, 1, Some((10, 0))),
            (1, 1, 0, Some((1000, 3000))),
        ];
        for version in 4..=17i16 {
            let pd = |p: i32, err: i16| {
                let d = PartitionData::default()
                    .with_partition_index(p)
                    .with_error_code(err)
                    .with_high_watermark(1234 + p as i64)
                    .with_last_stable_offset(1200)
                    .with_log_start_offset(if version >= 5 { 17 } else { -1 });
                match (version >= 12, p) {
                    // A follower told where its log diverges; a client told the new leader.
                    (true, 3) => d.with_diverging_epoch(
                        EpochEndOffset::default().with_epoch(4).with_end_offset(900),
                    ),
                    (true, 4) => d.with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(2))
                            .with_leader_epoch(7),
                    ),
                    _ => d,
                }
            };
            let endpoints = if version >= 16 {
                vec![NodeEndpoint::default()
                    .with_node_id(BrokerId(2))
                    .with_host(StrBytes::from_static_str("broker-2"))
                    .with_port(9093)]
            } else {
                Vec::new()
            };
            let mut answers: Vec<TopicAnswer> = (0..2)
                .map(|t| TopicAnswer {
                    name: TopicName(StrBytes::from_static_str(names[t])),
                    id: ids[t],
                    partitions: Vec::new(),
                })
                .collect();
            let mut expected = FetchResponse::default().with_node_endpoints(endpoints.clone());
            for t in 0..2 {
                let mut ft = FetchableTopicResponse::default();
                if version >= 13 {
                    ft.topic_id = ids[t];
                } else {
                    ft.topic = TopicName(StrBytes::from_static_str(names[t]));
                }
                expected.responses.push(ft);
            }
            for &(t, p, err, records) in &parts {
                let mut full = pd(p, err);
                full.records = Some(match records {
                    Some((pos, len)) => Bytes::copy_from_slice(&data[pos..pos + len]),
                    None => Bytes::new(),
                });
                expected.responses[t].partitions.push(full);
                answers[t].partitions.push(PartitionAnswer {
                    data: pd(p, err),
                    records: records.map(|(pos, len)| slice(pos, len)),
                });
            }
            let mut want = BytesMut::new();
            want.put_i32(0);
            ResponseHeader::default()
                .with_correlation_id(77)
                .encode(&mut want, ApiKey::Fetch.response_header_version(version))
                .unwrap();
            expected.encode(&mut want, version).unwrap();
            let len = (want.len() - 4) as i32;
            want[..4].copy_from_slice(&len.to_be_bytes());
            let got = flatten(&encode(version, 77, answers, endpoints).unwrap());
            assert_eq!(got, want.to_vec(), "Fetch v{version}");
        }
    }
}

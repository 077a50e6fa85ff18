//! The ShareFetch response with its records sent from the page cache (sendfile), as Fetch's
//! (`fetch_frame.rs`). ShareFetch's records sit between other fields (AcquiredRecords come
//! after them), so the response is encoded by the kafka-protocol crate with a unique
//! placeholder in each partition's records, and the frame is cut at each placeholder: the
//! encoded bytes around it are sent from memory, the records' length and file ranges in its
//! place. A test compares the result with the crate's encoding of the real records.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ShareFetchResponse;
use sluice_broker::share::ShareRecords;

use crate::fetch_frame::Chunk;
use crate::reply::{Reply, Response};

/// Placeholders are this long: a compact length of one byte (17) in front of each.
const MARK_LEN: usize = 16;

/// Encodes `response` with `records[i]` in place of the partition whose records the caller
/// set to `marks[i]` (from `placeholder`), in encoding order.
pub fn encode(
    reply: &Reply,
    response: &ShareFetchResponse,
    parts: Vec<(Bytes, ShareRecords)>,
) -> Response {
    let frame = match reply.encode(response) {
        Response::Frame(frame) => frame,
        other => return other,
    };
    if parts.is_empty() {
        return Response::Frame(frame);
    }
    match splice(frame, parts) {
        Ok(chunks) => Response::Chunks(chunks),
        Err(reason) => Response::Close(format!("could not build a ShareFetch response: {reason}")),
    }
}

/// A placeholder no encoded field will contain by chance (random, checked to occur once).
pub fn placeholder() -> Bytes {
    Bytes::copy_from_slice(uuid::Uuid::new_v4().as_bytes())
}

fn splice(frame: BytesMut, parts: Vec<(Bytes, ShareRecords)>) -> Result<Vec<Chunk>, String> {
    let frame = frame.freeze();
    let mut chunks = Vec::with_capacity(parts.len() * 3 + 2);
    // The length prefix is written last, once the body's size is known.
    chunks.push(Chunk::Memory(Bytes::new()));
    let mut cut = 4;
    for (mark, records) in parts {
        let at = memchr::memmem::find(&frame[cut..], &mark)
            .map(|i| cut + i)
            .ok_or("placeholder not found")?;
        if memchr::memmem::find(&frame[at + MARK_LEN..], &mark).is_some() {
            return Err("placeholder found twice".into());
        }
        if at == cut || frame[at - 1] != (MARK_LEN as u8 + 1) {
            return Err("placeholder without its length".into());
        }
        chunks.push(Chunk::Memory(frame.slice(cut..at - 1)));
        let mut len = BytesMut::with_capacity(5);
        put_uvarint(&mut len, records.len as u64 + 1);
        chunks.push(Chunk::Memory(len.freeze()));
        chunks.extend(records.slices.into_iter().map(Chunk::File));
        cut = at + MARK_LEN;
    }
    chunks.push(Chunk::Memory(frame.slice(cut..)));
    let body: usize = chunks.iter().map(Chunk::len).sum::<usize>();
    chunks[0] = Chunk::Memory(Bytes::copy_from_slice(&(body as i32).to_be_bytes()));
    Ok(chunks)
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::share_fetch_response::{
        AcquiredRecords, PartitionData, ShareFetchableTopicResponse,
    };
    use kafka_protocol::messages::ApiKey;
    use std::io::Write;
    use std::sync::Arc;

    fn reply() -> Reply {
        Reply {
            api: ApiKey::ShareFetch,
            version: 1,
            correlation_id: 7,
            client_id: "t".into(),
            peer: "127.0.0.1:1".parse().unwrap(),
            listener: Arc::from("PLAINTEXT"),
            session: Arc::new(crate::session::Session::new(
                Arc::from("PLAINTEXT"),
                sluice_broker::listeners::SecurityProtocol::Plaintext,
            )),
        }
    }

    fn response(records: &[Option<Bytes>]) -> ShareFetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_records(r.clone())
                    .with_acquired_records(vec![AcquiredRecords::default()
                        .with_first_offset(i as i64 * 10)
                        .with_last_offset(i as i64 * 10 + 3)
                        .with_delivery_count(1)])
            })
            .collect();
        ShareFetchResponse::default()
            .with_acquisition_lock_timeout_ms(30_000)
            .with_responses(vec![ShareFetchableTopicResponse::default()
                .with_topic_id(uuid::Uuid::from_u128(42))
                .with_partitions(partitions)])
    }

    fn bytes_of(r: Response) -> Vec<u8> {
        match r {
            Response::Frame(f) => f.to_vec(),
            Response::Chunks(chunks) => {
                let mut out = Vec::new();
                for c in chunks {
                    match c {
                        Chunk::Memory(b) => out.extend_from_slice(&b),
                        Chunk::File(s) => {
                            s.read_append(&mut out).unwrap();
                        }
                    }
                }
                out
            }
            _ => panic!("no frame"),
        }
    }

    #[test]
    fn the_spliced_frame_is_the_crates_encoding_of_the_records() {
        let mut file = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&content).unwrap();
        let file = Arc::new(file);
        let slice = |position: u64, len: usize| sluice_log::ReadSlice {
            file: file.clone(),
            position,
            len,
            whole_through: None,
        };
        // Partition 0: two ranges (200 bytes, as if across segments); 1: an empty record set
        // (nothing to deliver; never null, as the handler sends it); 2: 1000 bytes.
        let first = [content[100..150].to_vec(), content[400..550].to_vec()].concat();
        let second = content[1000..2000].to_vec();
        let expected = bytes_of(reply().encode(&response(&[
            Some(Bytes::from(first)),
            Some(Bytes::new()),
            Some(Bytes::from(second)),
        ])));
        let (m0, m2) = (placeholder(), placeholder());
        let with_marks = response(&[Some(m0.clone()), Some(Bytes::new()), Some(m2.clone())]);
        let parts = vec![
            (
                m0,
                ShareRecords {
                    slices: vec![slice(100, 50), slice(400, 150)],
                    len: 200,
                },
            ),
            (
                m2,
                ShareRecords {
                    slices: vec![slice(1000, 1000)],
                    len: 1000,
                },
            ),
        ];
        let spliced = bytes_of(encode(&reply(), &with_marks, parts));
        assert_eq!(spliced, expected);
    }
}

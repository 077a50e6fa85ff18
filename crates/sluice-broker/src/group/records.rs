//! The records of `__consumer_offsets`, in Kafka's own formats so Kafka tooling can read them:
//! OffsetCommitKey v1 / OffsetCommitValue v3, GroupMetadataKey v2 / GroupMetadataValue v3.
//! A record with a null value is a tombstone for its key.

use bytes::Bytes;

use crate::record_fields::{Reader, Writer};

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// A group member as stored in group metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's state as stored after each rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<StoredMember>,
}

/// A decoded `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<StoredGroup>,
    },
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(1);
    w.string(group);
    w.string(topic);
    w.i32(partition);
    w.0
}

pub fn offset_value(c: &CommittedOffset) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(3);
    w.i64(c.offset);
    w.i32(c.leader_epoch);
    w.string(&c.metadata);
    w.i64(c.commit_timestamp);
    w.0
}

pub fn group_key(group: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(2);
    w.string(group);
    w.0
}

pub fn group_value(g: &StoredGroup) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(3);
    w.string(&g.protocol_type);
    w.i32(g.generation);
    w.nullable_string(g.protocol.as_deref());
    w.nullable_string(g.leader.as_deref());
    w.i64(g.state_timestamp);
    w.i32(g.members.len() as i32);
    for m in &g.members {
        w.string(&m.member_id);
        w.nullable_string(m.group_instance_id.as_deref());
        w.string(&m.client_id);
        w.string(&m.client_host);
        w.i32(m.rebalance_timeout_ms);
        w.i32(m.session_timeout_ms);
        w.bytes(&m.subscription);
        w.bytes(&m.assignment);
    }
    w.0
}

/// Decodes a record; `None` for keys of formats this broker does not use.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<OffsetsRecord>, String> {
    let mut k = Reader(key);
    match k.i16()? {
        0 | 1 => {
            let group = k.string()?;
            let topic = k.string()?;
            let partition = k.i32()?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(Some(OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            }))
        }
        2 => {
            let group = k.string()?;
            let value = value.map(decode_group_value).transpose()?;
            Ok(Some(OffsetsRecord::Group { group, value }))
        }
        _ => Ok(None),
    }
}

fn decode_offset_value(v: &[u8]) -> Result<CommittedOffset, String> {
    let mut r = Reader(v);
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

fn decode_group_value(v: &[u8]) -> Result<StoredGroup, String> {
    let mut r = Reader(v);
    let version = r.i16()?;
    if version != 3 {
        return Err(format!(
            "group metadata value version {version} is not supported"
        ));
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let state_timestamp = r.i64()?;
    let count = r.i32()?;
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        members.push(StoredMember {
            member_id: r.string()?,
            group_instance_id: r.nullable_string()?,
            client_id: r.string()?,
            client_host: r.string()?,
            rebalance_timeout_ms: r.i32()?,
            session_timeout_ms: r.i32()?,
            subscription: Bytes::copy_from_slice(r.bytes()?),
            assignment: Bytes::copy_from_slice(r.bytes()?),
        });
    }
    Ok(StoredGroup {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_and_group_records_round_trip() {
        let c = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp: 99,
        };
        let rec = decode(&offset_key("g", "t", 7), Some(&offset_value(&c)))
            .unwrap()
            .unwrap();
        assert_eq!(
            rec,
            OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 7,
                value: Some(c)
            }
        );
        let g = StoredGroup {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp: 1,
            members: vec![StoredMember {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300000,
                session_timeout_ms: 45000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let rec = decode(&group_key("g"), Some(&group_value(&g)))
            .unwrap()
            .unwrap();
        assert_eq!(
            rec,
            OffsetsRecord::Group {
                group: "g".into(),
                value: Some(g)
            }
        );
        assert_eq!(
            decode(&group_key("g"), None).unwrap(),
            Some(OffsetsRecord::Group {
                group: "g".into(),
                value: None
            })
        );
        assert!(decode(&[0, 1, 0], None).is_err());
    }
}

//! Kafka's `__transaction_state` record formats (key and value version 0): a transactional
//! id's producer, epoch, timeout, state and partitions. A null value (tombstone) forgets the
//! id.

use std::collections::BTreeSet;

use super::state::{TxnMetadata, TxnState};
use crate::record_fields::{Reader, Writer};

pub fn key(transactional_id: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(0);
    w.string(transactional_id);
    w.0
}

pub fn value(m: &TxnMetadata) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(0);
    w.i64(m.producer_id);
    w.i16(m.producer_epoch);
    w.i32(m.timeout_ms);
    w.0.push(m.state.code() as u8);
    // Kafka writes null partitions for Empty and the completed states.
    if m.partitions.is_empty() {
        w.i32(-1);
    } else {
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (t, p) in &m.partitions {
            match topics.last_mut() {
                Some((name, ps)) if *name == t.as_str() => ps.push(*p),
                _ => topics.push((t, vec![*p])),
            }
        }
        w.i32(topics.len() as i32);
        for (t, ps) in topics {
            w.string(t);
            w.i32(ps.len() as i32);
            for p in ps {
                w.i32(p);
            }
        }
    }
    w.i64(m.last_update_ms);
    w.i64(m.txn_start_ms);
    w.0
}

/// Reads a record: the transactional id and its metadata (`None` for a tombstone).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<(String, Option<TxnMetadata>), String> {
    let mut k = Reader(key);
    let version = k.i16()?;
    if version != 0 {
        return Err(format!("unknown __transaction_state key version {version}"));
    }
    let id = k.string()?;
    let Some(value) = value else {
        return Ok((id, None));
    };
    let mut r = Reader(value);
    let version = r.i16()?;
    if version != 0 {
        return Err(format!(
            "unknown __transaction_state value version {version}"
        ));
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let state = TxnState::from_code(r.take(1)?[0] as i8)
        .ok_or_else(|| "unknown transaction state".to_string())?;
    let mut partitions = BTreeSet::new();
    let topics = r.i32()?;
    for _ in 0..topics.max(0) {
        let topic = r.string()?;
        let n = r.i32()?;
        if n < 0 || n as usize > r.0.len() / 4 {
            return Err(format!("bad partition count {n}"));
        }
        for _ in 0..n {
            partitions.insert((topic.clone(), r.i32()?));
        }
    }
    let last_update_ms = r.i64()?;
    let txn_start_ms = r.i64()?;
    let mut m = TxnMetadata::new(&id, producer_id, timeout_ms);
    m.producer_epoch = producer_epoch;
    m.state = state;
    m.partitions = partitions;
    m.last_update_ms = last_update_ms;
    m.txn_start_ms = txn_start_ms;
    Ok((id, Some(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips() {
        let mut m = TxnMetadata::new("tx-1", 4000, 60_000);
        m.producer_epoch = 3;
        m.state = TxnState::Ongoing;
        m.partitions.insert(("a".into(), 0));
        m.partitions.insert(("a".into(), 2));
        m.partitions.insert(("b".into(), 1));
        m.txn_start_ms = 10;
        m.last_update_ms = 20;
        let (id, back) = decode(&key("tx-1"), Some(&value(&m))).unwrap();
        assert_eq!(id, "tx-1");
        let back = back.unwrap();
        assert_eq!(
            (
                back.producer_id,
                back.producer_epoch,
                back.timeout_ms,
                back.state
            ),
            (4000, 3, 60_000, TxnState::Ongoing)
        );
        assert_eq!(back.partitions, m.partitions);
        assert_eq!((back.txn_start_ms, back.last_update_ms), (10, 20));
        assert_eq!(decode(&key("x"), None).unwrap(), ("x".to_string(), None));
        assert!(decode(&key("x"), Some(&[0, 0, 1])).is_err());
    }
}

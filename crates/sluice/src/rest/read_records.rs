//! `GET .../topics/{topic}/partitions/{partition}/records`: records of a partition from an
//! offset (Sluice's own path; v3 has no read).

use super::*;

#[derive(Deserialize)]
pub(super) struct ReadQuery {
    offset: Option<i64>,
    max_records: Option<usize>,
}

/// Most records one read answers with.
const MAX_READ_RECORDS: usize = 1000;
/// Bytes fetched for one read.
const READ_BYTES: i32 = 4 << 20;

/// A record's key or value: text when it is UTF-8, else base64.
fn data_of(b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => json!({ "type": "STRING", "data": text }),
            Err(_) => json!({
                "type": "BINARY",
                "data": base64::engine::general_purpose::STANDARD.encode(b),
            }),
        },
    }
}

pub(super) async fn read_records(
    State(rest): State<Rest>,
    Path((cluster, topic, partition)): Path<(String, String, i32)>,
    Query(q): Query<ReadQuery>,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let (metadata, leaders) = metadata_of(&rest, &topic).await?;
    let Some(&(_, leader)) = leaders.iter().find(|(p, _)| *p == partition) else {
        return Err(refused(3, None));
    };
    let brokers = Brokers::from(&metadata, rest.target().security);
    let offset = match q.offset {
        Some(o) => o,
        None => {
            brokers
                .offset(leader, &topic, partition, cli::EARLIEST)
                .await?
        }
    };
    let max = q.max_records.unwrap_or(100).clamp(1, MAX_READ_RECORDS);
    let conn = brokers.conn(leader).await?;
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(READ_BYTES)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(&topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(READ_BYTES)])]);
    let r: FetchResponse = conn.call(ApiKey::Fetch, &request).await?;
    let p = r
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| Failure::from(anyhow::anyhow!("Fetch answered nothing")))?;
    if p.error_code != 0 {
        return Err(refused(p.error_code, None));
    }
    let mut records = Vec::new();
    let mut next = offset;
    let bytes = p.records.clone().unwrap_or_default();
    let mut pos = 0;
    'batches: while pos + sluice_log::batch::HEADER_SIZE <= bytes.len() {
        let header = sluice_log::batch::BatchHeader::parse(&bytes[pos..]);
        let end = pos + header.size();
        if end > bytes.len() || header.size() < sluice_log::batch::HEADER_SIZE {
            break; // a partial batch at the end of the fetch
        }
        let batch = &bytes[pos..end];
        pos = end;
        if header.is_control() {
            next = next.max(header.last_offset() + 1);
            continue;
        }
        let mut it = sluice_log::records::BatchRecords::open(batch, 64 << 20)
            .map_err(|e| Failure::from(anyhow::anyhow!("record batch: {e}")))?;
        while let Ok(Some(rec)) = it.next_record() {
            if rec.offset < offset {
                continue;
            }
            if records.len() >= max {
                break 'batches;
            }
            let headers: Vec<Value> = rec
                .headers()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    json!({
                        "name": String::from_utf8_lossy(k),
                        "value": v.map(|v| base64::engine::general_purpose::STANDARD.encode(v)),
                    })
                })
                .collect();
            records.push(json!({
                "partition_id": partition,
                "offset": rec.offset,
                "timestamp": rec.timestamp,
                "key": data_of(rec.key),
                "value": data_of(rec.value),
                "headers": headers,
            }));
            next = rec.offset + 1;
        }
    }
    Ok(Json(json!({
        "kind": "SluiceRecordList",
        "cluster_id": cluster,
        "topic_name": topic,
        "partition_id": partition,
        "next_offset": next,
        "data": records,
    }))
    .into_response())
}

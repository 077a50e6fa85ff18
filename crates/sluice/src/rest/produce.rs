//! `POST .../topics/{topic}/records`: produce one record, its partition chosen as Kafka's
//! default partitioner would (murmur2 of the key, else round robin).

use super::*;

/// A key or value of a produce request (Confluent's types: STRING, JSON, BINARY base64).
#[derive(Deserialize)]
struct Data {
    #[serde(rename = "type", default = "json_type")]
    kind: String,
    data: Value,
}

fn json_type() -> String {
    "JSON".into()
}

impl Data {
    fn bytes(&self) -> Result<Vec<u8>, Failure> {
        let bad = |why: String| Failure(StatusCode::BAD_REQUEST, 40001, why);
        match self.kind.as_str() {
            "JSON" => Ok(serde_json::to_vec(&self.data).unwrap_or_default()),
            "STRING" => match &self.data {
                Value::String(s) => Ok(s.as_bytes().to_vec()),
                other => Err(bad(format!("a STRING needs a string, not {other}"))),
            },
            "BINARY" => match &self.data {
                Value::String(s) => base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| bad(format!("BINARY data is not base64: {e}"))),
                other => Err(bad(format!(
                    "BINARY data must be a base64 string, not {other}"
                ))),
            },
            other => Err(bad(format!(
                "unknown data type {other:?} (JSON, STRING or BINARY)"
            ))),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    name: String,
    /// Base64, as Confluent's API has it; null for a header without a value.
    value: Option<String>,
}

#[derive(Deserialize)]
struct ProduceBody {
    partition_id: Option<i32>,
    #[serde(default)]
    headers: Vec<Header>,
    key: Option<Data>,
    value: Option<Data>,
    /// Epoch ms (default: now).
    timestamp: Option<i64>,
}

static NEXT_PARTITION: AtomicU32 = AtomicU32::new(0);

/// Kafka's default partitioner for a keyed record: murmur2 of the key, made positive, modulo
/// the partition count (so records land where Java and librdkafka's murmur2 partitioner put
/// them).
fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) as i32 % partitions
}

fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in chunks.by_ref() {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

pub(super) async fn produce(
    State(rest): State<Rest>,
    Path((cluster, topic)): Path<(String, String)>,
    raw: axum::body::Bytes,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let b: ProduceBody = body(&raw)?;
    let key = b.key.as_ref().map(Data::bytes).transpose()?;
    let value = b.value.as_ref().map(Data::bytes).transpose()?;
    let headers: Vec<(String, Option<Vec<u8>>)> = b
        .headers
        .iter()
        .map(|h| {
            let v = h
                .value
                .as_ref()
                .map(|v| base64::engine::general_purpose::STANDARD.decode(v))
                .transpose()
                .map_err(|e| {
                    Failure(
                        StatusCode::BAD_REQUEST,
                        40001,
                        format!("header {}: {e}", h.name),
                    )
                })?;
            Ok((h.name.clone(), v))
        })
        .collect::<Result<_, Failure>>()?;
    let (metadata, leaders) = metadata_of(&rest, &topic).await?;
    let count = leaders.len() as i32;
    let partition = match (b.partition_id, &key) {
        (Some(p), _) if !(0..count).contains(&p) => return Err(refused(3, None)),
        (Some(p), _) => p,
        (None, Some(k)) => partition_for_key(k, count),
        // Unkeyed records go round the partitions.
        (None, None) => {
            (NEXT_PARTITION.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff) as i32 % count
        }
    };
    let leader = leaders
        .iter()
        .find(|(p, _)| *p == partition)
        .map_or(-1, |l| l.1);
    let timestamp = b.timestamp.unwrap_or_else(now_ms);
    let mut batch = vec![0u8; sluice_log::batch::HEADER_SIZE];
    let header_refs: Vec<(&[u8], Option<&[u8]>)> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_deref()))
        .collect();
    sluice_log::batch::put_record_with_headers(
        &mut batch,
        0,
        0,
        key.as_deref(),
        value.as_deref(),
        &header_refs,
    );
    sluice_log::batch::seal_batch(&mut batch, 1, timestamp, 0);
    let brokers = Brokers::from(&metadata, rest.target().security);
    let conn = brokers.conn(leader).await?;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(&topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch.into()))])]);
    let r: ProduceResponse = conn.call(ApiKey::Produce, &request).await?;
    let p = r
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .ok_or_else(|| Failure::from(anyhow::anyhow!("Produce answered nothing")))?;
    if p.error_code != 0 {
        return Err(refused(p.error_code, p.error_message.as_deref()));
    }
    let size = |d: &Option<Vec<u8>>, spec: &Option<Data>| {
        spec.as_ref()
            .map(|s| json!({ "type": s.kind, "size": d.as_ref().map_or(0, Vec::len) }))
    };
    Ok(Json(json!({
        "error_code": 200,
        "cluster_id": cluster,
        "topic_name": topic,
        "partition_id": partition,
        "offset": p.base_offset,
        "timestamp": timestamp,
        "key": size(&key, &b.key),
        "value": size(&value, &b.value),
    }))
    .into_response())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_land_where_kafkas_default_partitioner_puts_them() {
        // Kafka's own vectors (UtilsTest.testMurmur2 in the Java client).
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (key, hash) in cases {
            assert_eq!(super::murmur2(key), hash as u32, "{key:?}");
        }
    }
}

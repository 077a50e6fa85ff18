//! `/v3/clusters/{cluster}/topics/{topic}/partitions`: each partition's replicas, leader,
//! in-sync replicas, offsets and size on this broker.

use super::*;

pub(super) async fn partitions(
    State(rest): State<Rest>,
    Path((cluster, topic)): Path<(String, String)>,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let found = topic_cmd::describe_topics(&rest.target(), std::slice::from_ref(&topic)).await?;
    let d = match found.into_iter().next() {
        Some((_, Ok(d))) => d,
        Some((_, Err(code))) => return Err(refused(code, None)),
        None => return Err(refused(3, None)),
    };
    let base = format!("/v3/clusters/{cluster}/topics/{topic}/partitions");
    let data: Vec<Value> = d
        .partitions
        .iter()
        .map(|p| {
            json!({
                "kind": "KafkaPartition",
                "metadata": { "self": format!("{base}/{}", p.partition) },
                "cluster_id": cluster,
                "topic_name": topic,
                "partition_id": p.partition,
                "leader": related(&format!("/v3/clusters/{cluster}/brokers/{}", p.leader)),
                "leader_id": p.leader,
                "replicas": p.replicas,
                "isr": p.isr,
                "start_offset": p.start_offset,
                "end_offset": p.end_offset,
                "size_bytes": local_size(&rest, &topic, p.partition),
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": "KafkaPartitionList",
        "metadata": { "self": base, "next": null },
        "configs": d.configs,
        "data": data,
    }))
    .into_response())
}

/// Bytes of a partition's replica on this broker (none when it has no replica here).
fn local_size(rest: &Rest, topic: &str, partition: i32) -> Option<u64> {
    let t = rest.broker.replicas.topic(topic)?;
    let p = t.partition(partition)?.clone();
    let size = p.log().size_bytes();
    Some(size)
}

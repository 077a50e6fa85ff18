//! `/v3/clusters/{cluster}/consumer-groups`: consumer groups, their members and lag.

use super::*;

pub(super) async fn groups(State(rest): State<Rest>, Path(cluster): Path<String>) -> Answer {
    check_cluster(&rest, &cluster)?;
    let rows = match group_cmd::group_rows(&rest.target()).await? {
        Ok(rows) => rows,
        Err(code) => return Err(refused(code, None)),
    };
    let base = format!("/v3/clusters/{cluster}/consumer-groups");
    let data: Vec<Value> = rows
        .iter()
        // Share groups have their own path.
        .filter(|g| !g.group_type.eq_ignore_ascii_case("share"))
        .map(|g| {
            json!({
                "kind": "KafkaConsumerGroup",
                "metadata": { "self": format!("{base}/{}", g.group) },
                "cluster_id": cluster,
                "consumer_group_id": g.group,
                "is_simple": g.protocol_type.is_empty(),
                "state": g.state.to_uppercase(),
                "type": g.group_type,
                "lags": related(&format!("{base}/{}/lags", g.group)),
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": "KafkaConsumerGroupList",
        "metadata": { "self": base, "next": null },
        "data": data,
    }))
    .into_response())
}

/// A consumer group described, or the failure to answer with.
async fn described_group(rest: &Rest, group: &str) -> Result<group_cmd::Description, Failure> {
    match group_cmd::describe_group(&rest.target(), group).await? {
        Ok(d) => Ok(d),
        Err(group_cmd::NotDescribed::Refused(code, message)) => {
            Err(refused(code, message.as_deref()))
        }
        Err(group_cmd::NotDescribed::NoSuchGroup) => Err(Failure(
            StatusCode::NOT_FOUND,
            40404,
            format!("no consumer group {group:?}"),
        )),
    }
}

pub(super) async fn consumers(
    State(rest): State<Rest>,
    Path((cluster, group)): Path<(String, String)>,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let d = described_group(&rest, &group).await?;
    let base = format!("/v3/clusters/{cluster}/consumer-groups/{group}/consumers");
    let data: Vec<Value> = d
        .members
        .iter()
        .map(|m| {
            let assigned: Vec<Value> = m
                .assignment
                .iter()
                .filter_map(|tp| tp.rsplit_once('-'))
                .map(|(t, p)| {
                    json!({ "topic_name": t, "partition_id": p.parse::<i32>().unwrap_or(-1) })
                })
                .collect();
            json!({
                "kind": "KafkaConsumer",
                "metadata": { "self": format!("{base}/{}", m.member_id) },
                "cluster_id": cluster,
                "consumer_group_id": group,
                "consumer_id": m.member_id,
                "client_id": m.client_id,
                "host": m.host,
                "assigned_partitions": assigned,
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": "KafkaConsumerList",
        "metadata": { "self": base, "next": null },
        "data": data,
    }))
    .into_response())
}

pub(super) async fn lags(
    State(rest): State<Rest>,
    Path((cluster, group)): Path<(String, String)>,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let d = described_group(&rest, &group).await?;
    let data: Vec<Value> = d
        .partitions
        .iter()
        .map(|p| {
            json!({
                "kind": "KafkaConsumerLag",
                "cluster_id": cluster,
                "consumer_group_id": group,
                "topic_name": p.topic,
                "partition_id": p.partition,
                "current_offset": p.committed,
                "log_end_offset": p.end_offset,
                "lag": p.lag,
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": "KafkaConsumerLagList",
        "metadata": { "self": format!("/v3/clusters/{cluster}/consumer-groups/{group}/lags"), "next": null },
        "data": data,
    }))
    .into_response())
}

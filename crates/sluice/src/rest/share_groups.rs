//! `/v3/clusters/{cluster}/share-groups`: queues (share groups), their state, members and partitions.

use super::*;

pub(super) async fn share_groups(State(rest): State<Rest>, Path(cluster): Path<String>) -> Answer {
    check_cluster(&rest, &cluster)?;
    let rows = match group_cmd::group_rows(&rest.target()).await? {
        Ok(rows) => rows,
        Err(code) => return Err(refused(code, None)),
    };
    let base = format!("/v3/clusters/{cluster}/share-groups");
    let data: Vec<Value> = rows
        .iter()
        .filter(|g| g.group_type.eq_ignore_ascii_case("share"))
        .map(|g| {
            json!({
                "kind": "KafkaShareGroup",
                "metadata": { "self": format!("{base}/{}", g.group) },
                "cluster_id": cluster,
                "share_group_id": g.group,
                "state": g.state.to_uppercase(),
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": "KafkaShareGroupList",
        "metadata": { "self": base, "next": null },
        "data": data,
    }))
    .into_response())
}

/// A queue: its members, and per partition its progress and in-flight records (as
/// `sluice queue describe` shows them).
pub(super) async fn share_group(
    State(rest): State<Rest>,
    Path((cluster, group)): Path<(String, String)>,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let Some(q) = queue_cmd::describe_queue(&rest.target(), &group, &[]).await? else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            40404,
            format!("no share group {group:?}"),
        ));
    };
    Ok(Json(json!({
        "kind": "SluiceShareGroup",
        "cluster_id": cluster,
        "share_group_id": group,
        "state": q.state.to_uppercase(),
        "members": q.members,
        "partitions": q.partitions,
    }))
    .into_response())
}

//! `/v3/clusters` and `/v3/clusters/{cluster}`: this cluster, with links to its parts.

use super::*;

fn cluster_data(rest: &Rest) -> Value {
    let id = rest.cluster_id();
    let base = format!("/v3/clusters/{id}");
    json!({
        "kind": "KafkaCluster",
        "metadata": { "self": base, "resource_name": format!("crn:///kafka={id}") },
        "cluster_id": id,
        "controller": related(&format!("{base}/brokers/{}", rest.broker.replicas.image().controller_id)),
        "brokers": related(&format!("{base}/brokers")),
        "topics": related(&format!("{base}/topics")),
        "consumer_groups": related(&format!("{base}/consumer-groups")),
    })
}

pub(super) async fn clusters(State(rest): State<Rest>) -> Json<Value> {
    Json(json!({
        "kind": "KafkaClusterList",
        "metadata": { "self": "/v3/clusters", "next": null },
        "data": [cluster_data(&rest)],
    }))
}

pub(super) async fn cluster(State(rest): State<Rest>, Path(cluster): Path<String>) -> Answer {
    check_cluster(&rest, &cluster)?;
    Ok(Json(cluster_data(&rest)).into_response())
}

//! `/v3/clusters/{cluster}/brokers`: the brokers of the cluster and the controller.

use super::*;

pub(super) async fn brokers(State(rest): State<Rest>, Path(cluster): Path<String>) -> Answer {
    check_cluster(&rest, &cluster)?;
    let conn = cli::connect(&rest.target()).await?;
    let m: MetadataResponse = conn
        .call(
            ApiKey::Metadata,
            &MetadataRequest::default().with_topics(Some(vec![])),
        )
        .await?;
    let base = format!("/v3/clusters/{cluster}/brokers");
    let mut data: Vec<Value> = m
        .brokers
        .iter()
        .map(|b| {
            json!({
                "kind": "KafkaBroker",
                "metadata": { "self": format!("{base}/{}", b.node_id.0) },
                "cluster_id": cluster,
                "broker_id": b.node_id.0,
                "host": b.host.as_str(),
                "port": b.port,
                "rack": b.rack.as_ref().map(|r| r.as_str()),
                "is_controller": b.node_id.0 == m.controller_id.0,
            })
        })
        .collect();
    data.sort_by_key(|b| b["broker_id"].as_i64());
    Ok(Json(json!({
        "kind": "KafkaBrokerList",
        "metadata": { "self": base, "next": null },
        "data": data,
    }))
    .into_response())
}

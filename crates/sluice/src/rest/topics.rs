//! `/v3/clusters/{cluster}/topics`: list, create (with configs), describe and delete topics.

use super::*;

fn topic_data(cluster: &str, name: &str, internal: bool, rf: usize, partitions: usize) -> Value {
    let base = format!("/v3/clusters/{cluster}/topics/{name}");
    json!({
        "kind": "KafkaTopic",
        "metadata": {
            "self": base,
            "resource_name": format!("crn:///kafka={cluster}/topic={name}"),
        },
        "cluster_id": cluster,
        "topic_name": name,
        "is_internal": internal,
        "replication_factor": rf,
        "partitions_count": partitions,
        "partitions": related(&format!("{base}/partitions")),
        "configs": related(&format!("{base}/configs")),
    })
}

pub(super) async fn topics(State(rest): State<Rest>, Path(cluster): Path<String>) -> Answer {
    check_cluster(&rest, &cluster)?;
    let rows = topic_cmd::topic_rows(&rest.target()).await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|t| {
            topic_data(
                &cluster,
                &t.name,
                t.internal,
                t.replication_factor,
                t.partitions,
            )
        })
        .collect();
    Ok(Json(json!({
        "kind": "KafkaTopicList",
        "metadata": { "self": format!("/v3/clusters/{cluster}/topics"), "next": null },
        "data": data,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct NewTopic {
    topic_name: String,
    partitions_count: Option<i32>,
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: Vec<NewConfig>,
}

#[derive(Deserialize)]
struct NewConfig {
    name: String,
    value: String,
}

pub(super) async fn create_topic(
    State(rest): State<Rest>,
    Path(cluster): Path<String>,
    raw: axum::body::Bytes,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let t: NewTopic = body(&raw)?;
    let configs: Vec<(String, String)> = t.configs.into_iter().map(|c| (c.name, c.value)).collect();
    let created = topic_cmd::create_topic(
        &rest.target(),
        &t.topic_name,
        t.partitions_count.unwrap_or(-1),
        t.replication_factor.unwrap_or(-1),
        &configs,
    )
    .await?;
    if let Err((code, message)) = created {
        return Err(refused(code, message.as_deref()));
    }
    let described = describe(&rest, &cluster, &t.topic_name).await?;
    Ok((StatusCode::CREATED, Json(described)).into_response())
}

async fn describe(rest: &Rest, cluster: &str, name: &str) -> Result<Value, Failure> {
    let found = topic_cmd::describe_topics(&rest.target(), &[name.to_string()]).await?;
    match found.into_iter().next() {
        Some((_, Ok(d))) => {
            let rf = d.partitions.first().map_or(0, |p| p.replicas.len());
            Ok(topic_data(
                cluster,
                &d.name,
                d.internal,
                rf,
                d.partitions.len(),
            ))
        }
        Some((_, Err(code))) => Err(refused(code, None)),
        None => Err(refused(3, None)),
    }
}

pub(super) async fn topic(
    State(rest): State<Rest>,
    Path((cluster, name)): Path<(String, String)>,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    Ok(Json(describe(&rest, &cluster, &name).await?).into_response())
}

pub(super) async fn delete_topic(
    State(rest): State<Rest>,
    Path((cluster, name)): Path<(String, String)>,
) -> Answer {
    check_cluster(&rest, &cluster)?;
    let outcome = topic_cmd::delete_topics(&rest.target(), std::slice::from_ref(&name)).await?;
    match outcome.into_iter().next() {
        Some((_, Ok(()))) => Ok(StatusCode::NO_CONTENT.into_response()),
        Some((_, Err((code, message)))) => Err(refused(code, message.as_deref())),
        None => Err(refused(3, None)),
    }
}

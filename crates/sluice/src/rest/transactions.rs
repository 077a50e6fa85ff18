//! `/v3/clusters/{cluster}/transactions`: transactional ids, their state and partitions.

use super::*;

/// Every coordinator's transactional ids (Sluice's own path; what `sluice transaction list`
/// shows).
pub(super) async fn transactions(State(rest): State<Rest>, Path(cluster): Path<String>) -> Answer {
    check_cluster(&rest, &cluster)?;
    let rows = match transaction_cmd::transaction_rows(&rest.target(), &[], None).await? {
        Ok(rows) => rows,
        Err((_, code)) => return Err(refused(code, None)),
    };
    let data: Vec<Value> = rows
        .iter()
        .map(|t| {
            json!({
                "kind": "SluiceTransaction",
                "transactional_id": t.transactional_id,
                "coordinator_id": t.coordinator,
                "producer_id": t.producer_id,
                "state": t.state,
            })
        })
        .collect();
    Ok(Json(json!({
        "kind": "SluiceTransactionList",
        "metadata": { "self": format!("/v3/clusters/{cluster}/transactions"), "next": null },
        "data": data,
    }))
    .into_response())
}

//! One module per Kafka API key.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod allocate_producer_ids;
pub mod alter_configs;
pub mod alter_partition;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_producers;
pub mod describe_share_group_offsets;
pub mod describe_transactions;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod share_acknowledge;
pub mod share_fetch;
pub mod share_group_describe;
pub mod share_group_heartbeat;
pub mod share_group_offsets_admin;
pub mod share_group_state;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use kafka_protocol::protocol::StrBytes;

pub fn opt_string(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// Runs a request's work as a task of its own: a client that goes away mid-request drops
/// the answer, not the work (a transaction coordinator's state change must be applied once
/// its write is done, or the transactional id would stay marked as changing).
pub async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    match tokio::spawn(work).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The error code of a transactional request's failure: PRODUCER_FENCED is
/// INVALID_PRODUCER_EPOCH below the version where the API learned it (as Kafka answers).
pub fn txn_code(e: &sluice_broker::BrokerError, version: i16, fenced_since: i16) -> i16 {
    use kafka_protocol::error::ResponseError;
    let code = crate::errors::code(e);
    if code == ResponseError::ProducerFenced.code() && version < fenced_since {
        ResponseError::InvalidProducerEpoch.code()
    } else {
        code
    }
}

pub fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Partitions grouped by topic, in first-seen order, as (topic id, name, partitions): the
/// shape every group API's assignment takes. Topics this broker does not know are left out.
pub fn by_topic<'a>(
    broker: &sluice_broker::Broker,
    partitions: impl IntoIterator<Item = (&'a String, i32)>,
) -> Vec<(uuid::Uuid, &'a str, Vec<i32>)> {
    let mut out: Vec<(uuid::Uuid, &'a str, Vec<i32>)> = Vec::new();
    for (topic, partition) in partitions {
        match out.iter_mut().find(|t| t.1 == topic.as_str()) {
            Some(t) => t.2.push(partition),
            None => {
                if let Some(t) = broker.topic(topic) {
                    out.push((t.id, topic.as_str(), vec![partition]));
                }
            }
        }
    }
    out
}

/// Kafka's marker for "authorized operations not requested".
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Authorized operations without ACLs (everything allowed), as Kafka's bit sets of
/// AclOperation codes: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
/// CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
pub const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
pub const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

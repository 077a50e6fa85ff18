//! The API versions Sluice advertises. Each range is what the handlers implement, except
//! Produce v0-2, advertised because librdkafka enables compression and record batch v2 by
//! overlap with old versions (KAFKA-18659); requests at those versions close the connection.

use kafka_protocol::messages::ApiKey;

use crate::handlers::*;

/// (API, (advertised min, advertised max)): each handler declares its own range (`VERSIONS`),
/// so a handler and what is advertised for it cannot drift apart.
pub const SUPPORTED: &[(ApiKey, (i16, i16))] = &[
    (ApiKey::Produce, produce::VERSIONS),
    (ApiKey::Fetch, fetch::VERSIONS),
    (ApiKey::ListOffsets, list_offsets::VERSIONS),
    (ApiKey::Metadata, metadata::VERSIONS),
    (ApiKey::OffsetCommit, offset_commit::VERSIONS),
    (ApiKey::OffsetFetch, offset_fetch::VERSIONS),
    (ApiKey::FindCoordinator, find_coordinator::VERSIONS),
    (ApiKey::JoinGroup, join_group::VERSIONS),
    (ApiKey::Heartbeat, heartbeat::VERSIONS),
    (ApiKey::LeaveGroup, leave_group::VERSIONS),
    (ApiKey::SyncGroup, sync_group::VERSIONS),
    (ApiKey::DescribeGroups, describe_groups::VERSIONS),
    (ApiKey::ListGroups, list_groups::VERSIONS),
    (ApiKey::ApiVersions, api_versions::VERSIONS),
    (ApiKey::CreateTopics, create_topics::VERSIONS),
    (ApiKey::DeleteTopics, delete_topics::VERSIONS),
    (ApiKey::DeleteRecords, delete_records::VERSIONS),
    (ApiKey::InitProducerId, init_producer_id::VERSIONS),
    (ApiKey::AddPartitionsToTxn, add_partitions_to_txn::VERSIONS),
    (ApiKey::AddOffsetsToTxn, add_offsets_to_txn::VERSIONS),
    (ApiKey::EndTxn, end_txn::VERSIONS),
    (ApiKey::TxnOffsetCommit, txn_offset_commit::VERSIONS),
    (
        ApiKey::DescribeTransactions,
        describe_transactions::VERSIONS,
    ),
    (ApiKey::ListTransactions, list_transactions::VERSIONS),
    (ApiKey::DescribeProducers, describe_producers::VERSIONS),
    (ApiKey::DescribeConfigs, describe_configs::VERSIONS),
    (ApiKey::AlterConfigs, alter_configs::VERSIONS),
    (ApiKey::CreatePartitions, create_partitions::VERSIONS),
    (ApiKey::DeleteGroups, delete_groups::VERSIONS),
    (
        ApiKey::IncrementalAlterConfigs,
        incremental_alter_configs::VERSIONS,
    ),
    (ApiKey::OffsetDelete, offset_delete::VERSIONS),
    (ApiKey::DescribeCluster, describe_cluster::VERSIONS),
    (
        ApiKey::OffsetForLeaderEpoch,
        offset_for_leader_epoch::VERSIONS,
    ),
    (
        ApiKey::ConsumerGroupHeartbeat,
        consumer_group_heartbeat::VERSIONS,
    ),
    (
        ApiKey::ConsumerGroupDescribe,
        consumer_group_describe::VERSIONS,
    ),
    (ApiKey::DescribeAcls, describe_acls::VERSIONS),
    (ApiKey::ShareGroupHeartbeat, share_group_heartbeat::VERSIONS),
    (ApiKey::ShareGroupDescribe, share_group_describe::VERSIONS),
    (
        ApiKey::DescribeShareGroupOffsets,
        describe_share_group_offsets::VERSIONS,
    ),
    (
        ApiKey::AlterShareGroupOffsets,
        share_group_offsets_admin::ALTER_VERSIONS,
    ),
    (
        ApiKey::DeleteShareGroupOffsets,
        share_group_offsets_admin::DELETE_VERSIONS,
    ),
    (ApiKey::ShareFetch, share_fetch::VERSIONS),
    (ApiKey::ShareAcknowledge, share_acknowledge::VERSIONS),
    (
        ApiKey::ListPartitionReassignments,
        list_partition_reassignments::VERSIONS,
    ),
];

/// APIs brokers send each other (to the controller), served but not advertised to clients,
/// as Kafka serves them on its controller listener.
pub const BETWEEN_BROKERS: &[(ApiKey, (i16, i16))] = &[
    (ApiKey::AlterPartition, alter_partition::VERSIONS),
    (ApiKey::AllocateProducerIds, allocate_producer_ids::VERSIONS),
    (ApiKey::WriteTxnMarkers, write_txn_markers::VERSIONS),
    (
        ApiKey::ReadShareGroupState,
        share_group_state::READ_VERSIONS,
    ),
    (
        ApiKey::WriteShareGroupState,
        share_group_state::WRITE_VERSIONS,
    ),
];

/// Lowest Produce version actually implemented (magic 2 record batches).
pub const PRODUCE_MIN_IMPLEMENTED: i16 = 3;

pub fn advertised(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _)| *k == api)
        .map(|(_, range)| *range)
}

/// Whether a request at `version` is served (not merely advertised).
pub fn implemented(api: ApiKey, version: i16) -> bool {
    let between_brokers = BETWEEN_BROKERS
        .iter()
        .find(|(k, _)| *k == api)
        .map(|(_, range)| *range);
    match advertised(api).or(between_brokers) {
        Some((lo, hi)) => {
            let lo = if api == ApiKey::Produce {
                PRODUCE_MIN_IMPLEMENTED
            } else {
                lo
            };
            (lo..=hi).contains(&version)
        }
        None => false,
    }
}

//! The API versions Sluice advertises. Each range is what the handlers implement, except
//! Produce v0-2, advertised because librdkafka enables compression and record batch v2 by
//! overlap with old versions (KAFKA-18659); requests at those versions close the connection.

use kafka_protocol::messages::ApiKey;

/// (API, advertised min, advertised max)
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::ListPartitionReassignments, 0, 0),
];

/// Lowest Produce version actually implemented (magic 2 record batches).
pub const PRODUCE_MIN_IMPLEMENTED: i16 = 3;

pub fn advertised(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|(_, lo, hi)| (*lo, *hi))
}

/// Whether a request at `version` is served (not merely advertised).
pub fn implemented(api: ApiKey, version: i16) -> bool {
    match advertised(api) {
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

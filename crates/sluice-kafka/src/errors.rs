//! Broker errors as Kafka error codes.

use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;
use sluice_broker::BrokerError;

pub fn code(e: &BrokerError) -> i16 {
    let r = match e {
        BrokerError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        BrokerError::NotLeaderOrFollower { .. } => ResponseError::NotLeaderOrFollower,
        BrokerError::LeaderNotAvailable => ResponseError::LeaderNotAvailable,
        BrokerError::FencedLeaderEpoch(_) => ResponseError::FencedLeaderEpoch,
        BrokerError::UnknownLeaderEpoch(_) => ResponseError::UnknownLeaderEpoch,
        BrokerError::NotController => ResponseError::NotController,
        BrokerError::StaleBrokerEpoch(_) => ResponseError::StaleBrokerEpoch,
        BrokerError::ClusterAuthorizationFailed(_) => ResponseError::ClusterAuthorizationFailed,
        BrokerError::UnacceptableCredential(_) => ResponseError::UnacceptableCredential,
        BrokerError::UnsupportedSaslMechanism(_) => ResponseError::UnsupportedSaslMechanism,
        BrokerError::DuplicateResource(_) => ResponseError::DuplicateResource,
        BrokerError::ResourceNotFound(_) => ResponseError::ResourceNotFound,
        BrokerError::InvalidUpdateVersion(_) => ResponseError::InvalidUpdateVersion,
        BrokerError::IneligibleReplica(_) => ResponseError::IneligibleReplica,
        BrokerError::NotCoordinator => ResponseError::NotCoordinator,
        BrokerError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        BrokerError::NotEnoughReplicasAfterAppend { .. } => {
            ResponseError::NotEnoughReplicasAfterAppend
        }
        BrokerError::RequestTimedOut(_) => ResponseError::RequestTimedOut,
        BrokerError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        BrokerError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        BrokerError::InvalidTopic(_) => ResponseError::InvalidTopicException,
        BrokerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        BrokerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        BrokerError::PolicyViolation(_) => ResponseError::PolicyViolation,
        BrokerError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        BrokerError::InvalidConfig(_) => ResponseError::InvalidConfig,
        BrokerError::InvalidRequest(_) => ResponseError::InvalidRequest,
        BrokerError::TopicAuthorizationFailed(_) => ResponseError::TopicAuthorizationFailed,
        BrokerError::InvalidRequiredAcks(_) => ResponseError::InvalidRequiredAcks,
        BrokerError::CorruptMessage(_) => ResponseError::CorruptMessage,
        BrokerError::InvalidRecord(_) => ResponseError::InvalidRecord,
        BrokerError::MessageTooLarge(_) => ResponseError::MessageTooLarge,
        BrokerError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
        BrokerError::RecordErrors {
            timestamp: true, ..
        } => ResponseError::InvalidTimestamp,
        BrokerError::RecordErrors { .. } => ResponseError::InvalidRecord,
        BrokerError::UnsupportedVersion(_) => ResponseError::UnsupportedVersion,
        BrokerError::OffsetOutOfRange(_) => ResponseError::OffsetOutOfRange,
        BrokerError::Storage(_) => ResponseError::KafkaStorageError,
        BrokerError::InvalidGroupId => ResponseError::InvalidGroupId,
        BrokerError::UnknownMemberId => ResponseError::UnknownMemberId,
        BrokerError::IllegalGeneration => ResponseError::IllegalGeneration,
        BrokerError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        BrokerError::MemberIdRequired => ResponseError::MemberIdRequired,
        BrokerError::FencedInstanceId => ResponseError::FencedInstanceId,
        BrokerError::InconsistentGroupProtocol(_) => ResponseError::InconsistentGroupProtocol,
        BrokerError::InvalidSessionTimeout(_) => ResponseError::InvalidSessionTimeout,
        BrokerError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        BrokerError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        BrokerError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        BrokerError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        BrokerError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        BrokerError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
        BrokerError::InvalidRecordState(_) => ResponseError::InvalidRecordState,
        BrokerError::ShareSessionNotFound => ResponseError::ShareSessionNotFound,
        BrokerError::InvalidShareSessionEpoch(_) => ResponseError::InvalidShareSessionEpoch,
        BrokerError::FencedStateEpoch => ResponseError::FencedStateEpoch,
        BrokerError::ShareSessionLimitReached => ResponseError::ShareSessionLimitReached,
        BrokerError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        BrokerError::UnsupportedAssignor(_) => ResponseError::UnsupportedAssignor,
        BrokerError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
        BrokerError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        BrokerError::UnknownProducerId(_) => ResponseError::UnknownProducerId,
        BrokerError::TransactionsUnsupported(_) => {
            ResponseError::TransactionalIdAuthorizationFailed
        }
        BrokerError::ProducerFenced(_) => ResponseError::ProducerFenced,
        BrokerError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
        BrokerError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        BrokerError::InvalidProducerIdMapping(_) => ResponseError::InvalidProducerIdMapping,
        BrokerError::InvalidTransactionTimeout(_) => ResponseError::InvalidTransactionTimeout,
        BrokerError::TransactionCoordinatorFenced(_) => ResponseError::TransactionCoordinatorFenced,
        BrokerError::TransactionalIdNotFound(_) => ResponseError::TransactionalIdNotFound,
        BrokerError::UnstableOffsetCommit => ResponseError::UnstableOffsetCommit,
        // Retriable for every producer, as Kafka answers a verification it could not make.
        BrokerError::TransactionNotVerified(_) => ResponseError::NotEnoughReplicas,
    };
    r.code()
}

pub fn message(e: &BrokerError) -> Option<StrBytes> {
    Some(StrBytes::from_string(e.to_string()))
}

/// (error code, error message) of a result, (0, None) when it succeeded.
pub fn of<T>(r: &Result<T, BrokerError>) -> (i16, Option<StrBytes>) {
    match r {
        Ok(_) => (0, None),
        Err(e) => (code(e), message(e)),
    }
}

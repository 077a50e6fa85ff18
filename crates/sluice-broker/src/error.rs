use sluice_log::{LogError, RecordError};

/// Protocol-neutral broker errors; the Kafka front end maps each to its error code.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BrokerError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// Another broker leads the partition (-1: it is not known which).
    #[error("this broker does not lead the partition (its leader is broker {leader})")]
    NotLeaderOrFollower { leader: i32, leader_epoch: i32 },
    #[error("the partition has no live leader")]
    LeaderNotAvailable,
    #[error("leader epoch {0} is older than the partition's")]
    FencedLeaderEpoch(i32),
    #[error("leader epoch {0} is newer than this broker knows")]
    UnknownLeaderEpoch(i32),
    /// A partition change based on an older partition epoch.
    #[error("{0}")]
    InvalidUpdateVersion(String),
    /// An in-sync replica that cannot be one (its broker is not alive).
    #[error("{0}")]
    IneligibleReplica(String),
    /// Metadata changes are the controller's: this broker is not it.
    #[error("this broker is not the controller")]
    NotController,
    #[error("this broker is not the group's coordinator")]
    NotCoordinator,
    /// acks=all with fewer in-sync replicas than `min.insync.replicas`: nothing was written.
    #[error("{isr} in-sync replicas, fewer than min.insync.replicas={min}")]
    NotEnoughReplicas { isr: usize, min: usize },
    /// Written, but the in-sync replicas fell below `min.insync.replicas` before it was
    /// acknowledged.
    #[error(
        "written, but only {isr} in-sync replicas remain, fewer than min.insync.replicas={min}"
    )]
    NotEnoughReplicasAfterAppend { isr: usize, min: usize },
    /// The in-sync replicas did not all copy the write within the request's timeout.
    #[error("the in-sync replicas did not copy the write within {0} ms")]
    RequestTimedOut(u64),
    #[error("the group's coordinator is loading its state")]
    CoordinatorLoadInProgress,

    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    #[error("invalid topic name: {0}")]
    InvalidTopic(String),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    PolicyViolation(String),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("{0}")]
    TopicAuthorizationFailed(String),
    #[error("invalid required acks {0}")]
    InvalidRequiredAcks(i16),
    #[error("{0}")]
    CorruptMessage(String),
    #[error("{0}")]
    InvalidRecord(String),
    #[error("{0}")]
    MessageTooLarge(String),
    #[error("{0}")]
    InvalidTimestamp(String),
    /// A batch refused for some of its records, which the producer is told (KIP-467).
    #[error("{message}")]
    RecordErrors {
        timestamp: bool,
        message: String,
        records: Vec<RecordError>,
    },
    #[error("{0}")]
    UnsupportedVersion(String),
    #[error("offset out of range: {0}")]
    OffsetOutOfRange(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("rebalance in progress")]
    RebalanceInProgress,
    #[error("a member id is required: join again with the one given")]
    MemberIdRequired,
    #[error("this static member was replaced by a newer instance")]
    FencedInstanceId,
    #[error("{0}")]
    InconsistentGroupProtocol(String),
    #[error("{0}")]
    InvalidSessionTimeout(String),
    #[error("group not found")]
    GroupIdNotFound,
    #[error("the group has active members")]
    NonEmptyGroup,
    #[error("offset metadata is longer than offset.metadata.max.bytes")]
    OffsetMetadataTooLarge,
    #[error("the group is subscribed to this topic")]
    GroupSubscribedToTopic,
    #[error("coordinator not available")]
    CoordinatorNotAvailable,
    #[error("the member epoch is not the member's current one")]
    FencedMemberEpoch,
    #[error("the member epoch is stale")]
    StaleMemberEpoch,
    #[error("{0}")]
    UnsupportedAssignor(String),
    #[error("{0}")]
    OutOfOrderSequence(String),
    #[error("{0}")]
    InvalidProducerEpoch(String),
    #[error("{0}")]
    UnknownProducerId(String),
    #[error("{0}")]
    TransactionsUnsupported(String),
    #[error("{0}")]
    InvalidRecordState(String),
    #[error("no share session for this member on this broker")]
    ShareSessionNotFound,
    #[error("{0}")]
    InvalidShareSessionEpoch(String),
    #[error("the share group's state was changed by an administrator: read it again")]
    FencedStateEpoch,
    #[error("this broker keeps as many share sessions as it may")]
    ShareSessionLimitReached,
    #[error("{0}")]
    ProducerFenced(String),
    #[error("{0}")]
    InvalidTxnState(String),
    #[error("another transaction operation of this transactional id is in progress")]
    ConcurrentTransactions,
    #[error("{0}")]
    InvalidProducerIdMapping(String),
    #[error("{0}")]
    InvalidTransactionTimeout(String),
    #[error("{0}")]
    TransactionCoordinatorFenced(String),
    #[error("{0}")]
    TransactionalIdNotFound(String),
    /// A transactional batch whose transaction the coordinator could not confirm now.
    #[error("{0}")]
    TransactionNotVerified(String),
    #[error("the partition has transactional offsets not yet committed or aborted")]
    UnstableOffsetCommit,
    /// A broker-to-broker request from a registration of the broker that is not its current
    /// one (or with none).
    #[error("{0}")]
    StaleBrokerEpoch(String),
    /// A request only brokers (or the cluster's administrators) may send.
    #[error("{0}")]
    ClusterAuthorizationFailed(String),
    #[error("{0}")]
    UnacceptableCredential(String),
    #[error("{0}")]
    UnsupportedSaslMechanism(String),
    #[error("{0}")]
    DuplicateResource(String),
    #[error("{0}")]
    ResourceNotFound(String),
}

impl From<LogError> for BrokerError {
    fn from(e: LogError) -> Self {
        let msg = e.to_string();
        match e {
            LogError::CorruptRecord(_) => BrokerError::CorruptMessage(msg),
            LogError::InvalidRecord(_) => BrokerError::InvalidRecord(msg),
            LogError::UnsupportedMagic(_) => BrokerError::UnsupportedVersion(msg),
            LogError::RecordTooLarge { .. } => BrokerError::MessageTooLarge(msg),
            LogError::InvalidTimestamp(_) => BrokerError::InvalidTimestamp(msg),
            LogError::RecordErrors {
                timestamp,
                message,
                records,
            } => BrokerError::RecordErrors {
                timestamp,
                message,
                records,
            },
            LogError::OffsetOutOfRange { .. } => BrokerError::OffsetOutOfRange(msg),
            LogError::Io(_) => BrokerError::Storage(msg),
            LogError::OutOfOrderSequence(_) => BrokerError::OutOfOrderSequence(msg),
            LogError::InvalidProducerEpoch { .. } => BrokerError::InvalidProducerEpoch(msg),
            LogError::UnknownProducerId(_) => BrokerError::UnknownProducerId(msg),
            LogError::TransactionCoordinatorFenced { .. } => {
                BrokerError::TransactionCoordinatorFenced(msg)
            }
        }
    }
}

impl From<std::io::Error> for BrokerError {
    fn from(e: std::io::Error) -> Self {
        BrokerError::Storage(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, BrokerError>;

impl From<sluice_cluster::CoordinatorError> for BrokerError {
    fn from(e: sluice_cluster::CoordinatorError) -> Self {
        use sluice_cluster::CoordinatorError as C;
        match e {
            C::NotController => BrokerError::NotController,
            // Another change won the race: the client retries against the new state.
            C::Conflict(m) => BrokerError::InvalidRequest(m),
            C::Unavailable(m) => BrokerError::Storage(format!("coordination service: {m}")),
            C::Storage(m) => BrokerError::Storage(m),
        }
    }
}

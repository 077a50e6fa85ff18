use std::io;

/// Errors of the storage engine. Each maps onto one Kafka error code in the front end.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("corrupt record batch: {0}")]
    CorruptRecord(String),
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// Records of a batch that break a rule (KIP-467): the batch is refused and these are
    /// named to the producer, which fails just those records.
    #[error("{message}")]
    RecordErrors {
        /// Some record's timestamp is out of range (INVALID_TIMESTAMP rather than
        /// INVALID_RECORD).
        timestamp: bool,
        message: String,
        records: Vec<RecordError>,
    },
    #[error("record batch magic {0} is not supported (only magic 2)")]
    UnsupportedMagic(i8),
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { size: usize, max: usize },
    #[error("offset {offset} is outside the log range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("no state for producer {0}; it must start at sequence 0")]
    UnknownProducerId(i64),
    #[error("producer {producer_id} epoch {epoch} is older than its current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("transaction coordinator epoch {coordinator_epoch} is older than {current}")]
    TransactionCoordinatorFenced {
        coordinator_epoch: i32,
        current: i32,
    },
    #[error("out of order sequence: {0}")]
    OutOfOrderSequence(String),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// One refused record of a batch: its index in the batch and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub batch_index: i32,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, LogError>;

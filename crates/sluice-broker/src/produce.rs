//! The produce path: validate on the connection's thread, append on the append stage
//! (appender.rs), then wait for durability according to the partition's flush policy.

use std::sync::Arc;

use bytes::Bytes;
use sluice_log::{batch, AppendInfo};
use tokio::sync::oneshot;

use crate::appender::AppendJob;
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::partition::Partition;

/// An append queued for the append stage; `wait` resolves when it may be acknowledged.
pub struct PendingAppend {
    outcome: Option<oneshot::Receiver<Result<AppendInfo>>>,
}

impl PendingAppend {
    /// The append's offsets, once it is as durable as the partition's flush policy asks.
    /// An acks=0 append reports no outcome: waiting on it is an error.
    pub async fn wait(self) -> Result<AppendInfo> {
        match self.outcome {
            Some(rx) => rx
                .await
                .map_err(|_| BrokerError::Storage("appender stopped".into()))?,
            None => Err(BrokerError::Storage(
                "an acks=0 append has no acknowledgement".into(),
            )),
        }
    }
}

impl Broker {
    /// Checks `records` (framing, CRC, size) now and queues them for the append stage.
    /// Invalid batches are refused here, before anything is written.
    pub fn append(
        &self,
        partition: &Arc<Partition>,
        records: Bytes,
        acks: i16,
    ) -> Result<PendingAppend> {
        if !matches!(acks, -1..=1) {
            return Err(BrokerError::InvalidRequiredAcks(acks));
        }
        let max_bytes = partition.log().config().max_message_bytes;
        let summary = batch::validate_batches(&records, max_bytes)?;
        let (done, outcome) = match acks {
            0 => (None, None),
            _ => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
        };
        self.appender.submit(AppendJob {
            partition: partition.clone(),
            records,
            summary,
            done,
        });
        Ok(PendingAppend { outcome })
    }
}

//! The produce path: validate outside the lock, append under it, then wait for durability
//! according to the partition's flush policy.

use std::sync::Arc;

use sluice_log::{batch, AppendInfo};
use tokio::sync::oneshot;

use crate::broker::Broker;
use crate::config::FlushPolicy;
use crate::error::{BrokerError, Result};
use crate::partition::Partition;

/// An append that has reached the log; `wait` resolves when it may be acknowledged.
pub struct PendingAppend {
    pub info: AppendInfo,
    durable: Option<oneshot::Receiver<Result<()>>>,
}

impl PendingAppend {
    pub async fn wait(self) -> Result<AppendInfo> {
        if let Some(rx) = self.durable {
            rx.await
                .map_err(|_| BrokerError::Storage("flusher stopped".into()))??;
        }
        Ok(self.info)
    }
}

impl Broker {
    /// Appends a producer's record batches to `partition`. This runs synchronously so that
    /// requests of one connection are appended in the order they arrived; only the wait for
    /// the fsync is asynchronous.
    pub fn append(
        &self,
        partition: &Arc<Partition>,
        records: &[u8],
        acks: i16,
    ) -> Result<PendingAppend> {
        if !matches!(acks, -1..=1) {
            return Err(BrokerError::InvalidRequiredAcks(acks));
        }
        let max_bytes = partition.log().config().max_message_bytes;
        let summary = batch::validate_batches(records, max_bytes)?;
        let info = partition
            .log()
            .append(records, &summary, 0, crate::now_ms())?;
        let durable = match partition.flush_policy() {
            FlushPolicy::EveryWrite => {
                if acks == 0 {
                    self.flusher.request(partition.clone(), info.end, None);
                    None
                } else {
                    let (tx, rx) = oneshot::channel();
                    self.flusher.request(partition.clone(), info.end, Some(tx));
                    Some(rx)
                }
            }
            FlushPolicy::Interval { messages, .. } => {
                partition.publish(info.end);
                if partition.note_unflushed(summary.offset_count, messages) {
                    partition.flush_requested(crate::now_ms());
                    self.flusher.request(partition.clone(), info.end, None);
                }
                None
            }
        };
        Ok(PendingAppend { info, durable })
    }
}

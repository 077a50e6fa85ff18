//! The produce path: validate on the connection's thread, append on the append stage
//! (appender.rs), then wait for durability according to the partition's flush policy.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_log::{batch, records, AppendInfo};
use tokio::sync::oneshot;

use super::ReplicaManager;
use crate::error::{BrokerError, Result};
use crate::replica::appender::AppendJob;
use crate::replica::partition::Partition;

/// An append queued for the append stage; `wait` resolves when it may be acknowledged.
pub struct PendingAppend {
    outcome: oneshot::Receiver<Result<AppendInfo>>,
    partition: Arc<Partition>,
    acks: i16,
    leader_epoch: i32,
}

impl PendingAppend {
    /// The append's offsets, once it may be acknowledged: for acks=1 once it is as durable
    /// as the partition's flush policy asks, for acks=all once every in-sync replica has it
    /// too (the high watermark passed it), or an error if that does not happen within
    /// `timeout`, the leadership moves, or the ISR fell below `min.insync.replicas`.
    /// acks=0 requests wait too, though nobody is told: the request's memory stays counted
    /// against the connection's budget until its append is done, so acks=0 cannot queue
    /// unbounded work.
    pub async fn wait(self, timeout: Duration) -> Result<AppendInfo> {
        let info = self
            .outcome
            .await
            .map_err(|_| BrokerError::Storage("appender stopped".into()))??;
        if self.acks != -1 {
            return Ok(info);
        }
        let p = &self.partition;
        let mut hw = p.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !p.leads_in(self.leader_epoch) {
                return Err(BrokerError::NotLeaderOrFollower {
                    leader: -1,
                    leader_epoch: -1,
                });
            }
            if *hw.borrow_and_update() > info.last_offset {
                let (isr, min) = p.insync_and_min();
                if isr < min {
                    return Err(BrokerError::NotEnoughReplicasAfterAppend { isr, min });
                }
                return Ok(info);
            }
            match tokio::time::timeout_at(deadline, hw.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(BrokerError::Storage("partition closed".into())),
                Err(_) => return Err(BrokerError::RequestTimedOut(timeout.as_millis() as u64)),
            }
        }
    }
}

/// Who appends: a client's Produce, or the broker itself for an internal topic (group
/// records). Followers append with `append_replicated` (replica/follower.rs), keeping the leader's
/// offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    Coordinator,
}

impl ReplicaManager {
    /// Checks `records` now (framing, CRC, size, then every record as Kafka's LogValidator
    /// does) and queues them for the append stage. Invalid batches are refused here, on the
    /// connection's thread, before anything is written.
    pub fn append(
        &self,
        partition: &Arc<Partition>,
        records: Bytes,
        acks: i16,
        origin: AppendOrigin,
    ) -> Result<PendingAppend> {
        if !matches!(acks, -1..=1) {
            return Err(BrokerError::InvalidRequiredAcks(acks));
        }
        if origin == AppendOrigin::Client
            && crate::replica::topic::is_internal_topic(&partition.topic)
        {
            return Err(BrokerError::InvalidTopic(format!(
                "{} is internal: only the broker writes to it",
                partition.topic
            )));
        }
        if acks == -1 {
            let (isr, min) = partition.insync_and_min();
            if isr < min {
                return Err(BrokerError::NotEnoughReplicas { isr, min });
            }
        }
        let leader_epoch = partition.leader_epoch();
        let (max_bytes, rules, compression) = {
            let log = partition.log();
            let config = log.config();
            (
                config.max_message_bytes,
                config.record_rules(),
                config.compression,
            )
        };
        let summary = batch::validate_batches(&records, max_bytes)?;
        let validated = records::validate_records(&records, &rules, crate::now_ms())?;
        // A topic with its own compression.type stores batches in that codec; batches already
        // in it (and every batch under `producer`) are stored as sent.
        let records = match compression {
            Some(target) => match records::recompress(
                &records,
                target,
                rules.max_uncompressed_bytes,
                max_bytes,
            )? {
                Some(recompressed) => Bytes::from(recompressed),
                None => records,
            },
            None => records,
        };
        let (done, outcome) = oneshot::channel();
        if validated.sluice_headers {
            partition.header_marks.writing();
        }
        partition
            .traffic
            .appended(summary.offset_count, records.len());
        self.appender.submit(AppendJob {
            partition: partition.clone(),
            records,
            summary,
            sluice_headers: validated.sluice_headers,
            done: Some(done),
        });
        Ok(PendingAppend {
            outcome,
            partition: partition.clone(),
            acks,
            leader_epoch,
        })
    }

    /// Queues a batch the broker built itself (a transaction marker, which client
    /// validation refuses), acks=all.
    pub(crate) fn append_trusted(
        &self,
        partition: &Arc<Partition>,
        records: Bytes,
    ) -> Result<PendingAppend> {
        let (isr, min) = partition.insync_and_min();
        if isr < min {
            return Err(BrokerError::NotEnoughReplicas { isr, min });
        }
        let leader_epoch = partition.leader_epoch();
        let summary = batch::validate_batches(&records, usize::MAX)?;
        let (done, outcome) = oneshot::channel();
        partition
            .traffic
            .appended(summary.offset_count, records.len());
        self.appender.submit(AppendJob {
            partition: partition.clone(),
            records,
            summary,
            sluice_headers: false,
            done: Some(done),
        });
        Ok(PendingAppend {
            outcome,
            partition: partition.clone(),
            acks: -1,
            leader_epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::Ordering;

    use crate::broker::tests::broker;

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_appends_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path());
        let topic = broker
            .admin
            .create_topic("gc", 1, 1, BTreeMap::new(), false)
            .unwrap();
        let p = topic.partitions[0].clone();
        let batch = sluice_log::batch::build_batch(1, &[(None, Some(b"v"))]);
        let pending: Vec<_> = (0..200)
            .map(|_| {
                broker
                    .replicas
                    .append(&p, batch.clone().into(), -1, crate::AppendOrigin::Client)
                    .unwrap()
            })
            .collect();
        let mut offsets = Vec::new();
        for w in pending {
            offsets.push(
                w.wait(std::time::Duration::from_secs(5))
                    .await
                    .unwrap()
                    .base_offset,
            );
        }
        assert_eq!(offsets, (0..200).collect::<Vec<_>>());
        let stats = broker.replicas.flush_stats();
        let (requests, fsyncs) = (
            stats.requests.load(Ordering::Relaxed),
            stats.fsyncs.load(Ordering::Relaxed),
        );
        assert_eq!(requests, 200);
        assert!(
            fsyncs < 100,
            "200 acknowledged appends took {fsyncs} fsyncs: group commit is not grouping"
        );
        assert_eq!(
            p.offsets().high_watermark,
            200,
            "everything acknowledged is visible"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn acknowledgement_waits_for_the_flush() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path());
        let topic = broker
            .admin
            .create_topic("w", 1, 1, BTreeMap::new(), false)
            .unwrap();
        let p = topic.partitions[0].clone();
        let batch = sluice_log::batch::build_batch(1, &[(None, Some(b"v"))]);
        let pending = broker
            .replicas
            .append(&p, batch.into(), 1, crate::AppendOrigin::Client)
            .unwrap();
        let info = pending
            .wait(std::time::Duration::from_secs(5))
            .await
            .unwrap();
        // Once acknowledged, the log's flushed point covers the record.
        assert!(p.log().flushed_offset() > info.last_offset);
    }
}

//! The transaction coordinator follows the leadership of `__transaction_state` partitions:
//! a partition this broker comes to lead is loaded from its log (its ids answer
//! COORDINATOR_LOAD_IN_PROGRESS meanwhile), one it stops leading is dropped. A periodic pass
//! finishes prepared transactions no task is completing (after a restart or a failover,
//! their markers are written again) and aborts transactions open past their timeout.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::{info, warn};

use super::records;
use super::state::TxnMetadata;
use super::TransactionCoordinator;
use crate::coordinated_topic::for_each_record;
use crate::coordinated_topic::partition_for;
use crate::error::Result;
use crate::replica::partition::Partition;
use crate::replica::LeadershipFollower;

impl LeadershipFollower for TransactionCoordinator {
    /// Brings the ids in memory in line with the state partitions this broker leads.
    fn follow_leadership(&self) -> Result<()> {
        self.state_topic.follow_leadership(
            "transaction state",
            |lost, count| {
                let mut ids = self.ids.lock();
                let before = ids.len();
                ids.retain(|id, _| !lost.contains(&partition_for(id, count)));
                info!(partitions = ?lost, transactional_ids = before - ids.len(), "no longer coordinating the transactions of these partitions");
            },
            load_partition,
            |found| {
                let n = found.len();
                let mut ids = self.ids.lock();
                for (id, m) in found {
                    ids.entry(id).or_insert(m);
                }
                n
            },
        )
    }
}

/// The ids one state partition holds, replayed from its log (the last record of an id wins).
fn load_partition(partition: &Partition) -> Result<HashMap<String, TxnMetadata>> {
    let mut ids = HashMap::new();
    for_each_record(partition, |key, value| match records::decode(key, value) {
        Ok((id, Some(m))) => {
            ids.insert(id, m);
        }
        Ok((id, None)) => {
            ids.remove(&id);
        }
        Err(e) => warn!(error = %e, "skipping an unreadable __transaction_state record"),
    })?;
    Ok(ids)
}

impl TransactionCoordinator {
    /// Forgets transactional ids idle for `transactional.id.expiration.ms`.
    fn expire_transactional_ids(&self, now: i64) {
        let idle_since = now - self.config.transactional_id_expiration_ms();
        let expired: Vec<String> = self
            .ids
            .lock()
            .values()
            .filter(|m| !m.pending && m.is_idle() && m.last_update_ms <= idle_since)
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in &expired {
            if let Err(e) = self.expire(id, idle_since) {
                warn!(transactional_id = %id, error = %e, "could not expire a transactional id");
            }
        }
        if !expired.is_empty() {
            info!(
                transactional_ids = expired.len(),
                "expired idle transactional ids"
            );
        }
    }

    /// The coordinator's periodic pass: prepared transactions nobody completes get their
    /// markers written; transactions open past their timeout are aborted (the epoch bumped,
    /// so their producer is fenced).
    pub(crate) fn drive_transactions(self: &Arc<Self>, abort_timed_out: bool) {
        let now = if abort_timed_out {
            crate::now_ms()
        } else {
            i64::MIN
        };
        if abort_timed_out {
            self.expire_transactional_ids(now);
        }
        let (prepared, timed_out): (Vec<String>, Vec<String>) = {
            let ids = self.ids.lock();
            let completing = self.completing.lock();
            let prepared = ids
                .values()
                .filter(|m| m.state.is_preparing() && !m.pending)
                .filter(|m| !completing.contains(&m.transactional_id))
                .map(|m| m.transactional_id.clone())
                .collect();
            let timed_out = ids
                .values()
                .filter(|m| m.timed_out(now))
                .map(|m| m.transactional_id.clone())
                .collect();
            (prepared, timed_out)
        };
        for id in prepared {
            let coordinator = self.clone();
            tokio::spawn(async move {
                if let Err(e) = coordinator.complete(&id).await {
                    warn!(transactional_id = %id, error = %e, "could not complete a transaction yet");
                }
            });
        }
        for id in timed_out {
            let coordinator = self.clone();
            tokio::spawn(async move {
                let txns = &coordinator;
                let aborted = txns
                    .transition(&id, |current| match current {
                        Some(m) if m.timed_out(crate::now_ms()) => {
                            Ok(Some(m.abort_timed_out(crate::now_ms())))
                        }
                        _ => Ok(None),
                    })
                    .await;
                match aborted {
                    Ok(Some(m)) => {
                        info!(transactional_id = %id, producer_id = m.producer_id, timeout_ms = m.timeout_ms, "aborting a transaction open past its timeout");
                        if let Err(e) = txns.complete(&id).await {
                            warn!(transactional_id = %id, error = %e, "could not complete the abort yet");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        warn!(transactional_id = %id, error = %e, "could not abort a timed-out transaction")
                    }
                }
            });
        }
    }
}

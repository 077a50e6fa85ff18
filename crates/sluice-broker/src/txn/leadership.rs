//! The transaction coordinator follows the leadership of `__transaction_state` partitions:
//! a partition this broker comes to lead is loaded from its log (its ids answer
//! COORDINATOR_LOAD_IN_PROGRESS meanwhile), one it stops leading is dropped. A periodic pass
//! finishes prepared transactions no task is completing (after a restart or a failover,
//! their markers are written again) and aborts transactions open past their timeout.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use super::records;
use super::state::TxnMetadata;
use super::{TransactionCoordinator, TXN_TOPIC};
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::group::leadership::for_each_record;
use crate::group::records::partition_for;
use crate::replica::partition::Partition;

impl TransactionCoordinator<'_> {
    /// Brings the ids in memory in line with the state partitions this broker leads.
    pub(crate) fn follow_leadership(&self) -> Result<()> {
        let broker = self.broker;
        let txns = &broker.txns;
        let mut led = txns.led.lock();
        let image = broker.replicas.image();
        let hosted = broker.replicas.topic(TXN_TOPIC);
        let (now_led, count) = match (image.topic(TXN_TOPIC), &hosted) {
            (Some(meta), Some(hosted)) => {
                let me = broker.config.node_id;
                let here = (0..meta.partition_count())
                    .filter(|&i| {
                        meta.partition(i).is_some_and(|p| p.leader == me)
                            && hosted.partition(i).is_some()
                    })
                    .collect::<BTreeSet<i32>>();
                (here, meta.partition_count())
            }
            _ => (BTreeSet::new(), 0),
        };
        let lost: BTreeSet<i32> = led.difference(&now_led).copied().collect();
        let gained: Vec<i32> = now_led.difference(&led).copied().collect();
        if !lost.is_empty() {
            let mut ids = txns.ids.lock();
            let before = ids.len();
            ids.retain(|id, _| !lost.contains(&partition_for(id, count)));
            info!(partitions = ?lost, transactional_ids = before - ids.len(), "no longer coordinating the transactions of these partitions");
        }
        let Some(hosted) = hosted else {
            *led = now_led;
            return Ok(());
        };
        txns.loading.write().extend(gained.iter().copied());
        let started = Instant::now();
        let mut failed = None;
        let mut loaded = 0;
        for index in gained {
            match hosted
                .partition(index)
                .ok_or(BrokerError::CoordinatorNotAvailable)
                .and_then(|p| load_partition(p))
            {
                Ok(found) => {
                    loaded += found.len();
                    let mut ids = txns.ids.lock();
                    for (id, m) in found {
                        ids.entry(id).or_insert(m);
                    }
                }
                Err(e) => {
                    warn!(partition = index, error = %e, "could not load a __transaction_state partition");
                    failed = Some(BrokerError::Storage(format!("{TXN_TOPIC}-{index}: {e}")));
                }
            }
            txns.loading.write().remove(&index);
        }
        if loaded > 0 {
            info!(
                transactional_ids = loaded,
                ms = started.elapsed().as_millis() as u64,
                "loaded transaction state"
            );
        }
        *led = now_led;
        failed.map_or(Ok(()), Err)
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

impl Broker {
    /// Forgets transactional ids idle for `transactional.id.expiration.ms`.
    fn expire_transactional_ids(&self, now: i64) {
        let idle_since = now - self.config.transactional_id_expiration_ms();
        let expired: Vec<String> = self
            .txns
            .ids
            .lock()
            .values()
            .filter(|m| !m.pending && m.is_idle() && m.last_update_ms <= idle_since)
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in &expired {
            if let Err(e) = self.transactions().expire(id, idle_since) {
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
            let ids = self.txns.ids.lock();
            let completing = self.txns.completing.lock();
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
            let broker = self.clone();
            tokio::spawn(async move {
                if let Err(e) = broker.transactions().complete(&id).await {
                    warn!(transactional_id = %id, error = %e, "could not complete a transaction yet");
                }
            });
        }
        for id in timed_out {
            let broker = self.clone();
            tokio::spawn(async move {
                let txns = broker.transactions();
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

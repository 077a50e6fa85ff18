//! The transaction coordinator's requests: InitProducerId with a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, and the read side (DescribeTransactions,
//! ListTransactions). Each change is decided by `state.rs`, written to the id's
//! `__transaction_state` partition (acks=all) and applied once written; while it is being
//! written, other requests for the id get CONCURRENT_TRANSACTIONS.

use std::sync::Arc;
use std::time::Duration;

use sluice_cluster::BrokerInfo;
use sluice_log::batch;

use super::markers::PartitionInTxn;
use super::records;
use super::state::{EndDecision, InitDecision, TxnMetadata, TxnState, LAST_EPOCH};
use super::TransactionCoordinator;
use crate::coordinated_topic::partition_for;
use crate::error::{BrokerError, Result};
use crate::replica::partition::Partition;
use crate::replica::topic::Topic;

/// The longest transactional id: its `__transaction_state` key stores it with a 16-bit
/// length.
const MAX_TRANSACTIONAL_ID_BYTES: usize = i16::MAX as usize;

/// How long a state write waits for the partition's in-sync replicas.
const STATE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a partition leader waits for the coordinator's answer about a transactional
/// batch.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long EndTxn waits for the markers before answering (they are written in the
/// background after that; the transaction is decided once prepared).
const END_TXN_MARKER_WAIT: Duration = Duration::from_secs(10);

/// The `__transaction_state` batch holding one id's state.
fn state_batch(transactional_id: &str, m: &TxnMetadata) -> Vec<u8> {
    let (key, value) = (records::key(transactional_id), records::value(m));
    batch::build_batch(crate::now_ms(), &[(Some(&key), Some(&value))])
}

/// A transaction as ListTransactions shows it.
#[derive(Debug, Clone)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

impl TransactionCoordinator {
    /// The `__transaction_state` topic, created on first use with the broker's settings.
    pub fn state_topic(&self) -> Result<Arc<Topic>> {
        self.state_topic.topic()
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub(crate) fn partition_of(&self, transactional_id: &str) -> Option<i32> {
        let count = self.state_topic.partition_count()?;
        Some(partition_for(transactional_id, count))
    }

    /// The broker coordinating `transactional_id` (FindCoordinator): the leader of its
    /// `__transaction_state` partition.
    pub fn coordinator_of(&self, transactional_id: &str) -> Result<BrokerInfo> {
        let index = self
            .partition_of(transactional_id)
            .ok_or(BrokerError::CoordinatorNotAvailable)?;
        self.state_topic.coordinator_at(index)
    }

    /// Ok when this broker coordinates `transactional_id` and has loaded its partition;
    /// NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS or COORDINATOR_NOT_AVAILABLE otherwise.
    pub fn check_coordinator(&self, transactional_id: &str) -> Result<()> {
        if transactional_id.is_empty() || transactional_id.len() > MAX_TRANSACTIONAL_ID_BYTES {
            return Err(BrokerError::InvalidRequest(format!(
                "a transactional id has 1 to {MAX_TRANSACTIONAL_ID_BYTES} bytes"
            )));
        }
        self.state_topic()?;
        let index = self
            .partition_of(transactional_id)
            .ok_or(BrokerError::CoordinatorNotAvailable)?;
        self.state_topic.check_at(index)
    }

    /// The state partition of `transactional_id`, led here.
    fn state_partition(&self, transactional_id: &str) -> Result<Arc<Partition>> {
        let index = self
            .partition_of(transactional_id)
            .ok_or(BrokerError::CoordinatorNotAvailable)?;
        self.state_topic.partition_at(index)
    }

    /// The coordinator epoch markers carry: the leader epoch of the id's state partition.
    pub(crate) fn coordinator_epoch(&self, transactional_id: &str) -> Result<i32> {
        Ok(self.state_partition(transactional_id)?.leader_epoch())
    }

    /// Queues the state `decide` gives (from the id's current state, not pending) for
    /// writing and applies it at once, without waiting for the write: for changes whose loss
    /// in a crash is repaired when the state is read back.
    pub(crate) fn write_unawaited(
        &self,
        transactional_id: &str,
        decide: impl FnOnce(&TxnMetadata) -> Option<TxnMetadata>,
    ) -> Result<()> {
        let mut ids = self.ids.lock();
        let Some(target) = ids
            .get(transactional_id)
            .filter(|m| !m.pending)
            .and_then(decide)
        else {
            return Ok(());
        };
        let partition = self.state_partition(transactional_id)?;
        self.replicas.append(
            &partition,
            state_batch(transactional_id, &target).into(),
            -1,
            crate::AppendOrigin::Coordinator,
        )?;
        ids.insert(transactional_id.to_string(), target);
        Ok(())
    }

    /// Forgets `transactional_id` if it is still idle since `idle_since_ms` (no transaction
    /// open, nothing pending): a tombstone is written, not awaited (lost in a crash, the id
    /// comes back and expires again).
    pub(crate) fn expire(&self, transactional_id: &str, idle_since_ms: i64) -> Result<()> {
        let mut ids = self.ids.lock();
        let idle = ids
            .get(transactional_id)
            .is_some_and(|m| !m.pending && m.is_idle() && m.last_update_ms <= idle_since_ms);
        if !idle {
            return Ok(());
        }
        let partition = self.state_partition(transactional_id)?;
        let key = records::key(transactional_id);
        let tombstone = batch::build_batch(crate::now_ms(), &[(Some(&key), None)]);
        self.replicas.append(
            &partition,
            tombstone.into(),
            -1,
            crate::AppendOrigin::Coordinator,
        )?;
        ids.remove(transactional_id);
        Ok(())
    }

    /// Decides a change of `transactional_id` under the lock (`decide` sees its current
    /// state), writes the new state and applies it once written. `Ok(None)`: nothing to
    /// write. While the write is in flight the id is marked pending.
    pub(crate) async fn transition(
        &self,
        transactional_id: &str,
        decide: impl FnOnce(Option<&TxnMetadata>) -> Result<Option<TxnMetadata>>,
    ) -> Result<Option<TxnMetadata>> {
        let (target, previous, pending) = {
            let mut ids = self.ids.lock();
            let current = ids.get(transactional_id);
            let Some(mut target) = decide(current)? else {
                return Ok(None);
            };
            target.pending = false;
            let partition = self.state_partition(transactional_id)?;
            let pending = self.replicas.append(
                &partition,
                state_batch(transactional_id, &target).into(),
                -1,
                crate::AppendOrigin::Coordinator,
            )?;
            let previous = current.cloned();
            let mut marked = previous.clone().unwrap_or_else(|| target.clone());
            marked.pending = true;
            ids.insert(transactional_id.to_string(), marked);
            (target, previous, pending)
        };
        let written = crate::coordinated_topic::written(pending, STATE_WRITE_TIMEOUT).await;
        let still_led = self
            .partition_of(transactional_id)
            .is_some_and(|i| self.state_topic.leads(i));
        let mut ids = self.ids.lock();
        match (written, still_led) {
            (Ok(()), true) => {
                ids.insert(transactional_id.to_string(), target.clone());
                Ok(Some(target))
            }
            (result, _) => {
                match previous {
                    Some(p) if still_led => {
                        ids.insert(transactional_id.to_string(), p);
                    }
                    _ => {
                        ids.remove(transactional_id);
                    }
                }
                result?;
                Err(BrokerError::NotCoordinator)
            }
        }
    }

    /// A new producer id, taken now (outside the ids' lock), if `needs` says the id's
    /// current state will want one.
    fn fresh_id_if(
        &self,
        transactional_id: &str,
        needs: impl FnOnce(Option<&TxnMetadata>) -> bool,
    ) -> Result<Option<i64>> {
        let wanted = needs(self.ids.lock().get(transactional_id));
        wanted.then(|| self.producer_ids.new_id()).transpose()
    }

    /// InitProducerId with a transactional id: a producer id and a new epoch, fencing any
    /// earlier producer with this id; an open transaction of it is aborted first (the client
    /// is told CONCURRENT_TRANSACTIONS and retries).
    pub async fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16)> {
        let max = self.config.transaction_max_timeout_ms();
        if timeout_ms <= 0 || timeout_ms > max {
            return Err(BrokerError::InvalidTransactionTimeout(format!(
                "transaction.timeout.ms {timeout_ms} is outside 1..={max} (transaction.max.timeout.ms)"
            )));
        }
        self.check_coordinator(transactional_id)?;
        let now = crate::now_ms();
        // A new producer id may come from the controller (a round trip once per block):
        // taken before the ids' lock when this id will likely need one.
        let mut fresh = self.fresh_id_if(transactional_id, |m| {
            m.is_none_or(|m| m.producer_epoch >= LAST_EPOCH - 1)
        })?;
        let producer_ids = &self.producer_ids;
        let mut fresh_id = move || fresh.take().map_or_else(|| producer_ids.new_id(), Ok);
        let mut abort_first = false;
        let written = self
            .transition(transactional_id, |current| match current {
                None => {
                    if expected.is_some() {
                        return Err(BrokerError::InvalidProducerIdMapping(format!(
                            "transactional id {transactional_id:?} has no producer"
                        )));
                    }
                    let id = fresh_id()?;
                    let mut m = TxnMetadata::new(transactional_id, id, timeout_ms);
                    m.last_update_ms = now;
                    Ok(Some(m))
                }
                Some(m) => match m.init(expected, timeout_ms, now, fresh_id)? {
                    // A retry of an answered InitProducerId writes the same state again.
                    InitDecision::Write(next) => Ok(Some(next)),
                    InitDecision::AbortFirst(next) => {
                        abort_first = true;
                        Ok(Some(next))
                    }
                },
            })
            .await?;
        let m = written.ok_or(BrokerError::ConcurrentTransactions)?;
        if abort_first {
            // The open transaction is aborted under the new epoch; the client asks again.
            self.complete(transactional_id).await.ok();
            return Err(BrokerError::ConcurrentTransactions);
        }
        Ok((m.producer_id, m.producer_epoch))
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the partitions join the producer's open
    /// transaction (opening one if none is).
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<()> {
        self.check_coordinator(transactional_id)?;
        let now = crate::now_ms();
        self.transition(transactional_id, |current| {
            let m = current.ok_or_else(|| {
                BrokerError::InvalidProducerIdMapping(format!(
                    "transactional id {transactional_id:?} has no producer"
                ))
            })?;
            m.check_producer(producer_id, epoch)?;
            m.add_partitions(partitions, now)
        })
        .await?;
        Ok(())
    }

    /// Whether `(topic, partition)` is in the producer's open transaction (KIP-890's
    /// verification before a transactional append).
    pub fn verify_partition(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<()> {
        self.check_coordinator(transactional_id)?;
        let ids = self.ids.lock();
        let m = ids.get(transactional_id).ok_or_else(|| {
            BrokerError::InvalidProducerIdMapping(format!(
                "transactional id {transactional_id:?} has no producer"
            ))
        })?;
        if m.producer_id != producer_id {
            return Err(BrokerError::InvalidProducerIdMapping(format!(
                "producer id {producer_id} is not the one of transactional id {transactional_id:?}"
            )));
        }
        if epoch < m.producer_epoch {
            return Err(BrokerError::ProducerFenced(format!(
                "producer epoch {epoch} of transactional id {transactional_id:?} was fenced"
            )));
        }
        let added =
            m.state == TxnState::Ongoing && m.partitions.contains(&(topic.to_string(), partition));
        if !added {
            return Err(BrokerError::InvalidTxnState(format!(
                "{topic}-{partition} was not added to the transaction of {transactional_id:?}"
            )));
        }
        Ok(())
    }

    /// EndTxn: commits or aborts the open transaction. Answered once the decision is durable
    /// and, normally, once the markers are written too. With `bump_epoch` (transactions v2,
    /// EndTxn v5+) the epoch goes up with every transaction; the answer is the producer id and
    /// epoch the producer goes on with.
    pub async fn end_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        bump_epoch: bool,
    ) -> Result<(i64, i16)> {
        self.check_coordinator(transactional_id)?;
        let now = crate::now_ms();
        let mut fresh = self.fresh_id_if(transactional_id, |m| {
            bump_epoch && m.is_some_and(|m| m.producer_epoch >= LAST_EPOCH)
        })?;
        let producer_ids = &self.producer_ids;
        let fresh_id = move || fresh.take().map_or_else(|| producer_ids.new_id(), Ok);
        let mut after = (producer_id, epoch);
        let prepared = self
            .transition(transactional_id, |current| {
                let m = current.ok_or_else(|| {
                    BrokerError::InvalidProducerIdMapping(format!(
                        "transactional id {transactional_id:?} has no producer"
                    ))
                })?;
                if bump_epoch && m.is_end_retry(producer_id, epoch, commit) {
                    after = m.producer_after();
                    return Ok(None);
                }
                m.check_producer(producer_id, epoch)?;
                match m.end(commit, now, bump_epoch, fresh_id)? {
                    EndDecision::Prepare(next) => Ok(Some(next)),
                    EndDecision::AlreadyDone => Ok(None),
                }
            })
            .await?;
        if let Some(p) = prepared {
            after = p.producer_after();
            let _ =
                tokio::time::timeout(END_TXN_MARKER_WAIT, self.complete(transactional_id)).await;
        }
        Ok(after)
    }

    /// DescribeTransactions: the id's state, if this broker coordinates it.
    pub fn describe(&self, transactional_id: &str) -> Result<TxnMetadata> {
        self.check_coordinator(transactional_id)?;
        self.ids
            .lock()
            .get(transactional_id)
            .cloned()
            .ok_or_else(|| {
                BrokerError::TransactionalIdNotFound(format!(
                    "no transactional id {transactional_id:?}"
                ))
            })
    }

    /// How long the oldest transaction open on this coordinator has been open at `now` (ms,
    /// 0 when none is).
    pub fn oldest_open_ms(&self, now: i64) -> i64 {
        self.ids
            .lock()
            .values()
            .filter(|m| m.state == TxnState::Ongoing)
            .map(|m| now - m.txn_start_ms)
            .max()
            .unwrap_or(0)
    }

    /// ListTransactions: the ids this broker coordinates, filtered by state names,
    /// producer ids and minimum duration of the open transaction (empty filters: all).
    pub fn list(
        &self,
        states: &[String],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> Vec<TransactionListing> {
        let now = crate::now_ms();
        let mut out: Vec<TransactionListing> = self
            .ids
            .lock()
            .values()
            .filter(|m| states.is_empty() || states.iter().any(|s| s == m.state.name()))
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|m| {
                min_duration_ms < 0
                    || (m.state == TxnState::Ongoing && now - m.txn_start_ms >= min_duration_ms)
            })
            .map(|m| TransactionListing {
                transactional_id: m.transactional_id.clone(),
                producer_id: m.producer_id,
                state: m.state,
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }
}

impl TransactionCoordinator {
    /// Adds `request`'s partition to the producer's open transaction (or, `verify_only`,
    /// checks that it is in it) at the transactional id's coordinator, here or elsewhere.
    pub async fn add_to_transaction(
        &self,
        request: PartitionInTxn,
        verify_only: bool,
    ) -> Result<()> {
        let txns = self;
        let id = request.transactional_id.as_str();
        match txns.check_coordinator(id) {
            Ok(()) if verify_only => txns.verify_partition(
                id,
                request.producer_id,
                request.producer_epoch,
                &request.topic,
                request.partition,
            ),
            Ok(()) => {
                let partition = [(request.topic.clone(), request.partition)];
                txns.add_partitions(id, request.producer_id, request.producer_epoch, &partition)
                    .await
            }
            Err(BrokerError::NotCoordinator) => {
                let to = txns.coordinator_of(id)?;
                let remote = self
                    .remote
                    .get()
                    .cloned()
                    .ok_or(BrokerError::CoordinatorNotAvailable)?;
                remote.add_partition(to, request, verify_only).await
            }
            Err(e) => Err(e),
        }
    }

    /// Before a transactional batch opens a transaction in a partition, the coordinator
    /// checks that the producer added the partition to its transaction (KIP-890's
    /// verification) or, for transactions v2 (`implicit_add`: Produce v12+), adds it: a
    /// zombie's late batch can then not leave a transaction open forever. Batches of a
    /// transaction already open here are checked by the log (epoch fencing). The question
    /// goes to the coordinator wherever it is; this waits for it (once per partition and
    /// transaction), so a connection's appends keep their order.
    pub fn verify_transactional_append(
        &self,
        transactional_id: Option<&str>,
        partition: &Partition,
        records: &[u8],
        implicit_add: bool,
    ) -> Result<()> {
        if records.len() < batch::HEADER_SIZE {
            return Ok(()); // validation refuses it
        }
        let h = batch::BatchHeader::parse(records);
        if !h.is_transactional() {
            return Ok(());
        }
        let Some(id) = transactional_id.filter(|t| !t.is_empty()) else {
            return Err(BrokerError::InvalidRecord(
                "a transactional batch in a produce request without a transactional id".into(),
            ));
        };
        let open = partition
            .log()
            .producer_state()
            .entry(h.producer_id)
            .is_some_and(|e| e.txn_first_offset.is_some() && e.epoch == h.producer_epoch());
        if open {
            return Ok(());
        }
        let request = PartitionInTxn {
            transactional_id: id.to_string(),
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch(),
            topic: partition.topic.to_string(),
            partition: partition.index,
        };
        let asked = crate::wait_for(tokio::time::timeout(
            VERIFY_TIMEOUT,
            self.add_to_transaction(request, !implicit_add),
        ));
        match asked {
            Ok(Ok(())) => Ok(()),
            // Not answered now: the producer retries the batch.
            Err(_)
            | Ok(Err(
                BrokerError::CoordinatorNotAvailable
                | BrokerError::NotCoordinator
                | BrokerError::CoordinatorLoadInProgress
                | BrokerError::ConcurrentTransactions,
            )) => Err(BrokerError::TransactionNotVerified(format!(
                "the transaction coordinator of {id:?} could not be asked about {}-{} yet",
                partition.topic, partition.index
            ))),
            Ok(Err(e)) => Err(e),
        }
    }
}

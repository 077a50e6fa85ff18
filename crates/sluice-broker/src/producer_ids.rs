//! InitProducerId for idempotent producers: unique producer ids, taken in blocks the
//! controller reserves (durably, cluster-wide, through the coordinator) before any id of the
//! block is used. Other brokers ask the controller for a block (AllocateProducerIds, as
//! Kafka's KIP-730), through the `BlockSource` the Kafka front end installs.

use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use sluice_cluster::Coordinator;

use crate::error::{BrokerError, Result};

/// Producer ids per block.
pub const PRODUCER_ID_BLOCK: i64 = 1000;
const BLOCK: i64 = PRODUCER_ID_BLOCK;

/// Where a broker that is not the controller gets its blocks: the first id of a block of
/// `count` reserved for it.
pub trait BlockSource: Send + Sync {
    fn reserve(&self, count: i64) -> BoxFuture<'_, Result<i64>>;
}

/// The rest of this broker's current block: `next..block_end` (empty at start).
#[derive(Default)]
struct Block {
    next: i64,
    end: i64,
}

/// Hands out producer ids from blocks the coordinator reserves.
pub struct ProducerIds {
    coordinator: Arc<dyn Coordinator>,
    block: Mutex<Block>,
    controller: OnceLock<Arc<dyn BlockSource>>,
}

impl ProducerIds {
    pub(crate) fn new(coordinator: Arc<dyn Coordinator>) -> ProducerIds {
        ProducerIds {
            coordinator,
            block: Mutex::new(Block::default()),
            controller: OnceLock::new(),
        }
    }

    /// How this broker asks the controller for blocks when it is not the controller
    /// (without one, it reserves them through the coordinator itself).
    pub fn set_controller_source(&self, source: Arc<dyn BlockSource>) {
        let _ = self.controller.set(source);
    }

    /// The controller's side of AllocateProducerIds: reserves a block of `count` ids for a
    /// broker; NOT_CONTROLLER on any other broker.
    pub fn reserve_block(&self, count: i64) -> Result<i64> {
        if !self.coordinator.is_controller() {
            return Err(BrokerError::NotController);
        }
        Ok(crate::wait_for(
            self.coordinator.allocate_producer_ids(count),
        )?)
    }

    /// A producer id and epoch. With an existing id and epoch (a producer recovering, KIP-360)
    /// the same id comes back with the next epoch. Transactional ids are the transaction
    /// coordinator's (txn/).
    pub fn init_producer_id(
        &self,
        transactional_id: Option<&str>,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(i64, i16)> {
        if transactional_id.is_some() {
            return Err(BrokerError::InvalidRequest(
                "a transactional id is the transaction coordinator's".into(),
            ));
        }
        if producer_id >= 0 && epoch >= 0 {
            // Ids from before a restart, or from another broker, are not known here: Kafka
            // only checks the epoch against the producer's state, which this broker may not have.
            let block = self.block.lock();
            if (block.next..block.end).contains(&producer_id) {
                return Err(BrokerError::InvalidRequest(format!(
                    "producer id {producer_id} was never given out"
                )));
            }
            if epoch < i16::MAX - 1 {
                return Ok((producer_id, epoch + 1));
            }
        }
        Ok((self.new_id()?, 0))
    }

    /// A producer id never given out before (cluster-wide).
    pub fn new_id(&self) -> Result<i64> {
        let mut block = self.block.lock();
        if block.next >= block.end {
            // Reserving is one small durable write (or a round trip to the controller); rare
            // enough to hold the lock across.
            let start = match self.controller.get() {
                Some(controller) if !self.coordinator.is_controller() => {
                    crate::wait_for(controller.reserve(BLOCK))?
                }
                _ => crate::wait_for(self.coordinator.allocate_producer_ids(BLOCK))?,
            };
            block.next = start;
            block.end = start + BLOCK;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use crate::broker::tests::broker;

    #[test]
    fn ids_are_unique_across_restarts_and_epochs_bump() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let (a, ea) = b.producer_ids.init_producer_id(None, -1, -1).unwrap();
        let (c, _) = b.producer_ids.init_producer_id(None, -1, -1).unwrap();
        assert_ne!(a, c);
        assert_eq!(ea, 0);
        assert_eq!(b.producer_ids.init_producer_id(None, a, 0).unwrap(), (a, 1));
        assert!(b.producer_ids.init_producer_id(None, c + 1, 0).is_err());
        assert!(b.producer_ids.init_producer_id(Some("tx"), -1, -1).is_err());
        drop(b);
        let b = broker(dir.path());
        let (d, _) = b.producer_ids.init_producer_id(None, -1, -1).unwrap();
        assert!(d > c, "no id is reused after a restart");
    }
}

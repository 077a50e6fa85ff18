//! The transaction coordinator (KIP-98): transactional ids, their producer ids and epochs
//! (fencing zombies), the partitions of each open transaction, and ending transactions by
//! writing commit or abort markers to those partitions. Its state is durable in the
//! compacted internal topic `__transaction_state`; a transactional id's coordinator is the
//! leader of its partition there, and the state moves with that leadership, as consumer
//! groups' does with `__consumer_offsets`. `Broker::transactions()` gives the room.

mod coordinator;
mod leadership;
mod markers;
pub(crate) mod records;
mod state;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};

pub use coordinator::TransactionListing;
pub use markers::{PartitionInTxn, PartitionResults, TxnMarker, TxnRemote};
pub use state::{TxnMetadata, TxnState};

pub const TXN_TOPIC: &str = "__transaction_state";

/// The coordinator's state on this broker.
#[derive(Default)]
pub struct Transactions {
    /// Every transactional id of the `__transaction_state` partitions this broker leads.
    pub(crate) ids: Mutex<HashMap<String, TxnMetadata>>,
    /// Those partitions (lock order: `led`, then `ids`, then `loading`).
    pub(crate) led: Mutex<BTreeSet<i32>>,
    pub(crate) loading: RwLock<BTreeSet<i32>>,
    /// Transactional ids whose markers some task is writing now.
    pub(crate) completing: Mutex<HashSet<String>>,
    /// Markers to partitions other brokers lead, questions to other coordinators (the Kafka
    /// front end's).
    pub(crate) remote: OnceLock<Arc<dyn TxnRemote>>,
}

/// The transaction coordinator, over the broker's state.
pub struct TransactionCoordinator<'a> {
    pub(crate) broker: &'a crate::broker::Broker,
}

impl crate::broker::Broker {
    pub fn transactions(&self) -> TransactionCoordinator<'_> {
        TransactionCoordinator { broker: self }
    }

    /// Installs what reaches other brokers for the transaction APIs (once).
    pub fn set_txn_remote(&self, remote: Arc<dyn TxnRemote>) {
        let _ = self.txns.remote.set(remote);
    }
}

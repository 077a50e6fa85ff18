//! The transaction coordinator (KIP-98): transactional ids, their producer ids and epochs
//! (fencing zombies), the partitions of each open transaction, and ending transactions by
//! writing commit or abort markers to those partitions. Its state is durable in the
//! compacted internal topic `__transaction_state`; a transactional id's coordinator is the
//! leader of its partition there, and the state moves with that leadership, as consumer
//! groups' does with `__consumer_offsets` (`Broker::transactions`).

mod coordinator;
mod leadership;
mod markers;
pub(crate) mod records;
mod state;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::admin::TopicAdmin;
use crate::config::BrokerConfig;
use crate::coordinated_topic::CoordinatedTopic;
use crate::group::GroupCoordinator;
use crate::producer_ids::ProducerIds;
use crate::replica::topic::TXN_TOPIC;
use crate::replica::ReplicaManager;

pub use coordinator::TransactionListing;
pub use markers::{PartitionInTxn, PartitionResults, TxnMarker, TxnRemote};
pub use state::{TxnMetadata, TxnState};

/// The transaction coordinator: the transactional ids of the `__transaction_state`
/// partitions this broker leads, and the writing of their transactions' markers.
pub struct TransactionCoordinator {
    pub(crate) config: Arc<BrokerConfig>,
    pub(crate) replicas: Arc<ReplicaManager>,
    /// `__transaction_state`: which partitions are led and loaded here.
    pub(crate) state_topic: CoordinatedTopic,
    /// Offsets committed in transactions count once their marker is written.
    pub(crate) groups: Arc<GroupCoordinator>,
    pub(crate) producer_ids: Arc<ProducerIds>,
    /// Every transactional id of the `__transaction_state` partitions this broker leads
    /// (lock order: the topic's `led`, then `ids`).
    pub(crate) ids: Mutex<HashMap<String, TxnMetadata>>,
    /// Transactional ids whose markers some task is writing now.
    pub(crate) completing: Mutex<HashSet<String>>,
    /// Markers to partitions other brokers lead, questions to other coordinators (the Kafka
    /// front end's).
    pub(crate) remote: OnceLock<Arc<dyn TxnRemote>>,
}

impl TransactionCoordinator {
    pub(crate) fn new(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        admin: Arc<TopicAdmin>,
        groups: Arc<GroupCoordinator>,
        producer_ids: Arc<ProducerIds>,
    ) -> TransactionCoordinator {
        TransactionCoordinator {
            state_topic: CoordinatedTopic::new(TXN_TOPIC, replicas.clone(), admin),
            config,
            replicas,
            groups,
            producer_ids,
            ids: Mutex::new(HashMap::new()),
            completing: Mutex::new(HashSet::new()),
            remote: OnceLock::new(),
        }
    }

    /// Installs what reaches other brokers for the transaction APIs (once).
    pub fn set_txn_remote(&self, remote: Arc<dyn TxnRemote>) {
        let _ = self.remote.set(remote);
    }
}

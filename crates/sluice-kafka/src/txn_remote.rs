//! The transaction APIs between brokers, over kept connections (`sluice_client::BrokerLinks`): a
//! coordinator's markers to partitions another broker leads (WriteTxnMarkers), and a
//! partition leader's question to a transactional id's coordinator before a transactional
//! batch opens a transaction (AddPartitionsToTxn v5, the brokers' batched form).

use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_broker::txn::{PartitionInTxn, PartitionResults, TxnMarker, TxnRemote};
use sluice_broker::BrokerError;
use tracing::debug;

use sluice_client::BrokerLinks;

pub struct TxnLinks {
    pub links: std::sync::Arc<BrokerLinks>,
}

impl TxnRemote for TxnLinks {
    fn write_markers(
        &self,
        to: sluice_cluster::BrokerInfo,
        marker: TxnMarker,
        partitions: Vec<(String, i32)>,
    ) -> BoxFuture<'_, sluice_broker::Result<PartitionResults>> {
        Box::pin(async move {
            let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
            for (topic, index) in &partitions {
                match topics.last_mut() {
                    Some(t) if t.name.as_str() == topic => t.partition_indexes.push(*index),
                    _ => topics.push(
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.clone())))
                            .with_partition_indexes(vec![*index]),
                    ),
                }
            }
            let request =
                WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                    .with_producer_id(ProducerId(marker.producer_id))
                    .with_producer_epoch(marker.producer_epoch)
                    .with_transaction_result(marker.commit)
                    .with_coordinator_epoch(marker.coordinator_epoch)
                    .with_topics(topics)]);
            let response: WriteTxnMarkersResponse = self
                .links
                .call(
                    &(to.host.clone(), to.port),
                    ApiKey::WriteTxnMarkers,
                    1,
                    &request,
                )
                .await
                .map_err(|e| {
                    debug!(broker = to.node_id, error = %e, "could not send transaction markers");
                    BrokerError::LeaderNotAvailable
                })?;
            let mut results = PartitionResults::new();
            for m in &response.markers {
                for t in &m.topics {
                    for p in &t.partitions {
                        let result = match p.error_code {
                            0 => Ok(()),
                            c if c == ResponseError::UnknownTopicOrPartition.code() => {
                                Err(BrokerError::UnknownTopicOrPartition)
                            }
                            c if c == ResponseError::TransactionCoordinatorFenced.code() => {
                                Err(BrokerError::TransactionCoordinatorFenced(format!(
                                    "broker {} has a newer coordinator's marker",
                                    to.node_id
                                )))
                            }
                            c => Err(BrokerError::Storage(format!(
                                "broker {} did not write the marker: error {c}",
                                to.node_id
                            ))),
                        };
                        results.push(((t.name.to_string(), p.partition_index), result));
                    }
                }
            }
            Ok(results)
        })
    }

    fn add_partition(
        &self,
        to: sluice_cluster::BrokerInfo,
        request: PartitionInTxn,
        verify_only: bool,
    ) -> BoxFuture<'_, sluice_broker::Result<()>> {
        use kafka_protocol::messages::add_partitions_to_txn_request::{
            AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
        };
        use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
        Box::pin(async move {
            let body = AddPartitionsToTxnRequest::default().with_transactions(vec![
                AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(TransactionalId(StrBytes::from_string(
                        request.transactional_id.clone(),
                    )))
                    .with_producer_id(ProducerId(request.producer_id))
                    .with_producer_epoch(request.producer_epoch)
                    .with_verify_only(verify_only)
                    .with_topics(vec![AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(StrBytes::from_string(request.topic.clone())))
                        .with_partitions(vec![request.partition])]),
            ]);
            let response: AddPartitionsToTxnResponse = self
                .links
                .call(&(to.host.clone(), to.port), ApiKey::AddPartitionsToTxn, 5, &body)
                .await
                .map_err(|e| {
                    debug!(broker = to.node_id, error = %e, "could not reach a transaction coordinator");
                    BrokerError::CoordinatorNotAvailable
                })?;
            let code = if response.error_code != 0 {
                response.error_code
            } else {
                response
                    .results_by_transaction
                    .iter()
                    .flat_map(|t| &t.topic_results)
                    .flat_map(|t| &t.results_by_partition)
                    .map(|p| p.partition_error_code)
                    .find(|c| *c != 0)
                    .unwrap_or(0)
            };
            coordinator_error(code)
        })
    }
}

/// A coordinator's answer as the broker error the produce path passes on.
fn coordinator_error(code: i16) -> sluice_broker::Result<()> {
    use ResponseError as E;
    let message = || format!("the transaction coordinator answered {code}");
    Err(match ResponseError::try_from_code(code) {
        None => return Ok(()),
        Some(E::NotCoordinator) => BrokerError::NotCoordinator,
        Some(E::CoordinatorLoadInProgress) => BrokerError::CoordinatorLoadInProgress,
        Some(E::ConcurrentTransactions) => BrokerError::ConcurrentTransactions,
        Some(E::ProducerFenced | E::InvalidProducerEpoch) => BrokerError::ProducerFenced(message()),
        Some(E::InvalidProducerIdMapping) => BrokerError::InvalidProducerIdMapping(message()),
        Some(E::InvalidTxnState) => BrokerError::InvalidTxnState(message()),
        Some(_) => BrokerError::CoordinatorNotAvailable,
    })
}

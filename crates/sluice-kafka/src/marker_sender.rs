//! Transaction markers to partitions another broker leads: the transaction coordinator's
//! WriteTxnMarkers, over kept connections (`broker_links.rs`).

use std::sync::Weak;

use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_broker::txn::{MarkerRemote, PartitionResults, TxnMarker};
use sluice_broker::{Broker, BrokerError};
use tracing::debug;

use crate::broker_links::BrokerLinks;

pub struct MarkerSender {
    pub broker: Weak<Broker>,
    pub links: BrokerLinks,
}

impl MarkerRemote for MarkerSender {
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
            let me = self.broker.upgrade().map_or(-1, |b| b.config.node_id);
            let response: WriteTxnMarkersResponse = self
                .links
                .call(
                    &(to.host.clone(), to.port),
                    me,
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
}

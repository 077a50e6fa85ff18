//! Requests only the controller may serve (topic and config changes, the first
//! FindCoordinator, which creates `__consumer_offsets`) are forwarded to it when they reach
//! another broker, as Kafka brokers do: the request frame goes to the controller unchanged and
//! its response comes back unchanged. A Metadata request that auto-creates a topic asks the
//! controller with a CreateTopics of its own, then answers from this broker's image.

use std::time::Duration;

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, ApiKey, BrokerId, CreateTopicsRequest,
    CreateTopicsResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_client::{call_once, BrokerLinks, ClientSecurity, Conn};
use tracing::debug;

use crate::reply::{Response, ResponseFuture};
use crate::Context;

/// A forwarded request's whole round trip, creating topics included.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// The APIs that change metadata and so are the controller's to serve.
pub fn is_controller_api(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::CreateTopics
            | ApiKey::AllocateProducerIds
            | ApiKey::AlterPartition
            | ApiKey::DeleteTopics
            | ApiKey::CreatePartitions
            | ApiKey::AlterConfigs
            | ApiKey::IncrementalAlterConfigs
            | ApiKey::AlterUserScramCredentials
    )
}

/// The controller's address, if another broker is the controller now.
pub fn controller_elsewhere(ctx: &Context) -> Option<(String, u16)> {
    if ctx.broker.is_controller() {
        return None;
    }
    let image = ctx.broker.replicas.image();
    let controller = image.broker(image.controller_id)?;
    (controller.node_id != ctx.broker.config.node_id)
        .then(|| (controller.host.clone(), controller.port))
}

/// Sends `frame` (a request without its size prefix) to the controller and answers with its
/// response. If the controller cannot be reached the connection is closed, so the client
/// retries elsewhere, as after any broker failure.
pub fn to_controller(
    to: (String, u16),
    security: std::sync::Arc<ClientSecurity>,
    api: ApiKey,
    frame: Bytes,
) -> ResponseFuture {
    Box::pin(async move {
        let round_trip = async {
            let conn =
                Conn::connect_broker(&to.0, to.1, "sluice-forward".into(), &security).await?;
            conn.forward(&frame).await
        };
        match tokio::time::timeout(FORWARD_TIMEOUT, round_trip).await {
            Ok(Ok(response)) => Response::Frame(response),
            Ok(Err(e)) => Response::Close(format!(
                "could not forward {api:?} to the controller at {}:{}: {e:#}",
                to.0, to.1
            )),
            Err(_) => Response::Close(format!(
                "the controller at {}:{} did not answer a forwarded {api:?} in time",
                to.0, to.1
            )),
        }
    })
}

/// Asks the controller at `to` to create `topic` with the defaults (auto-creation); Ok if it
/// exists afterwards.
pub async fn create_topic_at_controller(
    to: &(String, u16),
    node_id: i32,
    security: &ClientSecurity,
    topic: &str,
) -> Result<(), String> {
    const TOPIC_ALREADY_EXISTS: i16 = 36;
    let body = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_num_partitions(-1)
            .with_replication_factor(-1)])
        .with_timeout_ms(FORWARD_TIMEOUT.as_millis() as i32);
    let response: CreateTopicsResponse = call_once(
        to,
        client_id(node_id),
        security,
        ApiKey::CreateTopics,
        5,
        &body,
    )
    .await?;
    match response.topics.first().map(|t| t.error_code) {
        Some(0) | Some(TOPIC_ALREADY_EXISTS) => Ok(()),
        Some(code) => Err(format!("the controller answered error code {code}")),
        None => Err("the controller's answer names no topic".into()),
    }
}

/// Producer-id blocks from the controller (AllocateProducerIds), for a broker that is not it.
pub struct ControllerBlocks {
    pub broker: std::sync::Weak<sluice_broker::Broker>,
}

impl sluice_broker::BlockSource for ControllerBlocks {
    fn reserve(&self, _count: i64) -> futures::future::BoxFuture<'_, sluice_broker::Result<i64>> {
        Box::pin(async move {
            use sluice_broker::BrokerError;
            let broker = self
                .broker
                .upgrade()
                .ok_or(BrokerError::CoordinatorNotAvailable)?;
            let image = broker.replicas.image();
            let controller = image
                .broker(image.controller_id)
                .ok_or(BrokerError::CoordinatorNotAvailable)?;
            let to = (controller.host.clone(), controller.port);
            let me = broker.config.node_id;
            let request = AllocateProducerIdsRequest::default()
                .with_broker_id(BrokerId(me))
                .with_broker_epoch(-1);
            let response: AllocateProducerIdsResponse = call_once(
                &to,
                client_id(me),
                &broker.config.inter_broker_security,
                ApiKey::AllocateProducerIds,
                0,
                &request,
            )
            .await
            .map_err(|e| {
                debug!(error = %e, "could not reach the controller for producer ids");
                BrokerError::CoordinatorNotAvailable
            })?;
            if response.error_code != 0 || response.producer_id_len <= 0 {
                debug!(
                    code = response.error_code,
                    "the controller gave no producer ids"
                );
                return Err(BrokerError::CoordinatorNotAvailable);
            }
            Ok(response.producer_id_start.0)
        })
    }
}

/// The client id of this broker's own requests to other brokers.
pub(crate) fn client_id(node_id: i32) -> String {
    format!("sluice-broker-{node_id}")
}

/// Share coordinators on other brokers (ReadShareGroupState, WriteShareGroupState), and the
/// controller's creation of `__share_group_state` (a share coordinator lookup).
pub struct ShareCoordinators {
    pub broker: std::sync::Weak<sluice_broker::Broker>,
    /// Kept connections: an acknowledgement's state write should not pay for a connect.
    pub links: Arc<BrokerLinks>,
}

impl ShareCoordinators {
    /// One request (v0) to the share coordinator `to`; an unreachable one is
    /// COORDINATOR_NOT_AVAILABLE, which clients retry.
    async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        to: &sluice_cluster::BrokerInfo,
        api: ApiKey,
        request: &Req,
    ) -> sluice_broker::Result<Resp> {
        let to = (to.host.clone(), to.port);
        self.links.call(&to, api, 0, request).await.map_err(|e| {
            debug!(error = %e, "could not reach a share coordinator");
            sluice_broker::BrokerError::CoordinatorNotAvailable
        })
    }
}

/// A share coordinator's error code as the share-partition leader passes it on: clients retry.
fn share_coordinator_error(code: i16, message: Option<StrBytes>) -> sluice_broker::BrokerError {
    debug!(code, ?message, "the share coordinator refused");
    const FENCED_STATE_EPOCH: i16 = 124;
    if code == FENCED_STATE_EPOCH {
        return sluice_broker::BrokerError::FencedStateEpoch;
    }
    sluice_broker::BrokerError::CoordinatorNotAvailable
}

impl sluice_broker::share::ShareStateRemote for ShareCoordinators {
    fn is_member(
        &self,
        to: sluice_cluster::BrokerInfo,
        group: String,
        member: String,
    ) -> futures::future::BoxFuture<'_, sluice_broker::Result<bool>> {
        use kafka_protocol::messages::{ShareGroupDescribeRequest, ShareGroupDescribeResponse};
        Box::pin(async move {
            let request = ShareGroupDescribeRequest::default().with_group_ids(vec![
                kafka_protocol::messages::GroupId(StrBytes::from_string(group)),
            ]);
            let version = crate::handlers::share_group_describe::VERSIONS.1;
            let address = (to.host.clone(), to.port);
            let response: ShareGroupDescribeResponse = self
                .links
                .call(&address, ApiKey::ShareGroupDescribe, version, &request)
                .await
                .map_err(|e| {
                    debug!(error = %e, "could not reach a group coordinator");
                    sluice_broker::BrokerError::CoordinatorNotAvailable
                })?;
            let Some(g) = response.groups.first() else {
                return Err(sluice_broker::BrokerError::CoordinatorNotAvailable);
            };
            const GROUP_ID_NOT_FOUND: i16 = 69;
            match g.error_code {
                0 => Ok(g.members.iter().any(|m| m.member_id.as_str() == member)),
                GROUP_ID_NOT_FOUND => Ok(false),
                code => Err(share_coordinator_error(code, g.error_message.clone())),
            }
        })
    }

    fn read(
        &self,
        to: sluice_cluster::BrokerInfo,
        key: sluice_broker::share::StateKey,
    ) -> futures::future::BoxFuture<
        '_,
        sluice_broker::Result<Option<sluice_broker::share::PersistedState>>,
    > {
        use kafka_protocol::messages::read_share_group_state_request::{
            PartitionData, ReadStateData,
        };
        use kafka_protocol::messages::{ReadShareGroupStateRequest, ReadShareGroupStateResponse};
        Box::pin(async move {
            let request = ReadShareGroupStateRequest::default()
                .with_group_id(StrBytes::from_string(key.0.clone()))
                .with_topics(vec![ReadStateData::default()
                    .with_topic_id(key.1)
                    .with_partitions(vec![PartitionData::default()
                        .with_partition(key.2)
                        .with_leader_epoch(-1)])]);
            let response: ReadShareGroupStateResponse = self
                .call(&to, ApiKey::ReadShareGroupState, &request)
                .await?;
            let p = response
                .results
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or(sluice_broker::BrokerError::CoordinatorNotAvailable)?;
            if p.error_code != 0 {
                return Err(share_coordinator_error(
                    p.error_code,
                    p.error_message.clone(),
                ));
            }
            if p.start_offset == crate::handlers::read_share_group_state::NO_STATE
                && p.state_epoch == 0
            {
                return Ok(None);
            }
            Ok(Some(sluice_broker::share::PersistedState {
                state_epoch: p.state_epoch,
                start_offset: p.start_offset,
                batches: p
                    .state_batches
                    .iter()
                    .map(|b| sluice_broker::share::StateBatch {
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                        state: b.delivery_state,
                        delivery_count: b.delivery_count,
                    })
                    .collect(),
            }))
        })
    }

    fn write(
        &self,
        to: sluice_cluster::BrokerInfo,
        key: sluice_broker::share::StateKey,
        state: sluice_broker::share::PersistedState,
    ) -> futures::future::BoxFuture<'_, sluice_broker::Result<()>> {
        use kafka_protocol::messages::write_share_group_state_request::{
            PartitionData, StateBatch, WriteStateData,
        };
        use kafka_protocol::messages::{WriteShareGroupStateRequest, WriteShareGroupStateResponse};
        Box::pin(async move {
            let batches = state
                .batches
                .iter()
                .map(|b| {
                    StateBatch::default()
                        .with_first_offset(b.first_offset)
                        .with_last_offset(b.last_offset)
                        .with_delivery_state(b.state)
                        .with_delivery_count(b.delivery_count)
                })
                .collect();
            let request = WriteShareGroupStateRequest::default()
                .with_group_id(StrBytes::from_string(key.0.clone()))
                .with_topics(vec![WriteStateData::default()
                    .with_topic_id(key.1)
                    .with_partitions(vec![PartitionData::default()
                        .with_partition(key.2)
                        .with_leader_epoch(-1)
                        .with_state_epoch(state.state_epoch)
                        .with_start_offset(state.start_offset)
                        .with_state_batches(batches)])]);
            let response: WriteShareGroupStateResponse = self
                .call(&to, ApiKey::WriteShareGroupState, &request)
                .await?;
            let p = response
                .results
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or(sluice_broker::BrokerError::CoordinatorNotAvailable)?;
            if p.error_code != 0 {
                return Err(share_coordinator_error(
                    p.error_code,
                    p.error_message.clone(),
                ));
            }
            Ok(())
        })
    }

    fn create_state_topic(&self) -> futures::future::BoxFuture<'_, sluice_broker::Result<()>> {
        use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
        Box::pin(async move {
            let broker = self
                .broker
                .upgrade()
                .ok_or(sluice_broker::BrokerError::CoordinatorNotAvailable)?;
            let image = broker.replicas.image();
            let controller = image
                .broker(image.controller_id)
                .ok_or(sluice_broker::BrokerError::CoordinatorNotAvailable)?;
            let to = (controller.host.clone(), controller.port);
            let request = FindCoordinatorRequest::default()
                .with_key_type(2)
                .with_coordinator_keys(vec![StrBytes::from_static_str("sluice:create")]);
            let _: FindCoordinatorResponse = call_once(
                &to,
                client_id(broker.config.node_id),
                &broker.config.inter_broker_security,
                ApiKey::FindCoordinator,
                4,
                &request,
            )
            .await
            .map_err(|e| {
                debug!(error = %e, "could not ask the controller for __share_group_state");
                sluice_broker::BrokerError::CoordinatorNotAvailable
            })?;
            Ok(())
        })
    }

    fn produce(
        &self,
        to: sluice_cluster::BrokerInfo,
        topic: String,
        partition: i32,
        batch: Bytes,
    ) -> futures::future::BoxFuture<'_, sluice_broker::Result<()>> {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
        Box::pin(async move {
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch))])]);
            let to = (to.host.clone(), to.port);
            let response: ProduceResponse = self
                .links
                .call(&to, ApiKey::Produce, 8, &request)
                .await
                .map_err(|e| {
                    debug!(error = %e, "could not reach a partition's leader");
                    sluice_broker::BrokerError::LeaderNotAvailable
                })?;
            let code = response
                .responses
                .first()
                .and_then(|t| t.partition_responses.first())
                .map_or(-1, |p| p.error_code);
            if code != 0 {
                return Err(sluice_broker::BrokerError::Storage(format!(
                    "the partition's leader refused the write: error {code}"
                )));
            }
            Ok(())
        })
    }
}

//! The follower's link to a leader on the Kafka wire: `replica::follower_fetcher` in sluice-broker
//! decides what to fetch; this frames its Fetch (v15: topic ids, and the replica's id and
//! broker epoch in ReplicaState) and
//! OffsetForLeaderEpoch requests on one connection per leader (`sluice_client::Conn`) and
//! reads the answers.

use std::io;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_broker::replica::follower_fetcher::{
    FetchAnswer, FetchAsk, FetchOutcome, LeaderLink, LeaderPort,
};
use sluice_client::Conn;
use sluice_cluster::BrokerInfo;

const FETCH_VERSION: i16 = 15;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const EPOCH_VERSION: i16 = 4;
/// How long the leader may hold a fetch with nothing new.
const MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const RESPONSE_MAX_BYTES: usize = 64 << 20;
/// How long one fetch or epoch question may take (a fetch is held 500 ms at most).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens this broker's (`me`) links to its leaders.
pub struct LeaderLinks {
    pub me: i32,
    /// How this broker reaches the leaders' inter-broker listener.
    pub security: std::sync::Arc<sluice_client::ClientSecurity>,
}

impl LeaderPort for LeaderLinks {
    fn connect<'a>(
        &'a self,
        leader: &'a BrokerInfo,
    ) -> BoxFuture<'a, io::Result<Box<dyn LeaderLink>>> {
        async move {
            let client_id = format!("sluice-replica-{}", self.me);
            let conn = Conn::connect_broker(&leader.host, leader.port, client_id, &self.security)
                .await
                .map_err(io::Error::other)?;
            Ok(Box::new(Link { conn, me: self.me }) as Box<dyn LeaderLink>)
        }
        .boxed()
    }
}

struct Link {
    conn: Conn,
    me: i32,
}

impl Link {
    /// One request and its answer, within `EXCHANGE_TIMEOUT`.
    async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> io::Result<Resp> {
        tokio::time::timeout(EXCHANGE_TIMEOUT, self.conn.call_at(api, version, request))
            .await
            .map_err(|_| io::Error::other("the leader did not answer in 30 s"))?
            .map_err(io::Error::other)
    }
}

impl LeaderLink for Link {
    fn fetch<'a>(
        &'a mut self,
        asks: &'a [FetchAsk],
        broker_epoch: i64,
    ) -> BoxFuture<'a, io::Result<Vec<FetchAnswer>>> {
        async move {
            // Partitions grouped by topic, in the order asked.
            let mut topics: Vec<(uuid::Uuid, Vec<FetchPartition>)> = Vec::new();
            for a in asks {
                let partition = FetchPartition::default()
                    .with_partition(a.partition)
                    .with_current_leader_epoch(a.current_leader_epoch)
                    .with_fetch_offset(a.fetch_offset)
                    .with_last_fetched_epoch(a.last_fetched_epoch)
                    .with_log_start_offset(a.log_start_offset)
                    .with_partition_max_bytes(PARTITION_MAX_BYTES);
                match topics.iter_mut().find(|(t, _)| *t == a.topic_id) {
                    Some((_, ps)) => ps.push(partition),
                    None => topics.push((a.topic_id, vec![partition])),
                }
            }
            let request = FetchRequest::default()
                .with_replica_state(
                    ReplicaState::default()
                        .with_replica_id(BrokerId(self.me))
                        .with_replica_epoch(broker_epoch),
                )
                .with_max_wait_ms(MAX_WAIT_MS)
                .with_min_bytes(1)
                .with_max_bytes(RESPONSE_MAX_BYTES as i32)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(topic_id, partitions)| {
                            FetchTopic::default()
                                .with_topic_id(topic_id)
                                .with_partitions(partitions)
                        })
                        .collect(),
                );
            let response: FetchResponse = self.call(ApiKey::Fetch, FETCH_VERSION, &request).await?;
            let mut answers = Vec::with_capacity(asks.len());
            for topic in response.responses {
                // The asked name (shared) rather than a new one per answer.
                let Some(name) = asks
                    .iter()
                    .find(|a| a.topic_id == topic.topic_id)
                    .map(|a| &a.topic)
                else {
                    continue;
                };
                for p in topic.partitions {
                    let outcome = if p.error_code == OFFSET_OUT_OF_RANGE {
                        FetchOutcome::OutOfRange {
                            log_start_offset: p.log_start_offset,
                        }
                    } else if p.error_code != 0 {
                        FetchOutcome::Failed(p.error_code)
                    } else if p.diverging_epoch.epoch >= 0 {
                        FetchOutcome::Diverging {
                            epoch: p.diverging_epoch.epoch,
                            end_offset: p.diverging_epoch.end_offset,
                        }
                    } else {
                        FetchOutcome::Records {
                            records: p.records,
                            high_watermark: p.high_watermark,
                        }
                    };
                    answers.push(FetchAnswer {
                        topic: name.clone(),
                        partition: p.partition_index,
                        outcome,
                    });
                }
            }
            Ok(answers)
        }
        .boxed()
    }

    fn end_of_epoch<'a>(
        &'a mut self,
        topic: &'a str,
        partition: i32,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> BoxFuture<'a, io::Result<(i32, i64)>> {
        async move {
            let request = OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(self.me))
                .with_topics(vec![OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(current_leader_epoch)
                        .with_leader_epoch(leader_epoch)])]);
            let response: OffsetForLeaderEpochResponse = self
                .call(ApiKey::OffsetForLeaderEpoch, EPOCH_VERSION, &request)
                .await?;
            let Some(answer) = response
                .topics
                .first()
                .and_then(|topic| topic.partitions.first())
            else {
                return Err(io::Error::other(
                    "OffsetForLeaderEpoch answered no partition",
                ));
            };
            if answer.error_code != 0 {
                return Err(io::Error::other(format!(
                    "OffsetForLeaderEpoch error {}",
                    answer.error_code
                )));
            }
            Ok((answer.leader_epoch, answer.end_offset))
        }
        .boxed()
    }
}

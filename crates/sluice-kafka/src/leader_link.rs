//! The follower's link to a leader on the Kafka wire: `replica::follower_fetcher` in sluice-broker
//! decides what to fetch; this frames its Fetch (v12, replica id set) and
//! OffsetForLeaderEpoch requests on one connection per leader and reads the answers.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_broker::replica::follower_fetcher::{
    FetchAnswer, FetchAsk, FetchOutcome, LeaderLink, LeaderPort,
};
use sluice_cluster::BrokerInfo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FETCH_VERSION: i16 = 12;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const EPOCH_VERSION: i16 = 4;
/// How long the leader may hold a fetch with nothing new.
const MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const RESPONSE_MAX_BYTES: usize = 64 << 20;

/// Opens this broker's (`me`) links to its leaders.
pub struct LeaderLinks {
    pub me: i32,
}

impl LeaderPort for LeaderLinks {
    fn connect<'a>(
        &'a self,
        leader: &'a BrokerInfo,
    ) -> BoxFuture<'a, io::Result<Box<dyn LeaderLink>>> {
        async move {
            let stream = TcpStream::connect((leader.host.as_str(), leader.port)).await?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(Link {
                stream,
                me: self.me,
            }) as Box<dyn LeaderLink>)
        }
        .boxed()
    }
}

struct Link {
    stream: TcpStream,
    me: i32,
}

impl LeaderLink for Link {
    fn fetch<'a>(
        &'a mut self,
        asks: &'a [FetchAsk],
    ) -> BoxFuture<'a, io::Result<Vec<FetchAnswer>>> {
        async move {
            // Partitions grouped by topic, in the order asked.
            let mut topics: Vec<(&Arc<str>, Vec<FetchPartition>)> = Vec::new();
            for a in asks {
                let partition = FetchPartition::default()
                    .with_partition(a.partition)
                    .with_current_leader_epoch(a.current_leader_epoch)
                    .with_fetch_offset(a.fetch_offset)
                    .with_last_fetched_epoch(a.last_fetched_epoch)
                    .with_log_start_offset(a.log_start_offset)
                    .with_partition_max_bytes(PARTITION_MAX_BYTES);
                match topics.iter_mut().find(|(t, _)| **t == a.topic) {
                    Some((_, ps)) => ps.push(partition),
                    None => topics.push((&a.topic, vec![partition])),
                }
            }
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(self.me))
                .with_max_wait_ms(MAX_WAIT_MS)
                .with_min_bytes(1)
                .with_max_bytes(RESPONSE_MAX_BYTES as i32)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(topic, partitions)| {
                            FetchTopic::default()
                                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                                .with_partitions(partitions)
                        })
                        .collect(),
                );
            let response: FetchResponse = call(
                &mut self.stream,
                self.me,
                ApiKey::Fetch,
                FETCH_VERSION,
                &request,
            )
            .await?;
            let mut answers = Vec::with_capacity(asks.len());
            for topic in response.responses {
                // The asked name (shared) rather than a new one per answer.
                let Some(name) = asks
                    .iter()
                    .find(|a| *a.topic == *topic.topic.0)
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
            let response: OffsetForLeaderEpochResponse = call(
                &mut self.stream,
                self.me,
                ApiKey::OffsetForLeaderEpoch,
                EPOCH_VERSION,
                &request,
            )
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

/// Sends one request and reads its response on `stream`.
async fn call<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    me: i32,
    api: ApiKey,
    version: i16,
    request: &Req,
) -> io::Result<Resp> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_string(format!("sluice-replica-{me}"))));
    let mut frame = BytesMut::new();
    frame.put_u32(0);
    header
        .encode(&mut frame, api.request_header_version(version))
        .and_then(|_| request.encode(&mut frame, version))
        .map_err(io::Error::other)?;
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    let exchange = async {
        stream.write_all(&frame).await?;
        let len = stream.read_u32().await? as usize;
        if len > RESPONSE_MAX_BYTES + 4096 {
            return Err(io::Error::other(format!("a {len}-byte response")));
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        Ok::<_, io::Error>(Bytes::from(body))
    };
    let mut body = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| io::Error::other("the leader did not answer in 30 s"))??;
    ResponseHeader::decode(&mut body, api.response_header_version(version))
        .map_err(io::Error::other)?;
    Resp::decode(&mut body, version).map_err(io::Error::other)
}

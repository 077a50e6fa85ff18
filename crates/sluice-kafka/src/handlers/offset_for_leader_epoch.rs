//! OffsetForLeaderEpoch (23): where a leader epoch ends in a partition's log (KIP-101,
//! KIP-320). Consumers ask it after a leader change to check that their position is still on
//! the log (a truncated tail would make them reset); followers ask it to find where their log
//! diverges from their new leader's.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs); Kafka 4 serves 2-4 too.
pub const VERSIONS: (i16, i16) = (2, 4);

pub fn handle(ctx: &Context, reply: &Reply, req: OffsetForLeaderEpochRequest) -> Response {
    // A replica id says a follower asks; only a broker may (as Kafka's CLUSTER_ACTION).
    let refused = req.replica_id.0 >= 0 && !ctx.from_broker(reply);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let answer = EpochEndOffset::default().with_partition(p.partition);
                    let end = if refused {
                        Err(sluice_broker::BrokerError::ClusterAuthorizationFailed(
                            "only brokers ask as followers".into(),
                        ))
                    } else {
                        ctx.broker.replicas.end_offset_for_epoch(
                            &t.topic,
                            p.partition,
                            p.current_leader_epoch,
                            p.leader_epoch,
                        )
                    };
                    match end {
                        Ok((epoch, end)) => answer.with_leader_epoch(epoch).with_end_offset(end),
                        Err(e) => answer
                            .with_error_code(errors::code(&e))
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    reply.encode(&OffsetForLeaderEpochResponse::default().with_topics(topics))
}

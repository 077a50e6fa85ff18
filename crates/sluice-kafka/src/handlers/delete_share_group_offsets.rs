//! DeleteShareGroupOffsets (92): an administrator forgets an empty share group's start offsets
//! on some topics (`kafka-share-groups.sh --delete-offsets`); the group then starts where
//! `share.auto.offset.reset` says. GROUP_NOT_EMPTY while the group has members.

use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::{DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse};

use crate::errors;
use crate::reply::{Reply, ResponseFuture};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 0);

pub fn handle(ctx: &Context, reply: Reply, req: DeleteShareGroupOffsetsRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    Box::pin(async move {
        let group = req.group_id.to_string();
        let topics: Vec<String> = req
            .topics
            .iter()
            .map(|t| t.topic_name.to_string())
            .collect();
        let outcomes = match broker.shares.delete_share_group_offsets(&group, &topics).await {
            Ok(o) => o,
            Err(e) => {
                return reply.encode(
                    &DeleteShareGroupOffsetsResponse::default()
                        .with_error_code(errors::code(&e))
                        .with_error_message(errors::message(&e)),
                )
            }
        };
        let responses = req
            .topics
            .iter()
            .zip(outcomes)
            .map(|(t, outcome)| {
                let (code, message) = errors::of(&outcome);
                DeleteShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_topic_id(
                        broker
                            .replicas.topic(&t.topic_name)
                            .map(|t| t.id)
                            .unwrap_or_default(),
                    )
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        reply.encode(&DeleteShareGroupOffsetsResponse::default().with_responses(responses))
    })
}

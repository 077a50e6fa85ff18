//! DeleteTopics (20): by name, or (v6) by name or topic id.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use uuid::Uuid;

use super::str;
use crate::errors;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (1, 6);

pub fn handle(ctx: &Context, reply: &Reply, req: DeleteTopicsRequest) -> Response {
    let broker = &ctx.broker;
    let wanted: Vec<(Option<TopicName>, Uuid)> = if reply.version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let results = wanted
        .into_iter()
        .map(|(name, id)| {
            let mut r = DeletableTopicResult::default()
                .with_name(name.clone())
                .with_topic_id(id);
            let name = match name {
                Some(n) => Some(n.to_string()),
                None => broker.replicas.topic_by_id(id).map(|t| t.name.to_string()),
            };
            match name {
                None => r.error_code = ResponseError::UnknownTopicId.code(),
                Some(n) => {
                    let deleted = broker.admin.delete_topic(&n);
                    if r.name.is_none() {
                        r.name = Some(TopicName(str(&n)));
                    }
                    match deleted {
                        Ok(id) => r.topic_id = id,
                        Err(e) => {
                            r.error_code = errors::code(&e);
                            r.error_message = errors::message(&e);
                        }
                    }
                }
            }
            r
        })
        .collect();
    reply.encode(&DeleteTopicsResponse::default().with_responses(results))
}

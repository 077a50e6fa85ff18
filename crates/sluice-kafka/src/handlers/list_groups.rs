//! ListGroups (16), with the state (v4+) and type (v5+) filters.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 5);

pub fn handle(ctx: &Context, reply: &Reply, req: ListGroupsRequest) -> Response {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_string()).collect();
    let groups = ctx
        .broker
        .groups
        .list_groups(&states, &types)
        .into_iter()
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(str(&g.group_id)))
                .with_protocol_type(str(&g.protocol_type))
                .with_group_state(str(g.state))
                .with_group_type(str(g.group_type))
        })
        .collect();
    reply.encode(&ListGroupsResponse::default().with_groups(groups))
}

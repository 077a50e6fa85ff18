//! DescribeGroups (15): state, chosen assignor (protocol_data), members with assignments.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::{str, AUTHORIZED_OPERATIONS_OMITTED};
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 6);

/// Group operations allowed without ACLs: READ 3, DELETE 6, DESCRIBE 8.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub fn handle(ctx: &Context, reply: &Reply, req: DescribeGroupsRequest) -> Response {
    let ops = if req.include_authorized_operations {
        GROUP_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let mut described = DescribedGroup::default().with_group_id(id.clone());
            if reply.version >= 3 {
                described.authorized_operations = ops;
            }
            if let Err(e) = ctx.broker.groups.check_coordinator(&id) {
                described.error_code = crate::errors::code(&e);
                return described;
            }
            match ctx.broker.groups.describe_group(&id) {
                None => {
                    described.group_state = str("Dead");
                    if reply.version >= 6 {
                        described.error_code = ResponseError::GroupIdNotFound.code();
                        described.error_message = Some(str(&format!("group {} not found", id.0)));
                    }
                    described
                }
                Some(g) => {
                    let members = g
                        .members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(str(&m.member_id))
                                .with_group_instance_id(m.group_instance_id.as_deref().map(str))
                                .with_client_id(str(&m.client_id))
                                .with_client_host(str(&m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect();
                    described
                        .with_group_state(str(g.state))
                        .with_protocol_type(str(&g.protocol_type))
                        .with_protocol_data(str(&g.protocol))
                        .with_members(members)
                }
            }
        })
        .collect();
    reply.encode(&DescribeGroupsResponse::default().with_groups(groups))
}

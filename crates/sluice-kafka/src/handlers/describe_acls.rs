//! DescribeAcls (29): Sluice has no authorizer yet, so it answers as Kafka does without one:
//! SECURITY_DISABLED, which admin tools show as "ACLs are not enabled" rather than as an API
//! the broker does not know.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

use super::str;
use crate::reply::{Reply, Response};
use crate::Context;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (1, 3);

pub fn handle(_ctx: &Context, reply: &Reply, _req: DescribeAclsRequest) -> Response {
    reply.encode(
        &DescribeAclsResponse::default()
            .with_error_code(ResponseError::SecurityDisabled.code())
            .with_error_message(Some(str("No Authorizer is configured on the broker"))),
    )
}

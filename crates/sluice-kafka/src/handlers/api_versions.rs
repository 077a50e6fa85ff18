//! ApiVersions (18): the advertised version ranges.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::reply::{Reply, Response};
use crate::versions::SUPPORTED;

/// The versions of this API that are advertised (see versions.rs).
pub const VERSIONS: (i16, i16) = (0, 4);

fn all_versions() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(api, (min, max))| {
            ApiVersion::default()
                .with_api_key(*api as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

pub fn handle(reply: &Reply, _req: ApiVersionsRequest) -> Response {
    reply.encode(&ApiVersionsResponse::default().with_api_keys(all_versions()))
}

/// An ApiVersions request at a version we do not know: a v0-shaped answer with
/// UNSUPPORTED_VERSION and our ranges, so the client can retry at a version we support.
pub fn unsupported(reply: &Reply) -> Response {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(all_versions());
    let v0 = Reply {
        version: 0,
        ..reply.clone()
    };
    v0.encode_at(&body, 0)
}

//! ApiVersions (18): the advertised version ranges, and (v3+) the features: the
//! transaction version (`transaction.version`: 2 offers KIP-890's transactions v2 to the
//! clients that speak it).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

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

const TRANSACTION_VERSION: &str = "transaction.version";

pub fn handle(ctx: &crate::Context, reply: &Reply, _req: ApiVersionsRequest) -> Response {
    let level = ctx.broker.config.transaction_version();
    reply.encode(
        &ApiVersionsResponse::default()
            .with_api_keys(all_versions())
            .with_supported_features(vec![SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(TRANSACTION_VERSION))
                .with_min_version(0)
                .with_max_version(2)])
            .with_finalized_features_epoch(0)
            .with_finalized_features(vec![FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(TRANSACTION_VERSION))
                .with_min_version_level(level)
                .with_max_version_level(level)]),
    )
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

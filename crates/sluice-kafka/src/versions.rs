//! The API versions Sluice advertises. Each range is what the handlers implement, except
//! Produce v0-2, advertised because librdkafka enables compression and record batch v2 by
//! overlap with old versions (KAFKA-18659); requests at those versions close the connection.

use kafka_protocol::messages::ApiKey;

/// (API, (advertised min, advertised max)), and the APIs served only between brokers: both
/// from the API table (handlers/mod.rs), where each handler declares its own range
/// (`VERSIONS`), so a handler and what is advertised for it cannot drift apart.
pub use crate::handlers::{ADVERTISED as SUPPORTED, BETWEEN_BROKERS};

/// Lowest Produce version actually implemented (magic 2 record batches).
pub const PRODUCE_MIN_IMPLEMENTED: i16 = 3;

pub fn advertised(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _)| *k == api)
        .map(|(_, range)| *range)
}

/// Whether `api` is one only brokers send each other.
pub fn between_brokers(api: ApiKey) -> bool {
    BETWEEN_BROKERS.iter().any(|(k, _)| *k == api)
}

/// Whether a request at `version` is served (not merely advertised).
pub fn implemented(api: ApiKey, version: i16) -> bool {
    let between_brokers = BETWEEN_BROKERS
        .iter()
        .find(|(k, _)| *k == api)
        .map(|(_, range)| *range);
    match advertised(api).or(between_brokers) {
        Some((lo, hi)) => {
            let lo = if api == ApiKey::Produce {
                PRODUCE_MIN_IMPLEMENTED
            } else {
                lo
            };
            (lo..=hi).contains(&version)
        }
        None => false,
    }
}

//! `sluice bench connect`: what a client pays to get a working connection, one after another:
//! TCP, the TLS handshake, ApiVersions and the SASL login, as the security settings ask.

use std::time::Instant;

use sluice_client::Conn;

use crate::args::BenchArgs;
use crate::stats::Stats;

/// Connections opened when --records is not given.
const DEFAULT_CONNECTIONS: u64 = 200;

/// Opens and drops the connections, counting each setup's time as its latency.
pub async fn run(args: &BenchArgs, stats: &Stats) -> anyhow::Result<()> {
    for _ in 0..args.records.unwrap_or(DEFAULT_CONNECTIONS) {
        let began = Instant::now();
        let conn = Conn::connect_with(&args.bootstrap, &args.client_security).await?;
        stats.record_latencies(std::iter::once((began.elapsed(), 1)));
        stats.add(1, 0);
        drop(conn);
    }
    Ok(())
}

//! sluice-client: Sluice's one Kafka client, shared by the broker (its requests to other
//! brokers) and the tools (`sluice bench`, the CLI, the REST API): request framing and
//! response decoding through the `kafka-protocol` crate, a pipelined connection (`Conn`),
//! and connections kept per broker (`BrokerLinks`).

mod conn;
mod links;
pub mod scram;
pub mod security;

pub use conn::{decode, Conn, TOOL_VERSIONS};
pub use links::{call_once, Address, BrokerLinks};
pub use security::ClientSecurity;

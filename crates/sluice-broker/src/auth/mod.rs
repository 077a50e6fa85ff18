//! Who a connection is: SASL exchanges (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) checked against
//! the SCRAM credentials kept in the cluster metadata (`MetadataImage::scram_users`), and
//! the credentials an administrator sets (derived from a salted password, never stored as
//! one). The wire framing (SaslHandshake, SaslAuthenticate) is sluice-kafka's.

mod plain;
pub mod scram;

use std::collections::BTreeMap;

use sluice_cluster::ScramUser;

pub use scram::{credential_from_salted_password, Hash};

/// The mechanisms Sluice serves, as Kafka names them.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(Hash),
}

impl Mechanism {
    pub fn parse(name: &str) -> Option<Mechanism> {
        Some(match name {
            "PLAIN" => Mechanism::Plain,
            "SCRAM-SHA-256" => Mechanism::Scram(Hash::Sha256),
            "SCRAM-SHA-512" => Mechanism::Scram(Hash::Sha512),
            _ => return None,
        })
    }
}

/// What a step of an exchange gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this to the client and wait for its next message.
    Challenge(Vec<u8>),
    /// Authenticated as this user; send the last message (may be empty).
    Done { user: String, last: Vec<u8> },
    /// Authentication failed; the reason is for the log (never a secret), the client gets
    /// Kafka's generic message.
    Failed(String),
}

/// One SASL exchange in progress on a connection.
pub enum Exchange {
    Plain,
    Scram(Box<scram::ServerExchange>),
}

impl Exchange {
    pub fn new(mechanism: Mechanism) -> Exchange {
        match mechanism {
            Mechanism::Plain => Exchange::Plain,
            Mechanism::Scram(hash) => Exchange::Scram(Box::new(scram::ServerExchange::new(hash))),
        }
    }

    /// The client's next message, answered from the credentials in `users`.
    pub fn step(&mut self, users: &BTreeMap<String, ScramUser>, message: &[u8]) -> Step {
        match self {
            Exchange::Plain => plain::authenticate(users, message),
            Exchange::Scram(s) => s.step(users, message),
        }
    }
}

/// Kafka's principal of an authenticated user.
pub fn principal(user: &str) -> String {
    format!("User:{user}")
}

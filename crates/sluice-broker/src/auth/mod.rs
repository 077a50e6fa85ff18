//! Who a connection is: SASL exchanges (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) checked against
//! the SCRAM credentials kept in the cluster metadata (`MetadataImage::scram_users`), and
//! the credentials an administrator sets (derived from a salted password, never stored as
//! one). The wire framing (SaslHandshake, SaslAuthenticate) is sluice-kafka's.

pub mod oauthbearer;
mod plain;

pub use plain::check_password;
pub mod scram;

use std::collections::BTreeMap;

use sluice_cluster::ScramUser;

pub use scram::{credential_from_salted_password, Hash};

/// The mechanisms Sluice serves, as Kafka names them.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(Hash),
    OAuthBearer,
}

impl Mechanism {
    pub fn parse(name: &str) -> Option<Mechanism> {
        Some(match name {
            "PLAIN" => Mechanism::Plain,
            "SCRAM-SHA-256" => Mechanism::Scram(Hash::Sha256),
            "SCRAM-SHA-512" => Mechanism::Scram(Hash::Sha512),
            "OAUTHBEARER" => Mechanism::OAuthBearer,
            _ => return None,
        })
    }
}

/// What a step of an exchange gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this to the client and wait for its next message.
    Challenge(Vec<u8>),
    /// Authenticated as this user; send the last message (may be empty). `valid_for`: how
    /// long the credential stays valid (a token's remaining life), if it says.
    Done {
        user: String,
        last: Vec<u8>,
        valid_for: Option<std::time::Duration>,
    },
    /// Authentication failed; the reason is for the log (never a secret), the client gets
    /// Kafka's generic message.
    Failed(String),
}

/// One SASL exchange in progress on a connection.
pub enum Exchange {
    Plain,
    Scram(Box<scram::ServerExchange>),
    OAuthBearer,
}

/// What an exchange checks a login against.
pub struct Credentials<'a> {
    /// SCRAM credentials (PLAIN and SCRAM logins).
    pub users: &'a BTreeMap<String, ScramUser>,
    /// Token validation (OAUTHBEARER), when configured.
    pub oauth: Option<&'a oauthbearer::OAuthValidator>,
}

impl Exchange {
    pub fn new(mechanism: Mechanism) -> Exchange {
        match mechanism {
            Mechanism::Plain => Exchange::Plain,
            Mechanism::Scram(hash) => Exchange::Scram(Box::new(scram::ServerExchange::new(hash))),
            Mechanism::OAuthBearer => Exchange::OAuthBearer,
        }
    }

    /// The client's next message, answered from `credentials`.
    pub fn step(&mut self, credentials: &Credentials<'_>, message: &[u8]) -> Step {
        match self {
            Exchange::Plain => plain::authenticate(credentials.users, message),
            Exchange::Scram(s) => s.step(credentials.users, message),
            Exchange::OAuthBearer => match credentials.oauth {
                Some(validator) => validator.authenticate(message),
                None => Step::Failed("OAUTHBEARER: no JWKS is configured".into()),
            },
        }
    }
}

/// Kafka's principal of an authenticated user.
pub fn principal(user: &str) -> String {
    format!("User:{user}")
}

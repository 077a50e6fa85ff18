//! SCRAM users as AlterUserScramCredentials and DescribeUserScramCredentials see them: a
//! credential per user and mechanism, set from a salt and a salted password the client
//! computed (the password itself never reaches the broker), kept in the cluster metadata.

use std::collections::{BTreeMap, BTreeSet};

use sluice_cluster::{MetadataChange, ScramUser};

use crate::admin::TopicAdmin;
use crate::auth::{credential_from_salted_password, Hash};
use crate::error::{BrokerError, Result};

/// Kafka's bounds on SCRAM iterations.
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

/// One change to a user's credentials.
#[derive(Debug, Clone)]
pub enum ScramOp {
    Upsert {
        user: String,
        hash: Option<Hash>,
        iterations: i32,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
    },
    Delete {
        user: String,
        hash: Option<Hash>,
    },
}

impl ScramOp {
    fn user(&self) -> &str {
        match self {
            ScramOp::Upsert { user, .. } | ScramOp::Delete { user, .. } => user,
        }
    }

    fn hash(&self) -> Option<Hash> {
        match self {
            ScramOp::Upsert { hash, .. } | ScramOp::Delete { hash, .. } => *hash,
        }
    }
}

/// The hash of Kafka's mechanism number (1: SCRAM-SHA-256, 2: SCRAM-SHA-512).
pub fn hash_of(mechanism: i8) -> Option<Hash> {
    match mechanism {
        1 => Some(Hash::Sha256),
        2 => Some(Hash::Sha512),
        _ => None,
    }
}

/// Kafka's mechanism number of a mechanism name.
pub fn mechanism_number(name: &str) -> i8 {
    match name {
        "SCRAM-SHA-256" => 1,
        "SCRAM-SHA-512" => 2,
        _ => 0,
    }
}

impl TopicAdmin {
    /// Applies the changes, each user's all or none: per user, Ok or why not. Kafka's
    /// refusals: an unknown mechanism, iterations outside 4096..=16384 or an empty name or
    /// salt (UNACCEPTABLE_CREDENTIAL), the same user and mechanism twice (DUPLICATE_RESOURCE),
    /// deleting a credential that does not exist (RESOURCE_NOT_FOUND).
    pub fn alter_scram_credentials(&self, ops: Vec<ScramOp>) -> Vec<(String, Result<()>)> {
        let _admin = self.lock.lock();
        let image = self.coordinator.image();
        let mut by_user: BTreeMap<String, Vec<ScramOp>> = BTreeMap::new();
        for op in ops {
            by_user.entry(op.user().to_string()).or_default().push(op);
        }
        let mut results = Vec::new();
        for (user, ops) in by_user {
            let result = next_credentials(image.scram_users.get(&user), &user, &ops).and_then(
                |credentials| {
                    self.commit_change(MetadataChange::SetScramUser(user.clone(), credentials))
                },
            );
            results.push((user, result));
        }
        results
    }
}

/// The user's credentials after `ops`, or why they are refused.
fn next_credentials(current: Option<&ScramUser>, user: &str, ops: &[ScramOp]) -> Result<ScramUser> {
    if user.is_empty() {
        return Err(BrokerError::UnacceptableCredential(
            "an empty user name".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut next = current.cloned().unwrap_or_default();
    for op in ops {
        let hash = op.hash().ok_or_else(|| {
            BrokerError::UnsupportedSaslMechanism(
                "SCRAM-SHA-256 and SCRAM-SHA-512 are served".into(),
            )
        })?;
        if !seen.insert(hash.mechanism()) {
            return Err(BrokerError::DuplicateResource(format!(
                "{} of user {user} appears twice",
                hash.mechanism()
            )));
        }
        match op {
            ScramOp::Upsert {
                iterations,
                salt,
                salted_password,
                ..
            } => {
                if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(iterations) {
                    return Err(BrokerError::UnacceptableCredential(format!(
                        "{iterations} iterations: between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
                    )));
                }
                if salt.is_empty()
                    || salt.len() > 128
                    || salted_password.is_empty()
                    || salted_password.len() > 128
                {
                    return Err(BrokerError::UnacceptableCredential(
                        "an empty or oversized salt or salted password".into(),
                    ));
                }
                next.insert(
                    hash.mechanism().to_string(),
                    credential_from_salted_password(
                        hash,
                        salt,
                        salted_password,
                        *iterations as u32,
                    ),
                );
            }
            ScramOp::Delete { .. } => {
                if next.remove(hash.mechanism()).is_none() {
                    return Err(BrokerError::ResourceNotFound(format!(
                        "user {user} has no {} credential",
                        hash.mechanism()
                    )));
                }
            }
        }
    }
    Ok(next)
}

//! SASL PLAIN (RFC 4616): `authzid NUL authcid NUL password`, checked against the user's
//! SCRAM credentials (the password salted and hashed as at SCRAM login), so one store serves
//! both mechanisms and no password is kept.

use std::collections::BTreeMap;

use sluice_cluster::ScramUser;

use super::scram::{self, Hash};
use super::Step;

pub fn authenticate(users: &BTreeMap<String, ScramUser>, message: &[u8]) -> Step {
    let mut parts = message.splitn(3, |b| *b == 0);
    let (Some(authzid), Some(user), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Step::Failed("PLAIN: the message is not authzid NUL user NUL password".into());
    };
    let (Ok(authzid), Ok(user)) = (std::str::from_utf8(authzid), std::str::from_utf8(user)) else {
        return Step::Failed("PLAIN: the user name is not UTF-8".into());
    };
    if !authzid.is_empty() && authzid != user {
        return Step::Failed(format!("PLAIN: user {user:?} asked to act as {authzid:?}"));
    }
    match check_password(users, user, password) {
        Ok(()) => Step::Done {
            user: user.to_string(),
            last: Vec::new(),
            valid_for: None,
        },
        Err(why) => Step::Failed(format!("PLAIN: {why}")),
    }
}

/// Whether `password` is `user`'s, checked against the credential of the strongest SCRAM
/// mechanism the user has (PLAIN logins, HTTP Basic authentication).
pub fn check_password(
    users: &BTreeMap<String, ScramUser>,
    user: &str,
    password: &[u8],
) -> Result<(), String> {
    let Some(credentials) = users.get(user) else {
        return Err(format!("unknown user {user:?}"));
    };
    // The strongest mechanism the user has credentials for.
    let found = [
        ("SCRAM-SHA-512", Hash::Sha512),
        ("SCRAM-SHA-256", Hash::Sha256),
    ]
    .into_iter()
    .find_map(|(name, hash)| credentials.get(name).map(|c| (hash, c)));
    let Some((hash, credential)) = found else {
        return Err(format!("user {user:?} has no credentials"));
    };
    if scram::password_matches(hash, credential, password) {
        Ok(())
    } else {
        Err(format!("wrong password for user {user:?}"))
    }
}

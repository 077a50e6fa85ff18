//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) on the server: the message flow is
//! ours, the primitives (HMAC, SHA-2, PBKDF2: `sluice_client::scram`, shared with the client's
//! side; constant-time comparison) are RustCrypto's.
//! Channel binding is not offered (Kafka offers none); Kafka's `tokenauth` extension is not
//! served (there are no delegation tokens).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sluice_client::scram::attributes;
pub use sluice_client::scram::Hash;
use sluice_cluster::{ScramCredential, ScramUser};
use subtle::ConstantTimeEq;

use super::Step;

/// The credential kept for a salted password (what AlterUserScramCredentials sends):
/// StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword,
/// "Server Key").
pub fn credential_from_salted_password(
    hash: Hash,
    salt: &[u8],
    salted_password: &[u8],
    iterations: u32,
) -> ScramCredential {
    let client_key = hash.hmac(salted_password, b"Client Key");
    ScramCredential {
        salt: B64.encode(salt),
        stored_key: B64.encode(hash.h(&client_key)),
        server_key: B64.encode(hash.hmac(salted_password, b"Server Key")),
        iterations,
    }
}

/// Whether `password` is the one `credential` was made from (PLAIN login).
pub fn password_matches(hash: Hash, credential: &ScramCredential, password: &[u8]) -> bool {
    let (Ok(salt), Ok(stored)) = (
        B64.decode(&credential.salt),
        B64.decode(&credential.stored_key),
    ) else {
        return false;
    };
    let salted = hash.salted_password(password, &salt, credential.iterations);
    let client_key = hash.hmac(&salted, b"Client Key");
    bool::from(hash.h(&client_key).ct_eq(&stored))
}

/// A server's side of one SCRAM exchange.
pub struct ServerExchange {
    hash: Hash,
    state: State,
}

enum State {
    /// Waiting for client-first-message.
    First,
    /// Sent server-first-message; waiting for client-final-message.
    Final {
        user: String,
        credential: ScramCredential,
        gs2_header: String,
        nonce: String,
        client_first_bare: String,
        server_first: String,
    },
    Ended,
}

impl ServerExchange {
    pub fn new(hash: Hash) -> ServerExchange {
        ServerExchange {
            hash,
            state: State::First,
        }
    }

    pub fn step(&mut self, users: &BTreeMap<String, ScramUser>, message: &[u8]) -> Step {
        let state = std::mem::replace(&mut self.state, State::Ended);
        let Ok(message) = std::str::from_utf8(message) else {
            return Step::Failed("SCRAM: the message is not UTF-8".into());
        };
        match state {
            State::First => self.first(users, message),
            State::Final {
                user,
                credential,
                gs2_header,
                nonce,
                client_first_bare,
                server_first,
            } => self.last(
                &user,
                &credential,
                &gs2_header,
                &nonce,
                &client_first_bare,
                &server_first,
                message,
            ),
            State::Ended => Step::Failed("SCRAM: the exchange is over".into()),
        }
    }

    /// client-first-message: `gs2-header client-first-bare` with `n=user,r=nonce`.
    fn first(&mut self, users: &BTreeMap<String, ScramUser>, message: &str) -> Step {
        let mechanism = self.hash.mechanism();
        let (gs2_header, bare) = match split_gs2(message) {
            Ok(parts) => parts,
            Err(why) => return Step::Failed(format!("{mechanism}: {why}")),
        };
        let attrs = attributes(bare);
        let (Some(name), Some(client_nonce)) = (attrs.get(&'n'), attrs.get(&'r')) else {
            return Step::Failed(format!(
                "{mechanism}: client-first-message without n= and r="
            ));
        };
        let user = unescape_name(name);
        if let Some(authzid) = gs2_header
            .strip_prefix("n,a=")
            .or(gs2_header.strip_prefix("y,a="))
        {
            if unescape_name(authzid.trim_end_matches(',')) != user {
                return Step::Failed(format!(
                    "{mechanism}: user {user:?} asked to act as another"
                ));
            }
        }
        let Some(credential) = users.get(&user).and_then(|u| u.get(mechanism)) else {
            return Step::Failed(format!("{mechanism}: unknown user {user:?}"));
        };
        let mut random = [0u8; 24];
        if getrandom::getrandom(&mut random).is_err() {
            return Step::Failed("no randomness for a nonce".into());
        }
        let nonce = format!(
            "{client_nonce}{}",
            B64.encode(random).replace(['+', '/', '='], "x")
        );
        let server_first = format!(
            "r={nonce},s={},i={}",
            credential.salt, credential.iterations
        );
        let challenge = server_first.clone().into_bytes();
        self.state = State::Final {
            user,
            credential: credential.clone(),
            gs2_header: gs2_header.to_string(),
            nonce,
            client_first_bare: bare.to_string(),
            server_first,
        };
        Step::Challenge(challenge)
    }

    /// client-final-message: `c=base64(gs2-header),r=nonce,p=proof`.
    #[allow(clippy::too_many_arguments)]
    fn last(
        &self,
        user: &str,
        credential: &ScramCredential,
        gs2_header: &str,
        nonce: &str,
        client_first_bare: &str,
        server_first: &str,
        message: &str,
    ) -> Step {
        let mechanism = self.hash.mechanism();
        let failed = |why: &str| Step::Failed(format!("{mechanism}: user {user:?}: {why}"));
        let Some((without_proof, proof)) = message.rsplit_once(",p=") else {
            return failed("client-final-message without a proof");
        };
        let attrs = attributes(without_proof);
        if attrs.get(&'c').map(String::as_str) != Some(B64.encode(gs2_header).as_str()) {
            return failed("channel binding does not match the first message");
        }
        // Ends with, as Kafka checks it: librdkafka before 2.1 sends its own nonce again in
        // front of the server's (which starts with it); the proof covers what it sent.
        if !attrs.get(&'r').is_some_and(|r| r.ends_with(nonce)) {
            return failed("the nonce is not the exchange's");
        }
        let (Ok(proof), Ok(stored_key), Ok(server_key)) = (
            B64.decode(proof),
            B64.decode(&credential.stored_key),
            B64.decode(&credential.server_key),
        ) else {
            return failed("undecodable proof or credential");
        };
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = self.hash.hmac(&stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return failed("a proof of the wrong length");
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !bool::from(self.hash.h(&client_key).ct_eq(&stored_key)) {
            return failed("wrong password");
        }
        let server_signature = self.hash.hmac(&server_key, auth_message.as_bytes());
        Step::Done {
            valid_for: None,
            user: user.to_string(),
            last: format!("v={}", B64.encode(server_signature)).into_bytes(),
        }
    }
}

/// Splits `gs2-header` (`n,,` / `y,,`, optionally with `a=authzid`) from the bare message;
/// channel binding (`p=`) is refused.
fn split_gs2(message: &str) -> Result<(&str, &str), String> {
    let mut commas = message.match_indices(',').map(|(i, _)| i);
    let (Some(_), Some(second)) = (commas.next(), commas.next()) else {
        return Err("no GS2 header".into());
    };
    let (header, bare) = message.split_at(second + 1);
    if !(header.starts_with("n,") || header.starts_with("y,")) {
        return Err("channel binding is not supported".into());
    }
    Ok((header, bare))
}

/// A saslname with `=2C` and `=3D` decoded.
fn unescape_name(name: &str) -> String {
    name.replace("=2C", ",").replace("=3D", "=")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's proof (base64) for `auth_message`, from its salted password.
    fn client_proof(hash: Hash, salted: &[u8], auth_message: &str) -> String {
        let client_key = hash.hmac(salted, b"Client Key");
        let signature = hash.hmac(&hash.h(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        B64.encode(proof)
    }

    /// RFC 7677's SCRAM-SHA-256 example: user "user", password "pencil".
    #[test]
    fn the_rfc_7677_exchange_succeeds_and_the_server_signature_matches() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = Hash::Sha256.salted_password(b"pencil", &salt, 4096);
        let credential = credential_from_salted_password(Hash::Sha256, &salt, &salted, 4096);
        let users: BTreeMap<String, ScramUser> = [(
            "user".to_string(),
            [("SCRAM-SHA-256".to_string(), credential)].into(),
        )]
        .into();
        let mut x = ServerExchange::new(Hash::Sha256);
        let Step::Challenge(first) = x.step(&users, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO") else {
            panic!("no challenge")
        };
        let first = String::from_utf8(first).unwrap();
        assert!(first.starts_with("r=rOprNGfwEbeRWgbNEkqO"));
        assert!(first.ends_with(",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
        // The client's side, computed from the password, for the nonce this server chose.
        let nonce = attributes(&first)[&'r'].clone();
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("n=user,r=rOprNGfwEbeRWgbNEkqO,{first},{without_proof}");
        let last = format!(
            "{without_proof},p={}",
            client_proof(Hash::Sha256, &salted, &auth)
        );
        let Step::Done { user, last, .. } = x.step(&users, last.as_bytes()) else {
            panic!("not authenticated")
        };
        assert_eq!(user, "user");
        let server_key = Hash::Sha256.hmac(&salted, b"Server Key");
        let expected = Hash::Sha256.hmac(&server_key, auth.as_bytes());
        assert_eq!(last, format!("v={}", B64.encode(expected)).into_bytes());
    }

    #[test]
    fn a_wrong_proof_an_unknown_user_and_channel_binding_fail() {
        let salt = b"salt-salt-salt".to_vec();
        let salted = Hash::Sha512.salted_password(b"right", &salt, 4096);
        let credential = credential_from_salted_password(Hash::Sha512, &salt, &salted, 4096);
        let users: BTreeMap<String, ScramUser> = [(
            "alice".to_string(),
            [("SCRAM-SHA-512".to_string(), credential.clone())].into(),
        )]
        .into();
        let mut x = ServerExchange::new(Hash::Sha512);
        assert!(matches!(x.step(&users, b"n,,n=bob,r=abc"), Step::Failed(_)));
        let mut x = ServerExchange::new(Hash::Sha512);
        assert!(matches!(
            x.step(&users, b"p=tls-unique,,n=alice,r=abc"),
            Step::Failed(_)
        ));
        let mut x = ServerExchange::new(Hash::Sha256);
        assert!(
            matches!(x.step(&users, b"n,,n=alice,r=abc"), Step::Failed(_)),
            "no SCRAM-SHA-256 credential"
        );
        let mut x = ServerExchange::new(Hash::Sha512);
        let Step::Challenge(first) = x.step(&users, b"n,,n=alice,r=abc") else {
            panic!()
        };
        let nonce = attributes(std::str::from_utf8(&first).unwrap())[&'r'].clone();
        let forged = format!("c=biws,r={nonce},p={}", B64.encode([7u8; 64]));
        assert!(matches!(x.step(&users, forged.as_bytes()), Step::Failed(_)));
        assert!(password_matches(Hash::Sha512, &credential, b"right"));
        assert!(!password_matches(Hash::Sha512, &credential, b"wrong"));
    }
    /// librdkafka before 2.1 repeats its nonce in front of the server's in
    /// client-final-message; Kafka accepts that (the nonce must end with the server's), and
    /// so does Sluice. A nonce that does not end with the server's is refused.
    #[test]
    fn a_client_final_nonce_that_ends_with_the_servers_is_accepted() {
        let salt = b"salt-of-the-earth".to_vec();
        let salted = Hash::Sha256.salted_password(b"pw", &salt, 4096);
        let credential = credential_from_salted_password(Hash::Sha256, &salt, &salted, 4096);
        let users: BTreeMap<String, ScramUser> = [(
            "kcat".to_string(),
            [("SCRAM-SHA-256".to_string(), credential)].into(),
        )]
        .into();
        let last_with = |repeat: &str, extra: &str| {
            let mut x = ServerExchange::new(Hash::Sha256);
            let Step::Challenge(first) = x.step(&users, b"n,,n=kcat,r=cnonce") else {
                panic!("no challenge")
            };
            let first = String::from_utf8(first).unwrap();
            let nonce = attributes(&first)[&'r'].clone();
            let without_proof = format!("c=biws,r={repeat}{nonce}{extra}");
            let auth = format!("n=kcat,r=cnonce,{first},{without_proof}");
            x.step(
                &users,
                format!(
                    "{without_proof},p={}",
                    client_proof(Hash::Sha256, &salted, &auth)
                )
                .as_bytes(),
            )
        };
        assert!(matches!(last_with("", ""), Step::Done { .. }));
        assert!(matches!(last_with("cnonce", ""), Step::Done { .. }));
        assert!(matches!(last_with("", "more"), Step::Failed(_)));
    }
}

//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): the primitives both sides use (HMAC,
//! SHA-2 and PBKDF2 from RustCrypto) and the client's side of the exchange. The server's side
//! is the broker's (`sluice_broker::auth::scram`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    pub fn mechanism(self) -> &'static str {
        match self {
            Hash::Sha256 => "SCRAM-SHA-256",
            Hash::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Hash::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    pub fn h(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, iterations): PBKDF2 with this hash's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Hash::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// Largest iteration count a client computes for a server: a server asking for more is
/// refused rather than left to burn the client's CPU (Kafka's own limit).
const MAX_ITERATIONS: u32 = 16384;

/// `k=v,k=v` attributes (the first character is the key).
pub fn attributes(text: &str) -> std::collections::BTreeMap<char, String> {
    text.split(',')
        .filter_map(|a| {
            let mut chars = a.chars();
            let key = chars.next()?;
            let rest = chars.as_str().strip_prefix('=')?;
            Some((key, rest.to_string()))
        })
        .collect()
}

/// A client's side of one SCRAM exchange: `first()`, then `last(server_first)`, then
/// `verify(server_final)`.
pub struct ClientExchange {
    hash: Hash,
    password: String,
    client_first_bare: String,
    nonce: String,
    /// The ServerSignature expected in server-final-message, once client-final is sent.
    expected_server_signature: Option<Vec<u8>>,
}

impl ClientExchange {
    pub fn new(hash: Hash, user: &str, password: &str) -> anyhow::Result<ClientExchange> {
        let mut random = [0u8; 24];
        getrandom::getrandom(&mut random)
            .map_err(|e| anyhow::anyhow!("no randomness for a SCRAM nonce: {e}"))?;
        let nonce = B64.encode(random).replace(['+', '/', '='], "x");
        let name = user.replace('=', "=3D").replace(',', "=2C");
        Ok(ClientExchange {
            hash,
            password: password.to_string(),
            client_first_bare: format!("n={name},r={nonce}"),
            nonce,
            expected_server_signature: None,
        })
    }

    /// client-first-message.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// client-final-message, answering server-first-message.
    pub fn last(&mut self, server_first: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mechanism = self.hash.mechanism();
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| anyhow::anyhow!("{mechanism}: server-first-message is not UTF-8"))?;
        let attrs = attributes(server_first);
        let (Some(nonce), Some(salt), Some(iterations)) =
            (attrs.get(&'r'), attrs.get(&'s'), attrs.get(&'i'))
        else {
            anyhow::bail!("{mechanism}: server-first-message without r=, s= and i=");
        };
        anyhow::ensure!(
            nonce.starts_with(&self.nonce) && nonce.len() > self.nonce.len(),
            "{mechanism}: the server's nonce does not extend ours"
        );
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| anyhow::anyhow!("{mechanism}: iteration count {iterations:?}"))?;
        anyhow::ensure!(
            (1..=MAX_ITERATIONS).contains(&iterations),
            "{mechanism}: the server asks for {iterations} iterations (at most {MAX_ITERATIONS})"
        );
        let salt = B64
            .decode(salt)
            .map_err(|_| anyhow::anyhow!("{mechanism}: the salt is not base64"))?;
        let salted = self
            .hash
            .salted_password(self.password.as_bytes(), &salt, iterations);
        // c=biws is base64("n,,"): no channel binding, no authorization id.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = self.hash.hmac(&salted, b"Client Key");
        let signature = self
            .hash
            .hmac(&self.hash.h(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = self.hash.hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(self.hash.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final-message: the server proves it knows the credential too.
    pub fn verify(&self, server_final: &[u8]) -> anyhow::Result<()> {
        let mechanism = self.hash.mechanism();
        let text = String::from_utf8_lossy(server_final);
        let attrs = attributes(&text);
        if let Some(e) = attrs.get(&'e') {
            anyhow::bail!("{mechanism}: the server refused: {e}");
        }
        let given = attrs.get(&'v').and_then(|v| B64.decode(v).ok());
        match (&self.expected_server_signature, given) {
            (Some(expected), Some(given)) if bool::from(expected.ct_eq(&given)) => Ok(()),
            _ => anyhow::bail!("{mechanism}: the server's signature is wrong"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example (user "user", password "pencil"), client side.
    #[test]
    fn the_rfc_7677_client_proof_and_server_signature() {
        let mut x = ClientExchange::new(Hash::Sha256, "user", "pencil").unwrap();
        // The RFC's client nonce, in place of a random one.
        x.nonce = "rOprNGfwEbeRWgbNEkqO".into();
        x.client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
        assert_eq!(x.first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let last = x.last(server_first).unwrap();
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        x.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(x.verify(b"v=AAAA").is_err());
        assert!(x.verify(b"e=invalid-proof").is_err());
    }

    #[test]
    fn a_server_nonce_that_does_not_extend_ours_or_huge_iterations_are_refused() {
        let mut x = ClientExchange::new(Hash::Sha512, "alice", "secret").unwrap();
        assert!(x.last(b"r=other,s=c2FsdA==,i=4096").is_err());
        let nonce = x.nonce.clone();
        let huge = format!("r={nonce}x,s=c2FsdA==,i=100000000");
        assert!(x.last(huge.as_bytes()).is_err());
    }
}

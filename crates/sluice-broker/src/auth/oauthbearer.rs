//! SASL OAUTHBEARER (RFC 7628) as Kafka's KIP-768 broker validates it: the client's JWT is
//! checked against the keys of a JWKS (`sasl.oauthbearer.jwks.endpoint.url`, a file here),
//! its expiry and not-before (with `sasl.oauthbearer.clock.skew.seconds`), its audience
//! (`sasl.oauthbearer.expected.audience`) and issuer (`sasl.oauthbearer.expected.issuer`);
//! the principal is `User:` and the claim `sasl.oauthbearer.sub.claim.name` (`sub`).
//! Signature checks are jsonwebtoken's (ring); the algorithm must fit the key's type, so a
//! token can never be checked as an HMAC with a public key as the secret.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;

use super::Step;
use crate::BrokerConfig;

/// What a token is checked against.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub jwks: PathBuf,
    pub audience: Vec<String>,
    pub issuer: Option<String>,
    pub sub_claim: String,
    pub clock_skew_seconds: u64,
}

impl OAuthSettings {
    /// From the broker's settings; None when no JWKS is configured.
    pub fn from_config(config: &BrokerConfig) -> Result<Option<OAuthSettings>, String> {
        let url = config.string_setting("sasl.oauthbearer.jwks.endpoint.url");
        if url.is_empty() {
            return Ok(None);
        }
        let jwks = match url.strip_prefix("file://") {
            Some(path) => PathBuf::from(path),
            None if url.starts_with('/') => PathBuf::from(url),
            None => {
                return Err(format!(
                    "sasl.oauthbearer.jwks.endpoint.url {url:?}: a file (file:///path) is read; HTTP endpoints are not yet"
                ))
            }
        };
        let list = |name: &str| -> Vec<String> {
            config
                .string_setting(name)
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect()
        };
        let issuer = config.string_setting("sasl.oauthbearer.expected.issuer");
        Ok(Some(OAuthSettings {
            jwks,
            audience: list("sasl.oauthbearer.expected.audience"),
            issuer: (!issuer.is_empty()).then(|| issuer.to_string()),
            sub_claim: config
                .string_setting("sasl.oauthbearer.sub.claim.name")
                .to_string(),
            clock_skew_seconds: config
                .int_setting("sasl.oauthbearer.clock.skew.seconds", 30)
                .max(0) as u64,
        }))
    }
}

/// Checks tokens; the JWKS file is read again when it changes (keys rotate without a
/// restart).
pub struct OAuthValidator {
    settings: OAuthSettings,
    keys: Mutex<(Option<SystemTime>, JwkSet)>,
}

impl OAuthValidator {
    /// Reads the JWKS once; an error names the file and what is wrong with it.
    pub fn new(settings: OAuthSettings) -> Result<OAuthValidator, String> {
        let keys = read_jwks(&settings.jwks)?;
        let stamp = modified(&settings.jwks);
        Ok(OAuthValidator {
            settings,
            keys: Mutex::new((stamp, keys)),
        })
    }

    /// The client's initial response (`n,,\x01auth=Bearer TOKEN\x01\x01`), checked.
    pub fn authenticate(&self, message: &[u8]) -> Step {
        let token = match bearer_token(message) {
            Ok(t) => t,
            Err(why) => return Step::Failed(format!("OAUTHBEARER: {why}")),
        };
        match self.validate(token) {
            Ok((subject, valid_for)) => Step::Done {
                user: subject,
                last: Vec::new(),
                valid_for,
            },
            Err(why) => Step::Failed(format!("OAUTHBEARER: {why}")),
        }
    }

    /// The token's subject and how long it stays valid, or why it is refused.
    pub fn validate(&self, token: &str) -> Result<(String, Option<Duration>), String> {
        let header = decode_header(token).map_err(|e| format!("token header: {e}"))?;
        let jwk = self.key_for(header.kid.as_deref())?;
        let allowed = algorithms_of(&jwk);
        if !allowed.contains(&header.alg) {
            return Err(format!(
                "algorithm {:?} does not fit the key {:?}",
                header.alg, jwk.common.key_id
            ));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("JWKS key: {e}"))?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = allowed;
        validation.leeway = self.settings.clock_skew_seconds;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        if self.settings.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.settings.audience);
        }
        if let Some(issuer) = &self.settings.issuer {
            validation.set_issuer(&[issuer]);
        }
        let data = decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| format!("token refused: {e}"))?;
        let subject = data.claims[self.settings.sub_claim.as_str()]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("no {:?} claim", self.settings.sub_claim))?;
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let valid_for = data.claims["exp"]
            .as_u64()
            .map(|exp| Duration::from_secs(exp.saturating_sub(now)));
        Ok((subject.to_string(), valid_for))
    }

    /// The key named `kid` (or the only key, for a token naming none), the file read again
    /// first if it changed.
    fn key_for(&self, kid: Option<&str>) -> Result<Jwk, String> {
        let mut keys = self.keys.lock();
        let now = modified(&self.settings.jwks);
        if now != keys.0 {
            match read_jwks(&self.settings.jwks) {
                Ok(fresh) => *keys = (now, fresh),
                Err(e) => {
                    tracing::warn!(error = %e, "the JWKS changed but does not read; keeping the previous keys")
                }
            }
        }
        let set = &keys.1;
        let found = match kid {
            Some(kid) => set.find(kid),
            None if set.keys.len() == 1 => set.keys.first(),
            None => None,
        };
        found
            .cloned()
            .ok_or_else(|| format!("no key {kid:?} in the JWKS"))
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_jwks(path: &std::path::Path) -> Result<JwkSet, String> {
    let named = |e: &dyn std::fmt::Display| {
        format!("sasl.oauthbearer.jwks.endpoint.url {}: {e}", path.display())
    };
    let text = std::fs::read_to_string(path).map_err(|e| named(&e))?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| named(&e))?;
    if set.keys.is_empty() {
        return Err(named(&"no keys in it"));
    }
    Ok(set)
}

/// The signature algorithms a key can check: its own if it names one, else those of its
/// type. Never an HMAC: a JWKS holds public keys.
fn algorithms_of(jwk: &Jwk) -> Vec<Algorithm> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => Vec::new(),
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
        AlgorithmParameters::OctetKey(_) => Vec::new(),
    };
    match jwk
        .common
        .key_algorithm
        .and_then(|a| a.to_string().parse::<Algorithm>().ok())
    {
        Some(named) if by_type.contains(&named) => vec![named],
        Some(_) => Vec::new(),
        None => by_type,
    }
}

/// The token of an OAUTHBEARER initial client response (RFC 7628 section 3.1): a GS2 header,
/// then `key=value` pairs each ended by 0x01, among them `auth=Bearer TOKEN`.
fn bearer_token(message: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(message).map_err(|_| "the message is not UTF-8")?;
    let (gs2, rest) = text
        .split_once('\u{1}')
        .ok_or("no key/value pairs after the GS2 header")?;
    if !(gs2.starts_with("n,") || gs2.starts_with("y,")) {
        return Err("channel binding is not supported".into());
    }
    rest.split('\u{1}')
        .find_map(|kv| kv.strip_prefix("auth="))
        .and_then(|auth| {
            auth.strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "no auth=Bearer token".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_from_the_initial_response() {
        assert_eq!(
            bearer_token(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01"),
            Ok("abc.def.ghi")
        );
        assert_eq!(
            bearer_token(b"n,a=alice,\x01host=x\x01auth=Bearer t\x01\x01"),
            Ok("t")
        );
        assert!(bearer_token(b"n,,\x01auth=Basic abc\x01\x01").is_err());
        assert!(bearer_token(b"p=tls,,\x01auth=Bearer t\x01\x01").is_err());
        assert!(bearer_token(b"garbage").is_err());
    }

    #[test]
    fn keys_never_check_hmac_tokens() {
        let set: JwkSet = serde_json::from_str(
            r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
                        {"kty":"RSA","kid":"b","alg":"RS384","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}]}"#,
        )
        .unwrap();
        assert_eq!(algorithms_of(&set.keys[0]), vec![Algorithm::ES256]);
        assert_eq!(algorithms_of(&set.keys[1]), vec![Algorithm::RS384]);
        assert!(set
            .keys
            .iter()
            .all(|k| !algorithms_of(k).contains(&Algorithm::HS256)));
    }
}

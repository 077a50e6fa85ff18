//! SASL OAUTHBEARER with a real client (confluent-kafka's token callback): JWTs signed by a
//! key of a JWKS made here are accepted and name the principal; expired ones, ones for
//! another audience or issuer, ones signed by another key and unsigned ones are refused; a
//! key rotated into the JWKS file is used by the next login.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use common::secure::{client, expected, jwks, now, token, values, Files};
use common::Broker;
use rcgen::KeyPair;

#[test]
fn tokens_signed_by_the_jwks_log_in_and_every_other_token_is_refused() {
    let files = Files::new();
    let key = KeyPair::generate().unwrap();
    let jwks_path = files.write("jwks.json", &jwks(&key, "k1"));
    let sasl_port = common::free_port();
    let broker = Broker::start_naming_port(|port| {
        format!(
            "listeners = \"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}\"\n\
             \"sasl.enabled.mechanisms\" = \"SCRAM-SHA-512,OAUTHBEARER\"\n\
             \"sasl.oauthbearer.jwks.endpoint.url\" = \"file://{}\"\n\
             \"sasl.oauthbearer.expected.audience\" = \"sluice\"\n\
             \"sasl.oauthbearer.expected.issuer\" = \"https://idp.example\"\n",
            jwks_path.display()
        )
    });
    let at = format!("127.0.0.1:{sasl_port}");
    let login = |jwt: &str, timeout: &str| {
        client(
            &at,
            "oauth",
            &[
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "OAUTHBEARER"),
                ("test.oauth.token", jwt),
                ("test.timeout.s", timeout),
            ],
        )
    };
    let iss = "https://idp.example";
    let good = token(&key, "k1", "alice", "sluice", iss, now() + 600);
    let (code, json) = login(&good, "15");
    assert_eq!(code, 0, "{json}");
    assert_eq!(values(&json), expected());
    assert!(
        broker.log_text().contains("principal=User:alice"),
        "{}",
        broker.log_text()
    );

    let other_key = KeyPair::generate().unwrap();
    let unsigned = format!(
        "{}.{}.",
        B64URL.encode(r#"{"alg":"none","typ":"JWT"}"#),
        B64URL.encode(
            serde_json::json!({"sub": "mallory", "aud": "sluice", "iss": iss, "exp": now() + 600})
                .to_string()
        )
    );
    for (what, jwt) in [
        (
            "expired",
            token(&key, "k1", "alice", "sluice", iss, now() - 600),
        ),
        (
            "another audience",
            token(&key, "k1", "alice", "other", iss, now() + 600),
        ),
        (
            "another issuer",
            token(&key, "k1", "alice", "sluice", "https://evil", now() + 600),
        ),
        (
            "another key",
            token(&other_key, "k1", "mallory", "sluice", iss, now() + 600),
        ),
        ("unsigned", unsigned),
    ] {
        let (code, json) = login(&jwt, "4");
        assert_eq!(code, 3, "{what}: {json}");
    }
    assert!(!broker.log_text().contains("principal=User:mallory"));

    // A new key in the JWKS file serves the next login; the old key no longer does.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    files.write("jwks.json", &jwks(&other_key, "k2"));
    let rotated = token(&other_key, "k2", "bob", "sluice", iss, now() + 600);
    let (code, json) = login(&rotated, "15");
    assert_eq!(code, 0, "{json}");
    let (code, json) = login(&good, "4");
    assert_eq!(code, 3, "the old key was rotated out: {json}");
}

//! Token refusals (SPEC 4.1): each hand-made token differs from a valid one in exactly one
//! property, for a live session, and is refused with 401 `invalidToken` and
//! `WWW-Authenticate: ... error="invalid_token"` before anything reaches the upstream.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::super::harness::gateway::{signing_key_path, tokens_section};
use super::super::harness::{TestUpstream, normalised_name};
use super::{
    Gate, b64, each_backend, expect_error, expect_passed, get_bearer, jwt_part, login, protected,
    register,
};

/// Signs `header.payload` with `key` and `alg` and returns the compact token.
fn sign_with(header: &Value, payload: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// Signs with the gateway's own ES256 test key.
fn sign(header: &Value, payload: &Value) -> String {
    let pem = std::fs::read(signing_key_path()).unwrap();
    let key = EncodingKey::from_ec_pem(&pem).unwrap();
    sign_with(header, payload, &key, Algorithm::ES256)
}

/// `value` with `key` set to `to` (or removed when `to` is null).
fn with(value: &Value, key: &str, to: Value) -> Value {
    let mut value = value.clone();
    let object = value.as_object_mut().unwrap();
    if to.is_null() {
        object.remove(key);
    } else {
        object.insert(key.to_string(), to);
    }
    value
}

/// Asserts the token is refused as invalid and the upstream saw nothing.
async fn assert_refused(gate: &Gate, up: &TestUpstream, token: &str, what: &str) {
    let before = up.received().len();
    let resp = get_bearer(gate, "/app/x", token).await;
    assert_eq!(super::header(&resp, "gn-access-token"), None, "{what}");
    let challenge = expect_error(resp, 401, "invalidToken", what).await;
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
        "{what}: WWW-Authenticate {challenge:?}"
    );
    assert_eq!(up.received().len(), before, "{what}: reached the upstream");
}

#[tokio::test]
async fn hand_made_tokens_are_refused_unless_every_property_is_right() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let gate = Gate::start(&protected(&b, &up)).await;
        register(&gate, "alice").await;
        let bob = register(&gate, "bob").await;
        let real = login(&gate, "alice").await;
        let (h, p) = (jwt_part(&real, 0), jwt_part(&real, 1));
        let [head, body, sig]: [&str; 3] = real.split('.').collect::<Vec<_>>().try_into().unwrap();

        // The control: re-signed with nothing changed, it passes.
        expect_passed(&get_bearer(&gate, "/app/x", &sign(&h, &p)).await, b.name);

        let exp = p["exp"].as_u64().unwrap();
        let public_pem = tollgate::auth::keys::public_key_pem(
            &std::fs::read_to_string(signing_key_path()).unwrap(),
        )
        .unwrap();
        let hmac = EncodingKey::from_secret(public_pem.as_bytes());
        let der: String = public_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let hmac_der = EncodingKey::from_secret(&STANDARD.decode(der).unwrap());
        let hs256 = with(&h, "alg", json!("HS256"));
        let none = with(&h, "alg", json!("none"));
        let tampered =
            |claims: Value| format!("{head}.{}.{sig}", b64(claims.to_string().as_bytes()));
        let cases: Vec<(&str, String)> = vec![
            (
                "tampered sub, old signature",
                tampered(with(&p, "sub", json!(bob.to_string()))),
            ),
            (
                "tampered exp, old signature",
                tampered(with(&p, "exp", json!(exp + 86_400))),
            ),
            ("signature stripped", format!("{head}.{body}.")),
            ("signature part missing", format!("{head}.{body}")),
            (
                "alg none, no signature",
                format!("{}.{body}.", b64(none.to_string().as_bytes())),
            ),
            (
                "alg none, old signature",
                format!("{}.{body}.{sig}", b64(none.to_string().as_bytes())),
            ),
            (
                "HS256 keyed with the public key PEM",
                sign_with(&hs256, &p, &hmac, Algorithm::HS256),
            ),
            (
                "HS256 keyed with the public key DER",
                sign_with(&hs256, &p, &hmac_der, Algorithm::HS256),
            ),
            ("typ JWT", sign(&with(&h, "typ", json!("JWT")), &p)),
            ("no typ", sign(&with(&h, "typ", Value::Null), &p)),
            (
                "unknown kid",
                sign(&with(&h, "kid", json!("some-other-key")), &p),
            ),
            ("no kid", sign(&with(&h, "kid", Value::Null), &p)),
            (
                "jku header",
                sign(&with(&h, "jku", json!("http://127.0.0.1:1/jwks.json")), &p),
            ),
            (
                "wrong iss",
                sign(&h, &with(&p, "iss", json!("https://evil.test"))),
            ),
            ("no iss", sign(&h, &with(&p, "iss", Value::Null))),
            (
                "wrong aud",
                sign(&h, &with(&p, "aud", json!("someone-else"))),
            ),
            ("no aud", sign(&h, &with(&p, "aud", Value::Null))),
            ("no exp", sign(&h, &with(&p, "exp", Value::Null))),
            (
                "exp as a string",
                sign(&h, &with(&p, "exp", json!((exp + 86_400).to_string()))),
            ),
            (
                "sub as a number",
                sign(
                    &h,
                    &with(
                        &p,
                        "sub",
                        json!(p["sub"].as_str().unwrap().parse::<u64>().unwrap()),
                    ),
                ),
            ),
            ("no sid", sign(&h, &with(&p, "sid", Value::Null))),
            (
                "expired",
                sign(&h, &with(&p, "exp", json!(gate.now() - 60))),
            ),
            (
                "nbf in an hour",
                sign(&h, &with(&p, "nbf", json!(gate.now() + 3600))),
            ),
        ];
        for (what, token) in cases {
            assert_refused(&gate, &up, &token, &format!("{}: {what}", b.name)).await;
        }

        // Signed correctly for alice's live session, but naming bob: the session is not his.
        let before = up.received().len();
        let resp = get_bearer(
            &gate,
            "/app/x",
            &sign(&h, &with(&p, "sub", json!(bob.to_string()))),
        )
        .await;
        assert_eq!(resp.status(), 401, "{}: sub of another user", b.name);
        assert_eq!(up.received().len(), before, "{}", b.name);

        // The real token still works: nothing above ended the session.
        expect_passed(&get_bearer(&gate, "/app/x", &real).await, b.name);
        let got = up.last();
        assert!(
            got.headers
                .keys()
                .all(|n| normalised_name(n.as_str()) != "authorization")
        );
    }
}

#[tokio::test]
async fn a_token_is_refused_once_exp_and_the_leeway_have_passed() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let tokens = format!(
            "{}access_ttl = \"5m\"\nleeway = \"10s\"\n",
            tokens_section()
        );
        let config = protected(&b, &up)
            .section(&tokens)
            .section("[sessions]\nidle_timeout = \"1h\"");
        let gate = Gate::start(&config).await;
        register(&gate, "alice").await;
        let first = login(&gate, "alice").await;

        gate.advance(Duration::from_secs(300 + 5));
        let resp = get_bearer(&gate, "/app/x", &first).await;
        let fresh = expect_passed(&resp, "within the leeway");
        assert_ne!(
            fresh, first,
            "{}: a new token past the reissue interval",
            b.name
        );

        gate.advance(Duration::from_secs(6));
        assert_refused(
            &gate,
            &up,
            &first,
            &format!("{}: past exp + leeway", b.name),
        )
        .await;
        // The session is alive: only the old token has run out.
        expect_passed(&get_bearer(&gate, "/app/x", &fresh).await, "fresh token");
    }
}

#[tokio::test]
async fn tokens_of_another_issuer_audience_or_key_are_refused() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let main = Gate::start(&protected(&b, &up)).await;
        register(&main, "alice").await;
        let own = login(&main, "alice").await;
        expect_passed(&get_bearer(&main, "/app/x", &own).await, "own token");

        let other_key_dir = tempfile::tempdir().unwrap();
        let other_key = other_key_dir.path().join("other.pem");
        let pem =
            tollgate::auth::keys::generate_private_key_pem(tollgate::auth::keys::Algorithm::Es256)
                .unwrap();
        std::fs::write(&other_key, pem).unwrap();
        let same_key = signing_key_path();
        let variants = [
            ("other issuer", "https://other.test", "tollgate", same_key),
            (
                "other audience",
                "https://tollgate.test",
                "other-app",
                same_key,
            ),
            (
                "other key",
                "https://tollgate.test",
                "tollgate",
                other_key.as_path(),
            ),
        ];
        for (what, issuer, audience, key) in variants {
            let tokens = format!(
                "[tokens]\nissuer = {issuer:?}\naudience = {audience:?}\n\
                 algorithm = \"ES256\"\nsigning_key_file = {key:?}\n"
            );
            let other = Gate::start(&protected(&b, &up).section(&tokens)).await;
            // Ours at theirs, and theirs (a live session there) at ours.
            assert_refused(&other, &up, &own, &format!("{}: ours at {what}", b.name)).await;
            let theirs = login(&other, "alice").await;
            expect_passed(&get_bearer(&other, "/app/x", &theirs).await, what);
            assert_refused(&main, &up, &theirs, &format!("{}: {what} at ours", b.name)).await;
        }
    }
}

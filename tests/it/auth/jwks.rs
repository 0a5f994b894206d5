//! `GET /.well-known/jwks.json`: an independent JWT library (jwt-simple) verifies a login
//! token using nothing but the JWKS fetched over HTTP.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::{ECDSAP256PublicKeyLike, ES256PublicKey, VerificationOptions};
use serde::Deserialize;
use serde_json::Value;

use super::super::harness::TestUpstream;
use super::{Gate, each_backend, header, http, jwt_part, protected, register_as};

#[derive(Deserialize)]
struct SessionClaim {
    sid: String,
}

#[tokio::test]
async fn a_login_token_verifies_against_the_published_jwks() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        // A manual clock that is never advanced reads real time, which jwt-simple checks.
        let gate = Gate::start(&protected(&b, &up)).await;
        let body = serde_json::json!({
            "username": "alice", "email": "alice@example.test", "password": super::PASSWORD,
        });
        let created: Value = register_as(&gate, &body).await.json().await.unwrap();
        let id = created["user"]["id"].as_u64().unwrap();
        let token = super::login(&gate, "alice").await;

        let resp = http()
            .get(gate.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", b.name);
        let content_type = header(&resp, "content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        let jwks: Value = resp.json().await.unwrap();
        let keys = jwks["keys"].as_array().expect("a `keys` array");
        for key in keys {
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(
                    key.get(private).is_none(),
                    "private member {private}: {key}"
                );
            }
        }

        let jose = jwt_part(&token, 0);
        assert_eq!(jose["typ"], "at+jwt", "{}: {jose}", b.name);
        assert_eq!(jose["alg"], "ES256", "{}: {jose}", b.name);
        let kid = jose["kid"].as_str().expect("kid in the header");
        let jwk = keys
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap_or_else(|| panic!("kid {kid} not in {jwks}"));
        assert_eq!(jwk["kty"], "EC", "{jwk}");
        assert_eq!(jwk["crv"], "P-256", "{jwk}");

        let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
        let mut point = vec![0x04];
        point.extend(coordinate("x"));
        point.extend(coordinate("y"));
        let public = ES256PublicKey::from_bytes(&point).unwrap();
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from(["https://tollgate.test".to_string()])),
            allowed_audiences: Some(HashSet::from(["tollgate".to_string()])),
            required_key_id: Some(kid.to_string()),
            required_signature_type: Some("at+jwt".to_string()),
            ..VerificationOptions::default()
        };
        let verified = public
            .verify_token::<SessionClaim>(&token, Some(options))
            .unwrap_or_else(|e| panic!("{}: jwt-simple refused the token: {e}", b.name));
        assert_eq!(verified.subject, Some(id.to_string()), "{}", b.name);
        assert!(
            verified.jwt_id.is_some_and(|j| !j.is_empty()),
            "{}: jti",
            b.name
        );
        assert!(verified.issued_at.is_some() && verified.expires_at.is_some());
        assert!(verified.invalid_before.is_some(), "{}: nbf", b.name);
        let sid = verified.custom.sid;
        assert_eq!(sid.len(), 48, "{}: {sid}", b.name);
        assert!(sid.bytes().all(|c| c.is_ascii_alphanumeric()), "{sid}");

        // A token changed by one byte does not verify against the same key.
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 3;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(public.verify_token::<SessionClaim>(&forged, None).is_err());
    }
}

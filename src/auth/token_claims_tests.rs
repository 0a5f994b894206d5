//! What verification demands of the claims: time with leeway, issuer and audience, JSON
//! types, user and session ids; and which keys may verify during a rotation.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{AUDIENCE, NOW, SID, claims, claims_json, forge, forge_text, header, rules, verify};
use crate::auth::keys::tests::{ALGORITHMS, keyring, old_private_pem, private_pem};
use crate::auth::keys::{Algorithm, Keyring, public_key_pem};
use crate::auth::token::{AccessClaims, TokenError, new_token_id};

#[test]
fn expiry_allows_exactly_the_leeway() {
    let keyring = keyring(Algorithm::Es256);
    let token = keyring.sign(&claims()).expect("sign");
    let exp = NOW + 3600;
    for (leeway, now, expected) in [
        (10, exp - 1, Ok(())),
        (10, exp + 9, Ok(())),
        (10, exp + 10, Err(TokenError::Expired)),
        (0, exp - 1, Ok(())),
        (0, exp, Err(TokenError::Expired)),
        (0, u64::MAX, Err(TokenError::Expired)),
    ] {
        let result = keyring.verify(&token, &rules(leeway), now).map(|_| ());
        assert_eq!(
            result,
            expected,
            "leeway {leeway}, now = exp + {}",
            now.wrapping_sub(exp)
        );
    }
}

#[test]
fn not_before_allows_exactly_the_leeway() {
    let keyring = keyring(Algorithm::Es256);
    let token = keyring.sign(&claims()).expect("sign");
    for (leeway, now, expected) in [
        (10, NOW - 10, Ok(())),
        (10, NOW - 11, Err(TokenError::NotYetValid)),
        (0, NOW, Ok(())),
        (0, NOW - 1, Err(TokenError::NotYetValid)),
        (0, 0, Err(TokenError::NotYetValid)),
    ] {
        let result = keyring.verify(&token, &rules(leeway), now).map(|_| ());
        assert_eq!(result, expected, "leeway {leeway}, now {now}");
    }
}

#[test]
fn issuer_and_audience_must_match() {
    let keyring = keyring(Algorithm::Rs256);
    let mut claims = claims();
    claims.iss = "https://evil.example.com".to_owned();
    let token = keyring.sign(&claims).expect("sign");
    assert_eq!(verify(&keyring, &token), Err(TokenError::WrongIssuer));

    let mut claims = self::claims();
    claims.aud = "another-app".to_owned();
    let token = keyring.sign(&claims).expect("sign");
    assert_eq!(verify(&keyring, &token), Err(TokenError::WrongAudience));
}

#[test]
fn claims_of_the_wrong_json_type_or_missing_are_refused() {
    let keyring = keyring(Algorithm::EdDsa);
    let changes: [(&str, Option<Value>); 12] = [
        ("exp", Some(json!("9999999999"))),
        ("nbf", Some(json!("0"))),
        ("iat", Some(json!(1.5))),
        ("exp", Some(json!(-1))),
        ("sub", Some(json!(5))),
        ("aud", Some(json!([AUDIENCE]))),
        ("iss", Some(json!(null))),
        ("sid", Some(json!(7))),
        ("exp", None),
        ("sub", None),
        ("sid", None),
        ("jti", None),
    ];
    for (name, value) in changes {
        let mut payload = claims_json();
        match &value {
            Some(value) => payload[name] = value.clone(),
            None => {
                payload.as_object_mut().expect("object").remove(name);
            }
        }
        let token = forge(Algorithm::EdDsa, &header(&keyring), &payload);
        assert_eq!(
            verify(&keyring, &token),
            Err(TokenError::BadClaims),
            "{name}: {value:?}"
        );
    }
    // A repeated claim: which copy counts would be the parser's guess.
    let text = claims_json()
        .to_string()
        .replacen('{', r#"{"exp":9999999999,"#, 1);
    let token = forge_text(
        Algorithm::EdDsa,
        private_pem(Algorithm::EdDsa),
        &header(&keyring).to_string(),
        &text,
    );
    assert_eq!(verify(&keyring, &token), Err(TokenError::BadClaims));
}

#[test]
fn sub_must_be_a_user_id_and_sid_a_session_key() {
    let keyring = keyring(Algorithm::Es256);
    let bad: [(&str, &str); 10] = [
        ("sub", "abc"),
        ("sub", "+5"),
        ("sub", "-1"),
        ("sub", "007"),
        ("sub", ""),
        ("sub", "18446744073709551616"),
        ("sid", &SID[1..]),
        ("sid", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU-"),
        ("sid", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"),
        ("sid", "ÄbcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST"),
    ];
    for (name, value) in bad {
        let mut payload = claims_json();
        payload[name] = json!(value);
        let token = forge(Algorithm::Es256, &header(&keyring), &payload);
        assert_eq!(
            verify(&keyring, &token),
            Err(TokenError::BadClaims),
            "{name}={value:?}"
        );
    }
    let mut payload = claims_json();
    payload["sub"] = json!("0");
    assert!(
        verify(
            &keyring,
            &forge(Algorithm::Es256, &header(&keyring), &payload)
        )
        .is_ok()
    );
    payload["sub"] = json!(u64::MAX.to_string());
    assert!(
        verify(
            &keyring,
            &forge(Algorithm::Es256, &header(&keyring), &payload)
        )
        .is_ok()
    );
}

#[test]
fn tokens_of_a_rotated_out_key_verify_only_while_it_is_listed() {
    for old_alg in ALGORITHMS {
        let old = Keyring::new(old_alg, old_private_pem(old_alg), None, &[]).expect("old keyring");
        let token = old.sign(&claims()).expect("sign with old key");
        let public = public_key_pem(old_private_pem(old_alg)).expect("old public key");
        let listed = [("old.pem".to_owned(), public)];
        let current = private_pem(Algorithm::Rs256);
        let with_old = Keyring::new(Algorithm::Rs256, current, None, &listed).expect("new keyring");
        assert_eq!(
            verify(&with_old, &token),
            Ok(claims_with(&token)),
            "{old_alg}"
        );
        let without = Keyring::new(Algorithm::Rs256, current, None, &[]).expect("new keyring");
        assert_eq!(
            verify(&without, &token),
            Err(TokenError::UnknownKey),
            "{old_alg}"
        );
        // New tokens are signed with the new key only.
        let fresh = with_old.sign(&claims()).expect("sign");
        assert_eq!(verify(&old, &fresh), Err(TokenError::UnknownKey));
    }
}

#[test]
fn sign_refuses_claims_that_verify_would_refuse() {
    let keyring = keyring(Algorithm::EdDsa);
    let mut claims = claims();
    claims.sid = "short".to_owned();
    assert!(matches!(keyring.sign(&claims), Err(TokenError::Signing(_))));
    let mut claims = self::claims();
    claims.sub = "alice".to_owned();
    assert!(matches!(keyring.sign(&claims), Err(TokenError::Signing(_))));
}

#[test]
fn token_ids_are_128_random_bits_in_base64url() {
    let ids: Vec<String> = (0..64).map(|_| new_token_id().expect("jti")).collect();
    for id in &ids {
        assert_eq!(id.len(), 22, "{id}");
        assert_eq!(URL_SAFE_NO_PAD.decode(id).expect("base64url").len(), 16);
    }
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
}

/// The claims inside a token this test module signed (to compare round trips with a random jti).
fn claims_with(token: &str) -> AccessClaims {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims")
}

//! Unit tests for signing and verifying access tokens.
//!
//! Hostile tokens are built by hand (base64url JSON signed with jsonwebtoken's own signer and
//! the real key), so each one is refused only by the rule under test.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};

use super::{AccessClaims, TokenError, TokenRules, new_token_id};
use crate::auth::keys::tests::{ALGORITHMS, keyring, old_private_pem, private_pem};
use crate::auth::keys::{Algorithm, Keyring, public_key_pem};

const NOW: u64 = 1_700_000_000;
const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "tollgate";
const SID: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV";

fn rules(leeway: u64) -> TokenRules {
    TokenRules {
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        leeway: Duration::from_secs(leeway),
    }
}

fn claims() -> AccessClaims {
    AccessClaims {
        iss: ISSUER.to_owned(),
        sub: "42".to_owned(),
        aud: AUDIENCE.to_owned(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 3600,
        jti: new_token_id().expect("jti"),
        sid: SID.to_owned(),
    }
}

fn claims_json() -> Value {
    serde_json::to_value(claims()).expect("claims")
}

/// The header tollgate itself writes for `keyring`.
fn header(keyring: &Keyring) -> Value {
    json!({"alg": keyring.algorithm().as_str(), "typ": "at+jwt", "kid": keyring.kid()})
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// A token with exactly this header and payload text, signed by `pem` (a key for `alg`).
fn forge_text(alg: Algorithm, pem: &str, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let key = match alg {
        Algorithm::Rs256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::Es256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDsa => EncodingKey::from_ed_pem(pem.as_bytes()),
    }
    .expect("encoding key");
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg.jwt()).expect("sign");
    format!("{input}.{signature}")
}

/// A token with this header and payload, signed by the keyring's own key for `alg`.
fn forge(alg: Algorithm, header: &Value, payload: &Value) -> String {
    forge_text(
        alg,
        private_pem(alg),
        &header.to_string(),
        &payload.to_string(),
    )
}

fn verify(keyring: &Keyring, token: &str) -> Result<AccessClaims, TokenError> {
    keyring.verify(token, &rules(10), NOW)
}

#[test]
fn signed_tokens_verify_and_carry_the_claims_for_each_algorithm() {
    for alg in ALGORITHMS {
        let keyring = keyring(alg);
        let claims = claims();
        let token = keyring.sign(&claims).expect("sign");
        assert_eq!(verify(&keyring, &token), Ok(claims), "{alg}");
        let header = token.split('.').next().expect("header");
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
        assert_eq!(
            header,
            json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": keyring.kid()})
        );
    }
}

#[test]
fn hand_built_control_token_verifies() {
    // The forging helper makes tokens that pass, so the refusals below come from their one change.
    for alg in ALGORITHMS {
        let keyring = keyring(alg);
        let token = forge(alg, &header(&keyring), &claims_json());
        assert!(verify(&keyring, &token).is_ok(), "{alg}");
    }
}

#[test]
fn tampered_payload_is_refused() {
    for alg in ALGORITHMS {
        let keyring = keyring(alg);
        let token = keyring.sign(&claims()).expect("sign");
        let parts: Vec<&str> = token.split('.').collect();
        let mut altered = claims();
        altered.sub = "1".to_owned();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&altered).expect("json"));
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&keyring, &tampered),
            Err(TokenError::BadSignature),
            "{alg}"
        );
    }
}

#[test]
fn tampered_or_foreign_signature_is_refused() {
    for alg in ALGORITHMS {
        let keyring = keyring(alg);
        let token = keyring.sign(&claims()).expect("sign");
        let (input, signature) = token.rsplit_once('.').expect("three parts");
        let mut raw = URL_SAFE_NO_PAD.decode(signature).expect("b64");
        raw[5] ^= 0x40;
        let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(
            verify(&keyring, &flipped),
            Err(TokenError::BadSignature),
            "{alg}"
        );
        // Signed by another key of the same type that claims this keyring's kid.
        let foreign = forge_text(
            alg,
            old_private_pem(alg),
            &header(&keyring).to_string(),
            &claims_json().to_string(),
        );
        assert_eq!(
            verify(&keyring, &foreign),
            Err(TokenError::BadSignature),
            "{alg}"
        );
    }
}

#[test]
fn stripped_signature_is_refused() {
    for alg in ALGORITHMS {
        let keyring = keyring(alg);
        let token = keyring.sign(&claims()).expect("sign");
        let (input, _) = token.rsplit_once('.').expect("three parts");
        assert_eq!(
            verify(&keyring, &format!("{input}.")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(&keyring, input), Err(TokenError::Malformed));
    }
}

#[test]
fn alg_none_is_refused() {
    for alg in ALGORITHMS {
        let keyring = keyring(alg);
        for none in ["none", "None", "NONE"] {
            let header = json!({"alg": none, "typ": "at+jwt", "kid": keyring.kid()});
            let token = format!(
                "{}.{}.",
                b64(&header.to_string()),
                b64(&claims_json().to_string())
            );
            assert_eq!(
                verify(&keyring, &token),
                Err(TokenError::WrongAlgorithm),
                "{alg} {none}"
            );
        }
    }
}

#[test]
fn hs256_keyed_with_the_public_key_is_refused() {
    let keyring = keyring(Algorithm::Rs256);
    let public_pem = public_key_pem(private_pem(Algorithm::Rs256)).expect("public key");
    let header = jsonwebtoken::Header {
        typ: Some("at+jwt".to_owned()),
        kid: Some(keyring.kid().to_owned()),
        ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
    };
    for secret in [
        public_pem.as_bytes(),
        private_pem(Algorithm::Rs256).as_bytes(),
    ] {
        let key = EncodingKey::from_secret(secret);
        let token = jsonwebtoken::encode(&header, &claims(), &key).expect("HS256 token");
        assert_eq!(verify(&keyring, &token), Err(TokenError::WrongAlgorithm));
    }
}

#[test]
fn algorithm_must_be_the_one_of_the_key_the_kid_names() {
    // RS256 signing key plus an ES256 verify key: each kid pins its own algorithm.
    let ec_kid = keyring(Algorithm::Es256).kid().to_owned();
    let verify_pems = [(
        "ec".to_owned(),
        public_key_pem(private_pem(Algorithm::Es256)).expect("spki"),
    )];
    let keyring = Keyring::new(
        Algorithm::Rs256,
        private_pem(Algorithm::Rs256),
        None,
        &verify_pems,
    )
    .expect("keyring");
    let payload = claims_json();
    // ES256 signature presented under the RSA key's kid, and the other way round.
    let es_as_rsa = json!({"alg": "ES256", "typ": "at+jwt", "kid": keyring.kid()});
    let rs_as_ec = json!({"alg": "RS256", "typ": "at+jwt", "kid": ec_kid});
    let es_under_ec = json!({"alg": "ES256", "typ": "at+jwt", "kid": ec_kid});
    let cases = [
        (
            forge(Algorithm::Es256, &es_as_rsa, &payload),
            "ES256 under RSA kid",
        ),
        (
            forge(Algorithm::Rs256, &rs_as_ec, &payload),
            "RS256 under EC kid",
        ),
        (
            forge(
                Algorithm::EdDsa,
                &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": ec_kid}),
                &payload,
            ),
            "EdDSA under EC kid",
        ),
    ];
    for (token, case) in cases {
        assert_eq!(
            verify(&keyring, &token),
            Err(TokenError::WrongAlgorithm),
            "{case}"
        );
    }
    // Other RSA algorithms are refused for an RS256 key too.
    for other in ["RS384", "RS512", "PS256", "HS256"] {
        let header = json!({"alg": other, "typ": "at+jwt", "kid": keyring.kid()});
        let token = format!(
            "{}.{}.c2ln",
            b64(&header.to_string()),
            b64(&payload.to_string())
        );
        assert_eq!(
            verify(&keyring, &token),
            Err(TokenError::WrongAlgorithm),
            "{other}"
        );
    }
    // Sanity: the header check is what refused these, not a broken verify key.
    let good = forge(Algorithm::Es256, &es_under_ec, &payload);
    assert!(verify(&keyring, &good).is_ok());
}

#[test]
fn typ_must_be_at_jwt() {
    let keyring = keyring(Algorithm::Es256);
    let with_typ = |typ: Option<Value>| {
        let mut header = header(&keyring);
        match typ {
            Some(typ) => header["typ"] = typ,
            None => {
                header.as_object_mut().expect("object").remove("typ");
            }
        }
        forge(Algorithm::Es256, &header, &claims_json())
    };
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        assert!(
            verify(&keyring, &with_typ(Some(json!(typ)))).is_ok(),
            "{typ}"
        );
    }
    for typ in [
        json!("JWT"),
        json!("jwt"),
        json!("dpop+jwt"),
        json!("at+jwt "),
        json!(""),
        json!(null),
        json!(1),
        json!(["at+jwt"]),
    ] {
        assert_eq!(
            verify(&keyring, &with_typ(Some(typ.clone()))),
            Err(TokenError::WrongType),
            "{typ}"
        );
    }
    assert_eq!(
        verify(&keyring, &with_typ(None)),
        Err(TokenError::WrongType)
    );
}

#[test]
fn kid_must_name_a_key_in_the_keyring() {
    let keyring = keyring(Algorithm::EdDsa);
    let mut unknown = header(&keyring);
    unknown["kid"] = json!("somebody-elses-key");
    let mut numeric = header(&keyring);
    numeric["kid"] = json!(1);
    let mut missing = header(&keyring);
    missing.as_object_mut().expect("object").remove("kid");
    for header in [unknown, numeric, missing] {
        let token = forge(Algorithm::EdDsa, &header, &claims_json());
        assert_eq!(
            verify(&keyring, &token),
            Err(TokenError::UnknownKey),
            "{header}"
        );
    }
}

#[test]
fn headers_pointing_at_outside_keys_are_refused() {
    for alg in ALGORITHMS {
        let keyring = keyring(alg);
        let members = [
            ("jku", json!("https://attacker.example/jwks.json")),
            ("x5u", json!("https://attacker.example/cert.pem")),
            (
                "jwk",
                json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
            ),
            ("x5c", json!(["MIIB"])),
            ("crit", json!(["exp"])),
            ("jku", Value::Null),
        ];
        for (name, value) in members {
            let mut header = header(&keyring);
            header[name] = value;
            let token = forge(alg, &header, &claims_json());
            assert_eq!(
                verify(&keyring, &token),
                Err(TokenError::ForbiddenHeader),
                "{alg} {name}"
            );
        }
    }
}

#[test]
fn repeated_header_member_is_refused() {
    let keyring = keyring(Algorithm::Rs256);
    let kid = keyring.kid();
    let payload = claims_json().to_string();
    for header in [
        format!(r#"{{"alg":"HS256","alg":"RS256","typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"RS256","typ":"JWT","typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"other","kid":"{kid}"}}"#),
    ] {
        let token = forge_text(
            Algorithm::Rs256,
            private_pem(Algorithm::Rs256),
            &header,
            &payload,
        );
        assert_eq!(
            verify(&keyring, &token),
            Err(TokenError::Malformed),
            "{header}"
        );
    }
}

#[test]
fn header_reader_refuses_repeated_members_whatever_their_name() {
    assert_eq!(
        super::read_header(&b64(r#"{"x-a":1,"x-a":2}"#)),
        Err(TokenError::Malformed)
    );
    let members = super::read_header(&b64(r#"{"x-a":1,"x-b":2}"#)).expect("distinct members");
    assert_eq!(members.len(), 2);
}

#[test]
fn header_jsonwebtoken_cannot_read_is_malformed_not_a_claims_problem() {
    let keyring = keyring(Algorithm::Es256);
    for (name, value) in [("cty", json!(5)), ("x5t", json!([]))] {
        let mut header = header(&keyring);
        header[name] = value;
        let token = forge(Algorithm::Es256, &header, &claims_json());
        assert_eq!(
            verify(&keyring, &token),
            Err(TokenError::Malformed),
            "{name}"
        );
    }
}

#[test]
fn malformed_tokens_are_refused() {
    let keyring = keyring(Algorithm::EdDsa);
    let good = keyring.sign(&claims()).expect("sign");
    let (_, rest) = good.split_once('.').expect("parts");
    let padded_header = format!("{}=.{rest}", good.split('.').next().expect("header"));
    let oversized = format!("{good}{}", "A".repeat(9000));
    let array_header = format!("{}.{rest}", b64("[1,2]"));
    let not_json = format!("{}.{rest}", b64("{\"alg\":"));
    for token in [
        "",
        ".",
        "..",
        "a",
        "a.b",
        "a.b.c.d",
        "!!!.e30.c2ln",
        &padded_header,
        &oversized,
        &array_header,
        &not_json,
        &format!("{good}."),
        &format!(" {good}"),
    ] {
        assert_eq!(
            verify(&keyring, token),
            Err(TokenError::Malformed),
            "{token:.60}"
        );
    }
}

#[path = "token_claims_tests.rs"]
mod claims;
#[path = "token_interop_tests.rs"]
mod interop;

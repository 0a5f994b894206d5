//! Unit tests for key loading, key ids and the JWKS; also the key fixtures token tests share.

use std::sync::OnceLock;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::signature::RsaPublicKeyComponents;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::Value;

use super::der::pem_encode;
use super::{Algorithm, KeyError, Keyring, generate_private_key_pem, public_key_pem};

/// Every algorithm, for tests that run once per algorithm.
pub(crate) const ALGORITHMS: [Algorithm; 3] =
    [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa];

fn slot(alg: Algorithm) -> usize {
    match alg {
        Algorithm::Rs256 => 0,
        Algorithm::Es256 => 1,
        Algorithm::EdDsa => 2,
    }
}

/// A private key for `alg`, generated once per test run (RSA generation is slow).
pub(crate) fn private_pem(alg: Algorithm) -> &'static str {
    static KEYS: [OnceLock<String>; 3] = [const { OnceLock::new() }; 3];
    KEYS[slot(alg)].get_or_init(|| generate_private_key_pem(alg).expect("generate key"))
}

/// A second, different private key for `alg` (the "old" key in rotation tests).
pub(crate) fn old_private_pem(alg: Algorithm) -> &'static str {
    static KEYS: [OnceLock<String>; 3] = [const { OnceLock::new() }; 3];
    KEYS[slot(alg)].get_or_init(|| generate_private_key_pem(alg).expect("generate key"))
}

/// A keyring that signs with `private_pem(alg)` and has no other keys.
pub(crate) fn keyring(alg: Algorithm) -> Keyring {
    Keyring::new(alg, private_pem(alg), None, &[]).expect("keyring")
}

/// The keyring's JWKS, parsed.
pub(crate) fn jwks(keyring: &Keyring) -> Value {
    serde_json::from_slice(keyring.jwks_json()).expect("JWKS is JSON")
}

/// A base64url member of a JWK, decoded.
pub(crate) fn jwk_bytes(jwk: &Value, member: &str) -> Vec<u8> {
    let text = jwk[member].as_str().expect("member is a string");
    URL_SAFE_NO_PAD.decode(text).expect("member is base64url")
}

#[test]
fn algorithm_names_round_trip() {
    for alg in ALGORITHMS {
        assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
        let json = format!("\"{}\"", alg.as_str());
        assert_eq!(
            serde_json::from_str::<Algorithm>(&json).expect("deserialize"),
            alg
        );
        assert_eq!(alg.to_string(), alg.as_str());
    }
    for other in ["rs256", "HS256", "none", "PS256", "ES384", ""] {
        assert_eq!(Algorithm::parse(other), None, "{other}");
    }
}

#[test]
fn generated_keys_load_back_with_their_algorithm() {
    for alg in ALGORITHMS {
        let pem = private_pem(alg);
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{alg}: {pem}"
        );
        let keyring = keyring(alg);
        assert_eq!(keyring.algorithm(), alg);
        // A SHA-256 thumbprint is 32 bytes: 43 base64url characters.
        assert_eq!(keyring.kid().len(), 43, "{alg}");
        assert_ne!(
            keyring.kid(),
            Keyring::new(alg, old_private_pem(alg), None, &[])
                .expect("old")
                .kid()
        );
    }
}

#[test]
fn rsa_keygen_makes_a_2048_bit_key_with_exponent_65537() {
    let jwks = jwks(&keyring(Algorithm::Rs256));
    let n = jwk_bytes(&jwks["keys"][0], "n");
    assert_eq!(n.len(), 256);
    assert!(n[0] & 0x80 != 0, "top bit set, so exactly 2048 bits");
    assert_eq!(jwks["keys"][0]["e"], "AQAB");
}

#[test]
fn kid_of_a_verify_key_is_the_rfc7638_thumbprint() {
    // The RSA key of RFC 7638 section 3.1 and the thumbprint the RFC gives for it.
    let n = URL_SAFE_NO_PAD
        .decode(concat!(
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B",
            "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F",
            "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4v",
            "MQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        ))
        .expect("n");
    let e = [1, 0, 1];
    let spki = AsDer::<PublicKeyX509Der>::as_der(&RsaPublicKeyComponents {
        n: &n[..],
        e: &e[..],
    })
    .expect("SPKI");
    let verify = [(
        "rfc7638".to_owned(),
        pem_encode("PUBLIC KEY", spki.as_ref()),
    )];
    let keyring = Keyring::new(
        Algorithm::Rs256,
        private_pem(Algorithm::Rs256),
        None,
        &verify,
    )
    .expect("keyring");
    let jwks = jwks(&keyring);
    assert_eq!(
        jwks["keys"][1]["kid"],
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn signing_kid_matches_a_thumbprint_computed_by_jsonwebtoken_from_the_pem() {
    for alg in ALGORITHMS {
        let pem = private_pem(alg).as_bytes();
        let key = match alg {
            Algorithm::Rs256 => EncodingKey::from_rsa_pem(pem),
            Algorithm::Es256 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDsa => EncodingKey::from_ed_pem(pem),
        }
        .expect("jsonwebtoken reads the key");
        let jwk = Jwk::from_encoding_key(&key, alg.jwt()).expect("jwk");
        let thumbprint = jwk.thumbprint(ThumbprintHash::SHA256).expect("thumbprint");
        assert_eq!(keyring(alg).kid(), thumbprint, "{alg}");
    }
}

#[test]
fn explicit_kid_is_used_and_must_be_visible_ascii() {
    let pem = private_pem(Algorithm::EdDsa);
    let keyring =
        Keyring::new(Algorithm::EdDsa, pem, Some("2025-01".to_owned()), &[]).expect("kid");
    assert_eq!(keyring.kid(), "2025-01");
    assert_eq!(jwks(&keyring)["keys"][0]["kid"], "2025-01");
    for bad in [
        String::new(),
        "a b".to_owned(),
        "é".to_owned(),
        "k\n".to_owned(),
        "x".repeat(129),
    ] {
        let refused = Keyring::new(Algorithm::EdDsa, pem, Some(bad.clone()), &[]);
        assert!(matches!(refused, Err(KeyError::BadKid)), "{bad:?}");
    }
}

#[test]
fn jwks_lists_signing_key_first_then_verify_keys_with_public_parameters_only() {
    let verify = [
        (
            "old-ec.pem".to_owned(),
            public_key_pem(old_private_pem(Algorithm::Es256)).expect("spki"),
        ),
        // A private key given as verify key: only its public half may be published.
        (
            "old-ed.pem".to_owned(),
            old_private_pem(Algorithm::EdDsa).to_owned(),
        ),
        (
            "old-rsa.pem".to_owned(),
            old_private_pem(Algorithm::Rs256).to_owned(),
        ),
    ];
    let keyring = Keyring::new(
        Algorithm::Rs256,
        private_pem(Algorithm::Rs256),
        None,
        &verify,
    )
    .expect("keyring");
    let jwks = jwks(&keyring);
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(jwks.as_object().expect("object").len(), 1, "only `keys`");
    assert_eq!(keys.len(), 4);
    assert_eq!(keys[0]["kid"], keyring.kid());
    let expected: [(&str, &str, &[&str]); 4] = [
        ("RSA", "RS256", &["alg", "e", "kid", "kty", "n", "use"]),
        (
            "EC",
            "ES256",
            &["alg", "crv", "kid", "kty", "use", "x", "y"],
        ),
        ("OKP", "EdDSA", &["alg", "crv", "kid", "kty", "use", "x"]),
        ("RSA", "RS256", &["alg", "e", "kid", "kty", "n", "use"]),
    ];
    for (key, (kty, alg, members)) in keys.iter().zip(expected) {
        let mut names: Vec<&str> = key
            .as_object()
            .expect("jwk")
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, members, "{key}");
        assert_eq!(key["kty"], kty);
        assert_eq!(key["alg"], alg);
        assert_eq!(key["use"], "sig");
        let jwk: Jwk = serde_json::from_value(key.clone()).expect("a JWK jsonwebtoken reads");
        DecodingKey::from_jwk(&jwk).expect("usable as a verification key");
        let thumbprint = jwk.thumbprint(ThumbprintHash::SHA256).expect("thumbprint");
        assert_eq!(
            key["kid"],
            thumbprint.as_str(),
            "verify key ids are thumbprints"
        );
    }
    assert_eq!(keys[1]["crv"], "P-256");
    assert_eq!(keys[2]["crv"], "Ed25519");
    let text = String::from_utf8(keyring.jwks_json().to_vec()).expect("utf-8");
    for private in [
        "\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\"", "\"k\"", "PRIVATE",
    ] {
        assert!(!text.contains(private), "JWKS leaks {private}: {text}");
    }
}

#[test]
fn verify_key_given_as_private_key_publishes_the_same_key_as_its_public_pem() {
    for alg in ALGORITHMS {
        let private = old_private_pem(alg);
        let from_private = [("k".to_owned(), private.to_owned())];
        let from_public = [("k".to_owned(), public_key_pem(private).expect("spki"))];
        let signing = private_pem(Algorithm::EdDsa);
        let a = Keyring::new(Algorithm::EdDsa, signing, None, &from_private).expect("private");
        let b = Keyring::new(Algorithm::EdDsa, signing, None, &from_public).expect("public");
        assert_eq!(jwks(&a), jwks(&b), "{alg}");
        let own = Keyring::new(alg, private, None, &[]).expect("as signing key");
        assert_eq!(jwks(&a)["keys"][1]["kid"], own.kid(), "{alg}");
    }
}

#[test]
fn public_key_pem_is_spki_and_idempotent() {
    for alg in ALGORITHMS {
        let public = public_key_pem(private_pem(alg)).expect("public");
        assert!(
            public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{public}"
        );
        assert!(public.lines().all(|line| line.len() <= 64), "{public}");
        assert_eq!(public_key_pem(&public).expect("again"), public);
    }
}

#[test]
fn debug_output_shows_ids_but_no_key_material() {
    let verify = [(
        "old".to_owned(),
        old_private_pem(Algorithm::Rs256).to_owned(),
    )];
    let keyring = Keyring::new(
        Algorithm::Rs256,
        private_pem(Algorithm::Rs256),
        None,
        &verify,
    )
    .expect("keyring");
    let debug = format!("{keyring:?}");
    assert!(debug.contains(keyring.kid()), "{debug}");
    let n = jwks(&keyring)["keys"][0]["n"]
        .as_str()
        .expect("n")
        .to_owned();
    assert!(!debug.contains(&n[..40]), "{debug}");
    for pem in [
        private_pem(Algorithm::Rs256),
        old_private_pem(Algorithm::Rs256),
    ] {
        let line = pem.lines().nth(3).expect("a body line");
        assert!(!debug.contains(line), "{debug}");
    }
}

#[path = "keys_refusal_tests.rs"]
mod refusals;

//! Keys tollgate must refuse, and the messages that tell an operator why.

use std::mem::discriminant;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, RsaPublicKeyComponents};
use base64::Engine as _;

use super::super::der::pem_encode;
use super::super::{Algorithm, KeyError, Keyring, public_key_pem};
use super::{old_private_pem, private_pem};

fn error(alg: Algorithm, pem: &str, verify: &[(String, String)]) -> String {
    Keyring::new(alg, pem, None, verify)
        .expect_err("must be refused")
        .to_string()
}

fn fake_pem(label: &str) -> String {
    format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n")
}

#[test]
fn signing_key_of_another_algorithm_is_refused_by_name() {
    let cases = [
        (
            Algorithm::Es256,
            Algorithm::Rs256,
            "key is EC P-256 but algorithm is RS256",
        ),
        (
            Algorithm::Rs256,
            Algorithm::Es256,
            "key is RSA but algorithm is ES256",
        ),
        (
            Algorithm::EdDsa,
            Algorithm::Es256,
            "key is Ed25519 but algorithm is ES256",
        ),
        (
            Algorithm::Rs256,
            Algorithm::EdDsa,
            "key is RSA but algorithm is EdDSA",
        ),
    ];
    for (key, configured, message) in cases {
        assert_eq!(error(configured, private_pem(key), &[]), message);
    }
}

#[test]
fn signing_key_in_the_wrong_format_is_refused_with_a_fix() {
    let public = public_key_pem(private_pem(Algorithm::Es256)).expect("spki");
    let message = error(Algorithm::Es256, &public, &[]);
    assert!(
        message.starts_with("not a PKCS#8 private key: found PUBLIC KEY"),
        "{message}"
    );
    for label in ["RSA PRIVATE KEY", "EC PRIVATE KEY"] {
        let message = error(Algorithm::Rs256, &fake_pem(label), &[]);
        assert!(
            message.starts_with(&format!("not a PKCS#8 private key: found {label}")),
            "{message}"
        );
        assert!(
            message.contains("openssl pkcs8 -topk8 -nocrypt"),
            "{message}"
        );
    }
    let message = error(Algorithm::Rs256, &fake_pem("CERTIFICATE"), &[]);
    assert!(message.contains("found CERTIFICATE"), "{message}");
}

#[test]
fn unreadable_pem_is_refused() {
    let pem = private_pem(Algorithm::EdDsa);
    let encrypted = fake_pem("ENCRYPTED PRIVATE KEY");
    let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    let two = format!("{pem}{}", old_private_pem(Algorithm::EdDsa));
    let cut = &pem[..pem.len() - 10];
    let not_base64 = "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";
    let bad_pem = KeyError::BadPem(String::new());
    let cases = [
        ("", &KeyError::NoPem),
        ("just some text", &KeyError::NoPem),
        (&encrypted, &KeyError::Encrypted),
        (legacy, &KeyError::Encrypted),
        (&two, &KeyError::SeveralKeys),
        (cut, &bad_pem),
        (not_base64, &bad_pem),
    ];
    for (text, expected) in cases {
        let refused = Keyring::new(Algorithm::EdDsa, text, None, &[]).expect_err(text);
        assert_eq!(
            discriminant(&refused),
            discriminant(expected),
            "{text:?} gave {refused:?}"
        );
    }
    // `openssl ecparam -genkey` writes the curve parameters in front of the key: that is fine.
    let with_params = format!(
        "{}{}",
        fake_pem("EC PARAMETERS"),
        private_pem(Algorithm::Es256)
    );
    Keyring::new(Algorithm::Es256, &with_params, None, &[]).expect("EC PARAMETERS is skipped");
}

#[test]
fn corrupted_key_bytes_are_refused() {
    let pem = private_pem(Algorithm::Es256);
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("der");
    let last = der.len() - 1;
    der[last] ^= 0x01; // inside the embedded public key, which no longer matches the private one
    let broken = pem_encode("PRIVATE KEY", &der);
    assert!(Keyring::new(Algorithm::Es256, &broken, None, &[]).is_err());
    der.truncate(last);
    let truncated = pem_encode("PRIVATE KEY", &der);
    assert!(Keyring::new(Algorithm::Es256, &truncated, None, &[]).is_err());
}

#[test]
fn unsupported_key_types_are_refused_by_name() {
    let p384 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &SystemRandom::new())
        .expect("P-384");
    let p384 = pem_encode("PRIVATE KEY", p384.as_ref());
    let message = error(Algorithm::Es256, &p384, &[]);
    assert!(
        message.starts_with("key is EC P-384, which tollgate does not support"),
        "{message}"
    );
    let verify = [("old-p384.pem".to_owned(), p384)];
    let message = error(Algorithm::EdDsa, private_pem(Algorithm::EdDsa), &verify);
    assert!(
        message.starts_with("verify key old-p384.pem: key is EC P-384"),
        "{message}"
    );
}

#[test]
fn small_rsa_verify_key_is_refused() {
    // aws-lc-rs accepts a 1024-bit public key; RS256 verification would then fail every token.
    let mut n = [0xc5; 128];
    n[127] = 0x01;
    let e = [1, 0, 1];
    let spki = AsDer::<PublicKeyX509Der>::as_der(&RsaPublicKeyComponents {
        n: &n[..],
        e: &e[..],
    })
    .expect("SPKI");
    let verify = [(
        "small.pem".to_owned(),
        pem_encode("PUBLIC KEY", spki.as_ref()),
    )];
    let message = error(Algorithm::EdDsa, private_pem(Algorithm::EdDsa), &verify);
    assert_eq!(
        message,
        "verify key small.pem: RSA key has 1024 bits; RS256 needs 2048 to 8192"
    );
}

#[test]
fn verify_key_errors_name_the_key() {
    let signing = private_pem(Algorithm::Rs256);
    let cases = [
        (
            fake_pem("CERTIFICATE"),
            "found CERTIFICATE (a certificate); extract its key",
        ),
        (fake_pem("RSA PUBLIC KEY"), "found RSA PUBLIC KEY (PKCS#1)"),
        ("nothing".to_owned(), "no PEM key found"),
        (public_key_pem(signing).expect("spki"), "already taken"),
    ];
    for (pem, fragment) in cases {
        let verify = [("keys/old.pem".to_owned(), pem)];
        let message = error(Algorithm::Rs256, signing, &verify);
        assert!(
            message.starts_with("verify key keys/old.pem: "),
            "{message}"
        );
        assert!(message.contains(fragment), "{message}");
    }
    let twice = [
        (
            "a.pem".to_owned(),
            old_private_pem(Algorithm::Es256).to_owned(),
        ),
        (
            "b.pem".to_owned(),
            public_key_pem(old_private_pem(Algorithm::Es256)).expect("spki"),
        ),
    ];
    let message = error(Algorithm::Rs256, signing, &twice);
    assert!(message.starts_with("verify key b.pem: key id"), "{message}");
}

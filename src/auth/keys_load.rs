//! Loading key material with aws-lc-rs: the signing key pair and each key's public half.
//!
//! Every key is parsed and checked once, here, so that a bad key fails the configuration load
//! and signing or verifying never has to parse key bytes again.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents, RsaSubjectPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
    RSAKeyParameters, RSAKeyType, ThumbprintHash,
};

use super::der::{self, KeyKind};
use super::{Algorithm, KeyError};

/// The private key that signs, parsed once so signing never re-reads key material.
pub(super) enum SigningKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl SigningKey {
    /// Signs `message` with the algorithm this key was loaded for.
    pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match self {
            SigningKey::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(|_| KeyError::Crypto("RSA signing failed"))?;
                Ok(signature)
            }
            SigningKey::Ec(pair) => pair
                .sign(&rng, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| KeyError::Crypto("ECDSA signing failed")),
            SigningKey::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// The public parameters of one key, in the form JWK and jsonwebtoken want them.
pub(super) enum PublicHalf {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { x: Vec<u8>, y: Vec<u8> },
    Ed { x: Vec<u8> },
}

impl PublicHalf {
    pub(super) fn algorithm(&self) -> Algorithm {
        match self {
            PublicHalf::Rsa { .. } => Algorithm::Rs256,
            PublicHalf::Ec { .. } => Algorithm::Es256,
            PublicHalf::Ed { .. } => Algorithm::EdDsa,
        }
    }

    fn rsa(public: &RsaSubjectPublicKey) -> Result<PublicHalf, KeyError> {
        let parts = RsaPublicKeyComponents::<Vec<u8>>::from(public);
        // aws-lc-rs strips leading zeros, so this is the modulus size in bits.
        let bits = parts.n.first().map_or(0, |top| {
            (parts.n.len() - 1) * 8 + (8 - top.leading_zeros() as usize)
        });
        if !(2048..=8192).contains(&bits) {
            return Err(KeyError::RsaSize { bits });
        }
        Ok(PublicHalf::Rsa {
            n: parts.n,
            e: parts.e,
        })
    }

    fn ec(point: &[u8]) -> Result<PublicHalf, KeyError> {
        // JWK needs both coordinates, so only the uncompressed SEC1 form (0x04 || x || y) will do.
        match point.split_first() {
            Some((0x04, xy)) if xy.len() == 64 => {
                let (x, y) = xy.split_at(32);
                Ok(PublicHalf::Ec {
                    x: x.to_vec(),
                    y: y.to_vec(),
                })
            }
            _ => Err(KeyError::Invalid {
                key: "EC P-256",
                reason: "public point is not in uncompressed form".to_owned(),
            }),
        }
    }

    pub(super) fn decoding_key(&self) -> DecodingKey {
        match self {
            PublicHalf::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
            PublicHalf::Ec { x, y } => DecodingKey::from_ec_der(&uncompressed_point(x, y)),
            PublicHalf::Ed { x } => DecodingKey::from_ed_der(x),
        }
    }

    /// The JWK with public parameters only; `kid` is left out for thumbprinting.
    pub(super) fn jwk(&self, kid: Option<&str>) -> Jwk {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let algorithm = match self {
            PublicHalf::Rsa { n, e } => AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: b64(n),
                e: b64(e),
            }),
            PublicHalf::Ec { x, y } => {
                AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: b64(x),
                    y: b64(y),
                })
            }
            PublicHalf::Ed { x } => AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: b64(x),
            }),
        };
        let common = CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(self.algorithm().jwt().into()),
            key_id: kid.map(str::to_owned),
            ..CommonParameters::default()
        };
        Jwk { common, algorithm }
    }

    /// RFC 7638 SHA-256 thumbprint, base64url without padding.
    pub(super) fn thumbprint(&self) -> Result<String, KeyError> {
        self.jwk(None)
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| KeyError::Crypto("key thumbprint failed"))
    }

    pub(super) fn spki_der(&self) -> Result<Vec<u8>, KeyError> {
        let der = match self {
            PublicHalf::Rsa { n, e } => {
                AsDer::<PublicKeyX509Der>::as_der(&RsaPublicKeyComponents {
                    n: &n[..],
                    e: &e[..],
                })
            }
            PublicHalf::Ec { x, y } => {
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, uncompressed_point(x, y))
                    .map_err(|_| KeyError::Crypto("EC public key rejected"))?
                    .as_der()
            }
            PublicHalf::Ed { x } => ParsedPublicKey::new(&ED25519, x)
                .map_err(|_| KeyError::Crypto("Ed25519 public key rejected"))?
                .as_der(),
        };
        der.map(|der| der.as_ref().to_vec())
            .map_err(|_| KeyError::Crypto("public key encoding failed"))
    }
}

/// The SEC1 uncompressed encoding of an EC point, the form aws-lc-rs and jsonwebtoken take.
fn uncompressed_point(x: &[u8], y: &[u8]) -> Vec<u8> {
    [&[0x04], x, y].concat()
}

/// Parses a PKCS#8 private key; `expected` refuses a key of another type.
pub(super) fn load_private(
    pkcs8: &[u8],
    expected: Option<Algorithm>,
) -> Result<(SigningKey, PublicHalf), KeyError> {
    let alg = match der::pkcs8_kind(pkcs8)? {
        KeyKind::Unsupported(key) => return Err(KeyError::Unsupported { key }),
        KeyKind::Supported(alg) => alg,
    };
    if let Some(expected) = expected.filter(|expected| *expected != alg) {
        return Err(KeyError::Mismatch {
            key: alg.key_name(),
            alg: expected,
        });
    }
    let invalid = |reason: &dyn fmt::Display| KeyError::Invalid {
        key: alg.key_name(),
        reason: reason.to_string(),
    };
    match alg {
        Algorithm::Rs256 => {
            let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| invalid(&e))?;
            let public = PublicHalf::rsa(pair.public_key())?;
            Ok((SigningKey::Rsa(pair), public))
        }
        Algorithm::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                .map_err(|e| invalid(&e))?;
            let public = PublicHalf::ec(pair.public_key().as_ref())?;
            Ok((SigningKey::Ec(pair), public))
        }
        Algorithm::EdDsa => {
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| invalid(&e))?;
            let x = pair.public_key().as_ref().to_vec();
            Ok((SigningKey::Ed(pair), PublicHalf::Ed { x }))
        }
    }
}

/// Parses an SPKI public key, checking it with aws-lc-rs before trusting its bytes.
fn load_public(spki: &[u8]) -> Result<PublicHalf, KeyError> {
    let (kind, key_bits) = der::spki_parts(spki)?;
    let alg = match kind {
        KeyKind::Unsupported(key) => return Err(KeyError::Unsupported { key }),
        KeyKind::Supported(alg) => alg,
    };
    let invalid = |reason: &dyn fmt::Display| KeyError::Invalid {
        key: alg.key_name(),
        reason: reason.to_string(),
    };
    match alg {
        Algorithm::Rs256 => {
            PublicHalf::rsa(&RsaSubjectPublicKey::from_der(spki).map_err(|e| invalid(&e))?)
        }
        Algorithm::Es256 => {
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, spki).map_err(|e| invalid(&e))?;
            PublicHalf::ec(key_bits)
        }
        Algorithm::EdDsa => {
            ParsedPublicKey::new(&ED25519, spki).map_err(|e| invalid(&e))?;
            Ok(PublicHalf::Ed {
                x: key_bits.to_vec(),
            })
        }
    }
}

/// The public half of a verify key given as SPKI PEM or PKCS#8 private key PEM.
pub(super) fn verify_key_from_pem(pem: &str) -> Result<PublicHalf, KeyError> {
    let (label, body) = der::single_block(pem)?;
    match label.as_str() {
        "PUBLIC KEY" => load_public(&body),
        "PRIVATE KEY" => load_private(&body, None).map(|(_, public)| public),
        _ => Err(KeyError::NotPublicKey {
            hint: der::hint(&label),
            found: label,
        }),
    }
}

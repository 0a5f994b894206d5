//! Token keys: loading PEM keys, key ids, and the JWKS that publishes them.
//!
//! A [`Keyring`] is built once per configuration load. It holds the one private key that
//! signs, the public half of every key that may still verify a live token (found by `kid`
//! and nothing else), and the JWKS document. aws-lc-rs parses and checks every key here, at
//! load time, so a bad key fails the configuration instead of failing each request later.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;

#[path = "keys_der.rs"]
mod der;
#[path = "keys_load.rs"]
mod load;

use load::{SigningKey, load_private, verify_key_from_pem};

/// A token signature algorithm tollgate signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys of 2048 to 8192 bits).
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl Algorithm {
    /// The JOSE name (`RS256`, `ES256`, `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// Reads a JOSE name; exact spelling only, as in the config file.
    pub fn parse(s: &str) -> Option<Algorithm> {
        [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa]
            .into_iter()
            .find(|alg| alg.as_str() == s)
    }

    /// The same algorithm as jsonwebtoken names it.
    pub(crate) fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    /// The kind of key this algorithm needs, as an operator would name it.
    fn key_name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RSA",
            Algorithm::Es256 => "EC P-256",
            Algorithm::EdDsa => "Ed25519",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Nothing that looks like a PEM key block.
    #[error("no PEM key found (expected a -----BEGIN PRIVATE KEY----- or PUBLIC KEY block)")]
    NoPem,
    /// A PEM block is cut short or is not base64.
    #[error("PEM is not valid: {0}")]
    BadPem(String),
    /// More than one key in one PEM text.
    #[error("PEM holds more than one key; give one key per file")]
    SeveralKeys,
    /// A password-protected private key.
    #[error(
        "encrypted private keys are not supported; store the key unencrypted in a file only tollgate can read"
    )]
    Encrypted,
    /// A signing key in another format than unencrypted PKCS#8.
    #[error("not a PKCS#8 private key: found {found}{hint}")]
    NotPkcs8 {
        /// The PEM label that was found.
        found: String,
        /// How to fix it, if there is an easy way.
        hint: &'static str,
    },
    /// A verify key in a format that is neither SPKI nor PKCS#8.
    #[error("not a public key (PUBLIC KEY) or PKCS#8 private key: found {found}{hint}")]
    NotPublicKey {
        /// The PEM label that was found.
        found: String,
        /// How to fix it, if there is an easy way.
        hint: &'static str,
    },
    /// A key type tollgate does not sign or verify with.
    #[error(
        "key is {key}, which tollgate does not support; use RSA (RS256), EC P-256 (ES256) or Ed25519 (EdDSA)"
    )]
    Unsupported {
        /// What the key is.
        key: &'static str,
    },
    /// The signing key does not fit the configured algorithm.
    #[error("key is {key} but algorithm is {alg}")]
    Mismatch {
        /// What the key is.
        key: &'static str,
        /// The configured algorithm.
        alg: Algorithm,
    },
    /// The key's contents were rejected by the crypto library.
    #[error("{key} key is not valid: {reason}")]
    Invalid {
        /// What the key claims to be.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An RSA key too small (or too large) for RS256.
    #[error("RSA key has {bits} bits; RS256 needs 2048 to 8192")]
    RsaSize {
        /// Size of the modulus.
        bits: usize,
    },
    /// An explicit key id tollgate will not put in a header.
    #[error("key id must be 1 to 128 visible ASCII characters")]
    BadKid,
    /// Two keys with the same key id.
    #[error("key id {kid} is already taken by the signing key or an earlier verify key")]
    DuplicateKid {
        /// The key id both keys have.
        kid: String,
    },
    /// A problem with one of the verify keys.
    #[error("verify key {label}: {reason}")]
    VerifyKey {
        /// The label the caller gave this key (usually its file name).
        label: String,
        /// What is wrong with it.
        reason: Box<KeyError>,
    },
    /// The crypto library could not make, encode or use a key.
    #[error("key operation failed: {0}")]
    Crypto(&'static str),
}

/// PKCS#8 PEM of a fresh private key for `alg` (RSA 2048, P-256, Ed25519), from the OS-seeded
/// CSPRNG.
pub fn generate_private_key_pem(alg: Algorithm) -> Result<String, KeyError> {
    let rng = SystemRandom::new();
    let der = match alg {
        Algorithm::Rs256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(|_| KeyError::Crypto("RSA key generation failed"))?;
            let der = AsDer::<Pkcs8V1Der>::as_der(&pair)
                .map_err(|_| KeyError::Crypto("RSA key encoding failed"))?;
            der.as_ref().to_vec()
        }
        Algorithm::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::Crypto("EC key generation failed"))?
            .as_ref()
            .to_vec(),
        // PKCS#8 v1, the form `openssl genpkey -algorithm ed25519` writes and every tool reads.
        Algorithm::EdDsa => Ed25519KeyPair::generate_pkcs8v1(&rng)
            .map_err(|_| KeyError::Crypto("Ed25519 key generation failed"))?
            .as_ref()
            .to_vec(),
    };
    Ok(der::pem_encode("PRIVATE KEY", &der))
}

/// SPKI `PUBLIC KEY` PEM of a key given as PKCS#8 private key PEM or as public key PEM.
pub fn public_key_pem(pem: &str) -> Result<String, KeyError> {
    let public = verify_key_from_pem(pem)?;
    Ok(der::pem_encode("PUBLIC KEY", &public.spki_der()?))
}

/// A key that may verify tokens, as jsonwebtoken needs it (built once).
pub(super) struct VerifyKey {
    /// The only algorithm a token naming this key may use.
    pub(super) algorithm: Algorithm,
    /// The public key in jsonwebtoken's form.
    pub(super) key: DecodingKey,
}

/// The signing key plus every key that may still verify; built once per configuration load.
pub struct Keyring {
    algorithm: Algorithm,
    kid: String,
    signer: SigningKey,
    /// base64url of the JOSE header, which is the same for every token this keyring signs.
    header: String,
    verifiers: HashMap<String, VerifyKey>,
    jwks: Bytes,
}

impl Keyring {
    /// Loads the signing key (PKCS#8 PEM of `alg`) and the older keys in `verify_pems`.
    ///
    /// `kid` overrides the signing key's id, which is otherwise its RFC 7638 thumbprint.
    /// `verify_pems` are (label for errors, PEM) pairs of SPKI public keys or PKCS#8 private
    /// keys; each one's algorithm comes from the key itself and its id is its thumbprint.
    pub fn new(
        alg: Algorithm,
        signing_pem: &str,
        kid: Option<String>,
        verify_pems: &[(String, String)],
    ) -> Result<Keyring, KeyError> {
        let (label, body) = der::single_block(signing_pem)?;
        if label != "PRIVATE KEY" {
            return Err(KeyError::NotPkcs8 {
                hint: der::hint(&label),
                found: label,
            });
        }
        let (signer, public) = load_private(&body, Some(alg))?;
        let kid = match kid {
            Some(kid)
                if kid.len() <= 128
                    && !kid.is_empty()
                    && kid.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                kid
            }
            Some(_) => return Err(KeyError::BadKid),
            None => public.thumbprint()?,
        };

        let mut keys = vec![(kid.clone(), public)];
        for (label, pem) in verify_pems {
            let in_label = |reason| KeyError::VerifyKey {
                label: label.clone(),
                reason: Box::new(reason),
            };
            let public = verify_key_from_pem(pem).map_err(in_label)?;
            let id = public.thumbprint().map_err(in_label)?;
            if keys.iter().any(|(taken, _)| *taken == id) {
                return Err(in_label(KeyError::DuplicateKid { kid: id }));
            }
            keys.push((id, public));
        }

        let set = JwkSet {
            keys: keys
                .iter()
                .map(|(id, public)| public.jwk(Some(id)))
                .collect(),
        };
        let jwks =
            serde_json::to_vec(&set).map_err(|_| KeyError::Crypto("JWKS encoding failed"))?;
        let header = serde_json::to_vec(&JoseHeader {
            alg: alg.as_str(),
            typ: "at+jwt",
            kid: &kid,
        })
        .map_err(|_| KeyError::Crypto("token header encoding failed"))?;
        let verifiers = keys
            .into_iter()
            .map(|(id, public)| {
                let key = VerifyKey {
                    algorithm: public.algorithm(),
                    key: public.decoding_key(),
                };
                (id, key)
            })
            .collect();

        Ok(Keyring {
            algorithm: alg,
            kid,
            signer,
            header: URL_SAFE_NO_PAD.encode(header),
            verifiers,
            jwks: Bytes::from(jwks),
        })
    }

    /// The key id put in the header of every token this keyring signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm of the signing key.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// `{"keys":[...]}` (RFC 7517): the signing key first, then each verify key; public
    /// parameters only.
    pub fn jwks_json(&self) -> &Bytes {
        &self.jwks
    }

    /// The encoded JOSE header for tokens this keyring signs.
    pub(super) fn encoded_header(&self) -> &str {
        &self.header
    }

    /// Signs a JWS signing input with the signing key.
    pub(super) fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.signer.sign(message)
    }

    /// The verify key with this key id, if the keyring has one.
    pub(super) fn verify_key(&self, kid: &str) -> Option<&VerifyKey> {
        self.verifiers.get(kid)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut verify_kids: Vec<&str> = self.verifiers.keys().map(String::as_str).collect();
        verify_kids.sort_unstable();
        f.debug_struct("Keyring")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("verify_kids", &verify_kids)
            .finish_non_exhaustive()
    }
}

/// The JOSE header tollgate writes, members in the order RFC 9068 lists them.
#[derive(serde::Serialize)]
struct JoseHeader<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

#[cfg(test)]
#[path = "keys_tests.rs"]
pub(crate) mod tests;

//! Just enough PEM and DER to tell what a key file holds before aws-lc-rs parses it.
//!
//! aws-lc-rs does the real (strict) parsing, but it only answers "rejected". Reading the PEM
//! label and the key's AlgorithmIdentifier here lets an operator hear "key is EC P-384 but
//! algorithm is ES256" or "found RSA PRIVATE KEY; convert it" instead.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{Algorithm, KeyError};

/// What a key's AlgorithmIdentifier says it is.
pub(super) enum KeyKind {
    /// A key for one of the algorithms tollgate uses.
    Supported(Algorithm),
    /// Some other key, named for the error message.
    Unsupported(&'static str),
}

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

// Object identifiers, as the content bytes of their DER encoding.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_DSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_SECP256K1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x0a];
const OID_X25519: &[u8] = &[0x2b, 0x65, 0x6e];
const OID_X448: &[u8] = &[0x2b, 0x65, 0x6f];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];

/// PEM text of `der` under `label`, 64 base64 characters a line.
pub(super) fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for (i, c) in body.chars().enumerate() {
        if i > 0 && i % 64 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push_str("\n-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// The label and body of the one key block in `pem`.
///
/// `EC PARAMETERS` blocks are skipped because `openssl ecparam -genkey` writes one in front
/// of the key. Any other second block is refused: which one was meant would be a guess.
pub(super) fn single_block(pem: &str) -> Result<(String, Vec<u8>), KeyError> {
    let mut found: Option<(String, Vec<u8>)> = None;
    let mut lines = pem.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        loop {
            match lines.next() {
                None => return Err(KeyError::BadPem(format!("{label} block has no END line"))),
                Some(line) if line == end => break,
                // RFC 1421 headers only appear in legacy password-protected keys.
                Some(line) if line.contains(':') => return Err(KeyError::Encrypted),
                Some(line) => body.push_str(line),
            }
        }
        if label == "EC PARAMETERS" {
            continue;
        }
        if label == "ENCRYPTED PRIVATE KEY" {
            return Err(KeyError::Encrypted);
        }
        if found.is_some() {
            return Err(KeyError::SeveralKeys);
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|_| KeyError::BadPem(format!("{label} block is not valid base64")))?;
        found = Some((label.to_owned(), der));
    }
    found.ok_or(KeyError::NoPem)
}

/// How to turn a key with this PEM label into what tollgate reads, if there is an easy way.
pub(super) fn hint(label: &str) -> &'static str {
    match label {
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
            " (a traditional OpenSSL key); convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY`"
        }
        "PUBLIC KEY" => " (a public key); the signing key must be the private key",
        "RSA PUBLIC KEY" => {
            " (PKCS#1); convert it with `openssl rsa -RSAPublicKey_in -pubout -in KEY`"
        }
        "CERTIFICATE" => " (a certificate); extract its key with `openssl x509 -pubkey -noout`",
        "OPENSSH PRIVATE KEY" => {
            " (OpenSSH format); convert it with `ssh-keygen -p -m PKCS8 -N '' -f KEY`"
        }
        _ => "",
    }
}

/// What key a PKCS#8 `PrivateKeyInfo` holds.
pub(super) fn pkcs8_kind(pkcs8: &[u8]) -> Result<KeyKind, KeyError> {
    let not_pkcs8 = || KeyError::Invalid {
        key: "PKCS#8",
        reason: "not a DER PrivateKeyInfo".to_owned(),
    };
    let (info, _) = element(pkcs8, TAG_SEQUENCE).ok_or_else(not_pkcs8)?;
    let (_version, rest) = element(info, TAG_INTEGER).ok_or_else(not_pkcs8)?;
    let (algorithm_id, _) = element(rest, TAG_SEQUENCE).ok_or_else(not_pkcs8)?;
    key_kind(algorithm_id).ok_or_else(not_pkcs8)
}

/// What key an SPKI `SubjectPublicKeyInfo` holds, and its `subjectPublicKey` bytes.
pub(super) fn spki_parts(spki: &[u8]) -> Result<(KeyKind, &[u8]), KeyError> {
    let not_spki = || KeyError::Invalid {
        key: "public",
        reason: "not a DER SubjectPublicKeyInfo".to_owned(),
    };
    let (info, _) = element(spki, TAG_SEQUENCE).ok_or_else(not_spki)?;
    let (algorithm_id, rest) = element(info, TAG_SEQUENCE).ok_or_else(not_spki)?;
    let (bits, _) = element(rest, TAG_BIT_STRING).ok_or_else(not_spki)?;
    // A key is a whole number of bytes: the "unused bits" count must be zero.
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err(not_spki()),
    };
    Ok((key_kind(algorithm_id).ok_or_else(not_spki)?, key))
}

/// Reads an AlgorithmIdentifier's OID (and, for EC, its named curve).
fn key_kind(algorithm_id: &[u8]) -> Option<KeyKind> {
    let (oid, parameters) = element(algorithm_id, TAG_OID)?;
    Some(match oid {
        OID_RSA => KeyKind::Supported(Algorithm::Rs256),
        OID_EC => match element(parameters, TAG_OID).map(|(curve, _)| curve) {
            Some(OID_P256) => KeyKind::Supported(Algorithm::Es256),
            Some(OID_P384) => KeyKind::Unsupported("EC P-384"),
            Some(OID_P521) => KeyKind::Unsupported("EC P-521"),
            Some(OID_SECP256K1) => KeyKind::Unsupported("EC secp256k1"),
            _ => KeyKind::Unsupported("EC on an unrecognised curve"),
        },
        OID_ED25519 => KeyKind::Supported(Algorithm::EdDsa),
        OID_ED448 => KeyKind::Unsupported("Ed448"),
        OID_X25519 | OID_X448 => KeyKind::Unsupported("a key-agreement key (X25519/X448)"),
        OID_RSA_PSS => KeyKind::Unsupported("RSA-PSS-only"),
        OID_DSA => KeyKind::Unsupported("DSA"),
        _ => KeyKind::Unsupported("of an unrecognised type"),
    })
}

/// Splits one DER element with tag `tag` off the front of `input`: (contents, rest).
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form; three length bytes (16 MiB) is far more than any key needs.
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 3 || rest.len() < count {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(count);
        let len = len_bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

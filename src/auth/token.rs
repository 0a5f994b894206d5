//! Access tokens (SPEC 4.1): signing, and verification that pins algorithm and key by `kid`.
//!
//! The header is read and judged before any key is touched: members that point at outside
//! key material are refused, `typ` must say this is an access token, and the `kid` picks the
//! one key (and so the one algorithm) the token may use. jsonwebtoken then checks signature,
//! issuer and audience; time is checked here against the caller's clock.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::keys::{Keyring, VerifyKey};

/// Longest token verify will look at; tollgate's own are well under 2 KiB even with RSA 8192.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Header members that would name key material outside the keyring (or extensions tollgate
/// does not implement). Nothing in a token may make tollgate fetch or trust a key it was not
/// configured with, so their mere presence refuses the token.
const FORBIDDEN_HEADER_MEMBERS: [&str; 5] = ["jku", "x5u", "jwk", "x5c", "crit"];

/// Claims of an access token (SPEC 4.1). All required; wrong JSON types fail to deserialize.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessClaims {
    /// Issuer (`tokens.issuer`).
    pub iss: String,
    /// User id, as a decimal string.
    pub sub: String,
    /// Audience (`tokens.audience`, or the client id of a client app).
    pub aud: String,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Not before, unix seconds.
    pub nbf: u64,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Token id.
    pub jti: String,
    /// Session key (48 characters `[A-Za-z0-9]`).
    pub sid: String,
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// The only accepted `iss`.
    pub issuer: String,
    /// The only accepted `aud`.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf` (whole seconds count).
    pub leeway: Duration,
}

/// Why a token was refused (or could not be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON, or too long.
    #[error("token is not a well-formed JWS")]
    Malformed,
    /// The header has `jku`, `x5u`, `jwk`, `x5c` or `crit`.
    #[error("token header names outside key material")]
    ForbiddenHeader,
    /// `typ` is missing or is not `at+jwt`.
    #[error("token is not an access token (typ)")]
    WrongType,
    /// `kid` is missing or names no key in the keyring.
    #[error("token key id is missing or unknown")]
    UnknownKey,
    /// `alg` is not the algorithm of the key `kid` names.
    #[error("token algorithm does not match its key")]
    WrongAlgorithm,
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// A claim is missing, of the wrong JSON type, or malformed.
    #[error("token claims are missing or malformed")]
    BadClaims,
    /// `exp` (plus leeway) has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` (minus leeway) has not come yet.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` is not the expected audience.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// Signing failed; the text says why.
    #[error("could not sign token: {0}")]
    Signing(String),
}

impl AccessClaims {
    /// Checks `exp` and `nbf` against `now` with the rules' leeway.
    pub fn check_time(&self, rules: &TokenRules, now: u64) -> Result<(), TokenError> {
        let leeway = rules.leeway.as_secs();
        if self.exp.saturating_add(leeway) <= now {
            return Err(TokenError::Expired);
        }
        if self.nbf > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

/// A random `jti` (128 bits, base64url).
///
/// An error rather than a panic in the (practically impossible) case that the OS random
/// source fails, since this runs on request paths.
pub fn new_token_id() -> Result<String, TokenError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| TokenError::Signing(format!("OS random source failed: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl Keyring {
    /// Compact JWS with header {alg, typ:"at+jwt", kid}.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        // A token that verify would refuse is a bug in the caller; say so here, not later.
        if !is_user_id(&claims.sub) || !is_session_key(&claims.sid) {
            return Err(TokenError::Signing(
                "sub must be a decimal user id and sid a 48-character session key".to_owned(),
            ));
        }
        let payload = serde_json::to_vec(claims).map_err(|e| TokenError::Signing(e.to_string()))?;
        let mut token = String::with_capacity(1024);
        token.push_str(self.encoded_header());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self
            .sign_message(token.as_bytes())
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }

    /// Full verification at time `now` (unix seconds, from the caller's injectable clock).
    pub fn verify(
        &self,
        token: &str,
        rules: &TokenRules,
        now: u64,
    ) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let key = self.pinned_key(header)?;
        // jsonwebtoken reads the header again with its own types; make sure it agrees it is
        // a header, so a failure there is not mistaken for a claims problem below.
        decode_header(token).map_err(|_| TokenError::Malformed)?;

        let mut validation = Validation::new(key.algorithm.jwt());
        validation.set_issuer(&[&rules.issuer]);
        validation.set_audience(&[&rules.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Time comes from the caller's clock and is checked below; jsonwebtoken would read
        // the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let claims = decode::<AccessClaims>(token, &key.key, &validation)
            .map_err(|e| refusal(e.kind()))?
            .claims;

        claims.check_time(rules, now)?;
        if !is_user_id(&claims.sub) || !is_session_key(&claims.sid) {
            return Err(TokenError::BadClaims);
        }
        Ok(claims)
    }

    /// Judges the header and returns the one key (and so algorithm) the token may use.
    ///
    /// Members naming outside key material refuse the token outright, `typ` must say it is an
    /// access token, and `kid` is only ever a lookup key into this keyring.
    fn pinned_key(&self, encoded: &str) -> Result<&VerifyKey, TokenError> {
        let header = read_header(encoded)?;

        if FORBIDDEN_HEADER_MEMBERS
            .iter()
            .any(|name| header.contains_key(*name))
        {
            return Err(TokenError::ForbiddenHeader);
        }
        match header.get("typ").and_then(Value::as_str) {
            Some(typ)
                if typ.eq_ignore_ascii_case("at+jwt")
                    || typ.eq_ignore_ascii_case("application/at+jwt") => {}
            _ => return Err(TokenError::WrongType),
        }
        let key = header
            .get("kid")
            .and_then(Value::as_str)
            .and_then(|kid| self.verify_key(kid))
            .ok_or(TokenError::UnknownKey)?;
        // The key, not the token, decides the algorithm: this refuses `none`, HMAC keyed
        // with a public key, and RSA/EC confusion before any crypto runs.
        if header.get("alg").and_then(Value::as_str) != Some(key.algorithm.as_str()) {
            return Err(TokenError::WrongAlgorithm);
        }
        Ok(key)
    }
}

/// Decodes and parses the JOSE header as a JSON object.
fn read_header(encoded: &str) -> Result<Map<String, Value>, TokenError> {
    let json = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice::<HeaderMembers>(&json)
        .map(|members| members.0)
        .map_err(|_| TokenError::Malformed)
}

/// Which refusal a jsonwebtoken error stands for.
fn refusal(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => TokenError::WrongAlgorithm,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::Json(_)
        | ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidSubject => TokenError::BadClaims,
        // InvalidToken, Base64, Utf8, and whatever future versions add: refuse as malformed.
        _ => TokenError::Malformed,
    }
}

/// A user id: a decimal u64 in canonical form (no sign, no leading zeros).
fn is_user_id(sub: &str) -> bool {
    sub.bytes().all(|b| b.is_ascii_digit())
        && (sub == "0" || !sub.starts_with('0'))
        && sub.parse::<u64>().is_ok()
}

/// A session key: 48 characters `[A-Za-z0-9]` (SPEC 4.2).
fn is_session_key(sid: &str) -> bool {
    sid.len() == 48 && sid.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A JSON object read member by member, refusing a member name that appears twice: two
/// parsers may pick different copies (RFC 7515 §4 allows refusing).
struct HeaderMembers(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for HeaderMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = HeaderMembers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object without repeated members")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<HeaderMembers, A::Error> {
        let mut members = Map::new();
        while let Some((name, value)) = access.next_entry::<String, Value>()? {
            if members.insert(name, value).is_some() {
                return Err(serde::de::Error::custom("repeated header member"));
            }
        }
        Ok(HeaderMembers(members))
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;

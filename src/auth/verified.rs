//! Tokens already verified, so a client presenting the same token again costs a lookup
//! instead of a signature check. Entries hold the exact token text (equality, not a hash,
//! decides a hit) and belong to one keyring: a reload that changes keys starts a new cache.
//! Time-based checks still run on every use.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http::HeaderValue;
use quick_cache::UnitWeighter;
use quick_cache::sync::Cache;

use super::keys::Keyring;
use super::session::{IssuedToken, Session, SessionId, lookup_id};
use super::token::{AccessClaims, TokenError, TokenRules};

/// Verified tokens kept at once; a miss only costs one signature check.
const CAPACITY: usize = 16_384;

/// Bytes at the end of a token that its cache slot is chosen by.
const HASHED_TAIL: usize = 32;

/// A cache of verified tokens in front of a keyring.
pub struct VerifiedTokens {
    cache: Cache<Bytes, Arc<VerifiedToken>, UnitWeighter, TailHash>,
}

/// Hashes a token by its length and its last [`HASHED_TAIL`] bytes, which are part of its
/// signature: the tokens in the cache all verified, and no two of them share a signature.
/// A hit is still decided by comparing the whole token; only hashing every byte of a
/// token of several hundred on each request is saved. Nothing a client sends is inserted
/// unless it verified, so chosen tails cannot crowd a slot.
#[derive(Clone, Default)]
struct TailHash(foldhash::fast::RandomState);

impl BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

/// See [`TailHash`].
struct TailHasher(foldhash::fast::FoldHasher<'static>);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }

    fn write_usize(&mut self, n: usize) {
        self.0.write_usize(n);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// A token whose signature and claims checked out, with what every request needs from it
/// worked out once rather than per request.
#[derive(Debug)]
pub struct VerifiedToken {
    /// Its claims.
    pub claims: AccessClaims,
    /// The user `sub` names.
    pub user_id: u64,
    /// The store index of the session `sid` names (a SHA-256, too costly to repeat).
    pub session_id: SessionId,
    /// The token itself: the same bytes as its cache key.
    text: Bytes,
    /// What the requests presenting it found last.
    held: Mutex<Held>,
}

/// What a client presenting the same token many times in a row needs each time, kept with
/// the token so that it is not looked up again.
#[derive(Debug, Default)]
struct Held {
    /// The access token last handed out in answer to this one; given back only while
    /// current, so never later than the session's token look-up would.
    handed_out: Option<IssuedToken>,
    /// The session last found for this token's `sid`; the session store decides whether
    /// it may answer from it ([`crate::sessions::SessionStore::get_held`]).
    session: Option<Arc<Session>>,
}

impl VerifiedToken {
    fn new(claims: AccessClaims, text: Bytes) -> Result<VerifiedToken, TokenError> {
        // Verification already refused a `sub` that is not a user id.
        let user_id = claims.sub.parse().map_err(|_| TokenError::BadClaims)?;
        let session_id = lookup_id(&claims.sid);
        Ok(VerifiedToken {
            claims,
            user_id,
            session_id,
            text,
            held: Mutex::new(Held::default()),
        })
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token last handed out in answer to this one, while it is current at `now`
    /// ([`IssuedToken::is_current`]).
    pub fn handed_out(&self, now: u64, reissue_secs: u64) -> Option<IssuedToken> {
        self.held()
            .handed_out
            .as_ref()
            .filter(|t| t.is_current(now, reissue_secs))
            .cloned()
    }

    /// Records `token` as handed out in answer to this one. When it is this very token (a
    /// client presenting the token it was last given), what is kept shares this token's
    /// bytes, so a response copies bytes the cache look-up has just read.
    pub fn hand_out(&self, token: &IssuedToken) {
        let shared = (token.header.as_bytes() == self.text.as_ref())
            .then(|| HeaderValue::from_maybe_shared(self.text.clone()).ok())
            .flatten();
        let token = match shared {
            Some(header) => IssuedToken {
                header,
                signed_at: token.signed_at,
                exp: token.exp,
            },
            None => token.clone(),
        };
        self.held().handed_out = Some(token);
    }

    /// The session last found for this token ([`VerifiedToken::hold_session`]).
    pub fn held_session(&self) -> Option<Arc<Session>> {
        self.held().session.clone()
    }

    /// Keeps `session`, found for this token's `sid`, for the next request presenting it.
    pub fn hold_session(&self, session: &Arc<Session>) {
        self.held().session = Some(session.clone());
    }
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifiedTokens({} cached)", self.cache.len())
    }
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        VerifiedTokens::new()
    }
}

impl VerifiedTokens {
    /// An empty cache.
    pub fn new() -> VerifiedTokens {
        VerifiedTokens {
            cache: Cache::with(
                CAPACITY,
                CAPACITY as u64,
                UnitWeighter,
                TailHash::default(),
                Default::default(),
            ),
        }
    }

    /// The claims of `token` (as presented: bytes not yet known to be text) at `now`: from
    /// the cache when this exact token verified before, else from a full verification
    /// (whose success is then cached).
    pub fn verify(
        &self,
        keyring: &Keyring,
        token: &[u8],
        rules: &TokenRules,
        now: u64,
    ) -> Result<Arc<VerifiedToken>, TokenError> {
        if let Some(verified) = self.cache.get(token) {
            verified.claims.check_time(rules, now)?;
            return Ok(verified);
        }
        let text = std::str::from_utf8(token).map_err(|_| TokenError::Malformed)?;
        let claims = keyring.verify(text, rules, now)?;
        let text = Bytes::copy_from_slice(token);
        let verified = Arc::new(VerifiedToken::new(claims, text.clone())?);
        self.cache.insert(text, verified.clone());
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::keys::{Algorithm, generate_private_key_pem};
    use crate::auth::token::new_token_id;

    #[test]
    fn a_cached_token_still_expires_and_a_tampered_one_still_fails() {
        let pem = generate_private_key_pem(Algorithm::Es256).unwrap();
        let keyring = Keyring::new(Algorithm::Es256, &pem, None, &[]).unwrap();
        let rules = TokenRules {
            issuer: "i".into(),
            audience: "a".into(),
            leeway: Duration::from_secs(0),
        };
        let claims = AccessClaims {
            iss: "i".into(),
            sub: "1".into(),
            aud: "a".into(),
            iat: 1000,
            nbf: 1000,
            exp: 2000,
            jti: new_token_id().unwrap(),
            sid: "a".repeat(48),
        };
        let token = keyring.sign(&claims).unwrap();
        let cache = VerifiedTokens::new();
        let first = cache
            .verify(&keyring, token.as_bytes(), &rules, 1500)
            .unwrap();
        assert_eq!(first.claims, claims);
        assert_eq!(first.user_id, 1);
        assert_eq!(first.session_id, lookup_id(&claims.sid));
        assert_eq!(
            cache
                .verify(&keyring, token.as_bytes(), &rules, 1600)
                .unwrap()
                .claims,
            claims
        );
        assert_eq!(
            cache.verify(&keyring, token.as_bytes(), &rules, 2000).err(),
            Some(TokenError::Expired)
        );
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 2, 'x');
        assert!(
            cache
                .verify(&keyring, tampered.as_bytes(), &rules, 1500)
                .is_err()
        );
        assert_eq!(
            cache
                .verify(&keyring, b"\xff.\xfe.\xfd", &rules, 1500)
                .err(),
            Some(TokenError::Malformed)
        );
        // Same length and tail as the cached token (so the same slot), another header:
        // not a hit, and it does not verify.
        let mut front = token.clone().into_bytes();
        front[2] = if front[2] == b'A' { b'B' } else { b'A' };
        assert!(cache.verify(&keyring, &front, &rules, 1500).is_err());
    }

    #[test]
    fn the_token_handed_out_comes_back_only_while_current() {
        let claims = AccessClaims {
            iss: "i".into(),
            sub: "7".into(),
            aud: "a".into(),
            iat: 1000,
            nbf: 1000,
            exp: 5000,
            jti: new_token_id().unwrap(),
            sid: "a".repeat(48),
        };
        let verified = VerifiedToken::new(claims, Bytes::from_static(b"presented")).unwrap();
        assert!(verified.handed_out(1000, 60).is_none());
        let jwt = |t: Option<IssuedToken>| t.map(|t| t.jwt().to_owned());
        verified.hand_out(&IssuedToken::new("first".into(), 1000, 4600).unwrap());
        assert_eq!(jwt(verified.handed_out(1059, 60)), Some("first".into()));
        assert_eq!(
            jwt(verified.handed_out(1060, 60)),
            None,
            "older than the interval"
        );
        verified.hand_out(&IssuedToken::new("short".into(), 1100, 1130).unwrap());
        assert_eq!(jwt(verified.handed_out(1129, 60)), Some("short".into()));
        assert_eq!(jwt(verified.handed_out(1130, 60)), None, "expired");

        // Handing out the presented token itself keeps the presented bytes.
        verified.hand_out(&IssuedToken::new("presented".into(), 1200, 4800).unwrap());
        let again = verified.handed_out(1201, 60).unwrap();
        assert_eq!(again.jwt(), "presented");
        assert_eq!((again.signed_at, again.exp), (1200, 4800));
        assert_eq!(again.header.as_bytes().as_ptr(), verified.text.as_ptr());
    }

    #[test]
    fn the_hash_reads_only_the_tail_and_the_length() {
        let hash = TailHash::default();
        let a = [b"head-one.".as_slice(), &[b'x'; HASHED_TAIL]].concat();
        let b = [b"head-two.".as_slice(), &[b'x'; HASHED_TAIL]].concat();
        let c = [b"head-one".as_slice(), &[b'x'; HASHED_TAIL]].concat();
        assert_eq!(hash.hash_one(&a[..]), hash.hash_one(&b[..]));
        assert_ne!(hash.hash_one(&a[..]), hash.hash_one(&c[..]));
        let mut d = a.clone();
        *d.last_mut().unwrap() = b'y';
        assert_ne!(hash.hash_one(&a[..]), hash.hash_one(&d[..]));
    }
}

//! Server-side sessions: the random key a token's `sid` carries, the record behind it, and
//! the access token re-issued for it (signed at most once per `reissue_interval`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aws_lc_rs::digest;

/// Length of a session key.
pub const SESSION_KEY_LEN: usize = 48;
/// Longest user agent kept with a session.
const MAX_USER_AGENT: usize = 256;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A session key: 48 characters of `[A-Za-z0-9]` from the OS CSPRNG, held inline (a million
/// sessions should not mean a million extra allocations).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey([u8; SESSION_KEY_LEN]);

impl SessionKey {
    /// A fresh random key.
    pub fn generate() -> Result<SessionKey, getrandom::Error> {
        let mut key = [0u8; SESSION_KEY_LEN];
        let mut filled = 0;
        let mut buffer = [0u8; 64];
        while filled < SESSION_KEY_LEN {
            getrandom::fill(&mut buffer)?;
            // 62 symbols: reject bytes >= 248 so every symbol is equally likely.
            for &b in buffer.iter().filter(|&&b| b < 248) {
                if filled == SESSION_KEY_LEN {
                    break;
                }
                key[filled] = ALPHABET[usize::from(b % 62)];
                filled += 1;
            }
        }
        Ok(SessionKey(key))
    }

    /// Accepts a presented key only in the exact shape tollgate issues.
    pub fn parse(text: &str) -> Option<SessionKey> {
        let bytes: [u8; SESSION_KEY_LEN] = text.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_alphanumeric)
            .then_some(SessionKey(bytes))
    }

    /// The key itself (goes into the token's `sid`; never into logs).
    pub fn as_str(&self) -> &str {
        // Only ever built from ASCII alphanumerics.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// What stores index sessions by: a digest, so lookups never compare the secret itself.
    pub fn lookup_id(&self) -> SessionId {
        lookup_id(self.as_str())
    }
}

/// The digest sessions are stored under.
pub type SessionId = [u8; 32];

/// The store index of a presented session key string.
pub fn lookup_id(key: &str) -> SessionId {
    let mut id = [0u8; 32];
    id.copy_from_slice(digest::digest(&digest::SHA256, key.as_bytes()).as_ref());
    id
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(redacted)")
    }
}

/// An access token issued for a session, kept for reuse.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT, ready to go into a header (cloning shares the bytes).
    pub header: http::HeaderValue,
    /// When it was signed (unix seconds).
    pub signed_at: u64,
    /// Its `exp` (unix seconds).
    pub exp: u64,
}

impl IssuedToken {
    /// Wraps a freshly signed JWT.
    pub fn new(
        jwt: String,
        signed_at: u64,
        exp: u64,
    ) -> Result<IssuedToken, http::header::InvalidHeaderValue> {
        Ok(IssuedToken {
            header: http::HeaderValue::from_maybe_shared(bytes::Bytes::from(jwt))?,
            signed_at,
            exp,
        })
    }

    /// Whether it may still be handed out at `now`: signed less than `reissue_secs` ago,
    /// and unexpired.
    pub fn is_current(&self, now: u64, reissue_secs: u64) -> bool {
        now < self.signed_at.saturating_add(reissue_secs) && now < self.exp
    }

    /// The compact JWT text.
    pub fn jwt(&self) -> &str {
        // Built from a JWT, which is base64url and dots only.
        self.header.to_str().unwrap_or_default()
    }
}

/// One signed-in session.
#[derive(Debug)]
pub struct Session {
    /// The key the token's `sid` carries.
    pub key: SessionKey,
    /// The digest the stores index it by.
    pub id: SessionId,
    /// The signed-in user.
    pub user_id: u64,
    /// The client app the session belongs to, if not the gateway itself.
    pub client_id: Option<Box<str>>,
    /// Creation time (unix seconds).
    pub created_at: u64,
    /// The session ends here whatever happens (unix seconds).
    pub absolute_end: u64,
    /// Client address at login.
    pub ip: IpAddr,
    /// User agent at login (truncated).
    pub user_agent: Box<str>,
    last_seen: AtomicU64,
    /// Set once the store no longer holds the session (removed, expired or evicted), so a
    /// copy held elsewhere is never taken for a live session.
    ended: AtomicBool,
}

impl Session {
    /// A session created at `now`, ending at the latest at `absolute_end`.
    pub fn new(
        key: SessionKey,
        user_id: u64,
        now: u64,
        absolute_end: u64,
        ip: IpAddr,
        user_agent: &str,
    ) -> Session {
        let mut end = user_agent.len().min(MAX_USER_AGENT);
        while !user_agent.is_char_boundary(end) {
            end -= 1;
        }
        Session {
            id: key.lookup_id(),
            key,
            user_id,
            client_id: None,
            created_at: now,
            absolute_end,
            ip,
            user_agent: user_agent[..end].into(),
            last_seen: AtomicU64::new(now),
            ended: AtomicBool::new(false),
        }
    }

    /// The last time a request used this session (unix seconds).
    pub fn last_seen(&self) -> u64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// Records use at `now`; never moves backwards.
    pub fn touch(&self, now: u64) {
        // Most requests come within the second of the one before: a read leaves the
        // session's cache line shared, where an atomic update would claim it every time.
        if self.last_seen.load(Ordering::Relaxed) < now {
            self.last_seen.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Marks the session as no longer held by its store; it never becomes live again.
    pub fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }

    /// Whether the store let go of the session ([`Session::end`]).
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Whether the session has ended at `now` given the idle timeout (seconds).
    pub fn is_expired(&self, now: u64, idle_secs: u64) -> bool {
        now >= self.absolute_end || now >= self.last_seen().saturating_add(idle_secs)
    }

    /// When the session will end if not used again.
    pub fn expires_at(&self, idle_secs: u64) -> u64 {
        self.last_seen()
            .saturating_add(idle_secs)
            .min(self.absolute_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_48_alphanumerics_and_distinct() {
        let a = SessionKey::generate().unwrap();
        let b = SessionKey::generate().unwrap();
        assert_eq!(a.as_str().len(), 48);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert!(SessionKey::parse(a.as_str()).is_some());
        assert!(SessionKey::parse("short").is_none());
        assert!(SessionKey::parse(&"-".repeat(48)).is_none());
        assert_eq!(format!("{a:?}"), "SessionKey(redacted)");
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let s = Session::new(
            SessionKey::generate().unwrap(),
            1,
            1000,
            1000 + 3600,
            [127, 0, 0, 1].into(),
            "ua",
        );
        assert!(!s.is_expired(1299, 300));
        assert!(s.is_expired(1300, 300));
        s.touch(1200);
        assert!(!s.is_expired(1499, 300));
        s.touch(4500);
        assert!(s.is_expired(4600, 300), "absolute end wins over activity");
    }
}

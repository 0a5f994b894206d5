//! Server-side sessions: the random key a token's `sid` carries, the record behind it, and
//! the access token re-issued for it (signed at most once per `reissue_interval`).

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::digest;

/// Length of a session key.
pub const SESSION_KEY_LEN: usize = 48;
/// Longest user agent kept with a session.
const MAX_USER_AGENT: usize = 256;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A session key: 48 characters of `[A-Za-z0-9]` from the OS CSPRNG.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(String);

impl SessionKey {
    /// A fresh random key.
    pub fn generate() -> Result<SessionKey, getrandom::Error> {
        let mut key = String::with_capacity(SESSION_KEY_LEN);
        let mut buffer = [0u8; 64];
        while key.len() < SESSION_KEY_LEN {
            getrandom::fill(&mut buffer)?;
            // 62 symbols: reject bytes >= 248 so every symbol is equally likely.
            for &b in buffer.iter().filter(|&&b| b < 248) {
                if key.len() == SESSION_KEY_LEN {
                    break;
                }
                key.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
        Ok(SessionKey(key))
    }

    /// Accepts a presented key only in the exact shape tollgate issues.
    pub fn parse(text: &str) -> Option<SessionKey> {
        (text.len() == SESSION_KEY_LEN && text.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| SessionKey(text.to_string()))
    }

    /// The key itself (goes into the token's `sid`; never into logs).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What stores index sessions by: a digest, so lookups never compare the secret itself.
    pub fn lookup_id(&self) -> SessionId {
        lookup_id(&self.0)
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
    /// The signed-in user.
    pub user_id: u64,
    /// The client app the session belongs to, if not the gateway itself.
    pub client_id: Option<String>,
    /// Creation time (unix seconds).
    pub created_at: u64,
    /// The session ends here whatever happens (unix seconds).
    pub absolute_end: u64,
    /// Client address at login.
    pub ip: IpAddr,
    /// User agent at login (truncated).
    pub user_agent: String,
    last_seen: AtomicU64,
    token: Mutex<Option<IssuedToken>>,
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
            key,
            user_id,
            client_id: None,
            created_at: now,
            absolute_end,
            ip,
            user_agent: user_agent[..end].to_string(),
            last_seen: AtomicU64::new(now),
            token: Mutex::new(None),
        }
    }

    /// The last time a request used this session (unix seconds).
    pub fn last_seen(&self) -> u64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// Records use at `now`; never moves backwards.
    pub fn touch(&self, now: u64) {
        self.last_seen.fetch_max(now, Ordering::Relaxed);
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

    /// The token to hand out now: the kept one while it is younger than `reissue_secs`,
    /// else whatever `sign` produces (then kept). Returns the token and whether it is new.
    pub fn current_token<E>(
        &self,
        now: u64,
        reissue_secs: u64,
        sign: impl FnOnce() -> Result<IssuedToken, E>,
    ) -> Result<(IssuedToken, bool), E> {
        let mut slot = self
            .token
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(kept) = slot.as_ref() {
            let fresh = now < kept.signed_at.saturating_add(reissue_secs) && now < kept.exp;
            if fresh {
                return Ok((kept.clone(), false));
            }
        }
        let issued = sign()?;
        *slot = Some(issued.clone());
        Ok((issued, true))
    }

    /// Remembers a token signed elsewhere (at login) for reuse.
    pub fn keep_token(&self, token: IssuedToken) {
        let mut slot = self
            .token
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Some(token);
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

    #[test]
    fn token_is_reused_within_the_interval() {
        let s = Session::new(
            SessionKey::generate().unwrap(),
            1,
            1000,
            99_999,
            [127, 0, 0, 1].into(),
            "",
        );
        let mut signed = 0;
        let mut sign = |now: u64| {
            signed += 1;
            Ok::<_, ()>(IssuedToken::new(format!("t{signed}"), now, now + 3600).unwrap())
        };
        let (t1, new1) = s.current_token(1000, 60, || sign(1000)).unwrap();
        let (t2, new2) = s.current_token(1059, 60, || sign(1059)).unwrap();
        let (t3, new3) = s.current_token(1060, 60, || sign(1060)).unwrap();
        assert!(new1 && !new2 && new3);
        assert_eq!(t1.jwt(), t2.jwt());
        assert_ne!(t2.jwt(), t3.jwt());
    }
}

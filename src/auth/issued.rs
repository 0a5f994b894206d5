//! The access token last issued for each active session, so `GN-Access-Token` is signed at
//! most once per `reissue_interval` and reused in between. Bounded: a session that drops out
//! of the cache simply gets a freshly signed token on its next request, and idle sessions
//! hold no token at all, which keeps a million sessions small.

use prometheus_client::metrics::counter::Counter;
use quick_cache::sync::Cache;

use super::session::{IssuedToken, Session, SessionId};

/// Sessions whose current token is kept.
const CAPACITY: usize = 65_536;

/// Tokens kept per session.
pub struct IssuedTokens {
    cache: Cache<SessionId, IssuedToken>,
    /// Tokens signed so far. Each is a private-key operation (about 0.7 ms for RS256-2048),
    /// so this rate is what sliding expiry costs; `/metrics` shows it.
    signed: Counter,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedTokens({} kept)", self.cache.len())
    }
}

impl Default for IssuedTokens {
    fn default() -> Self {
        IssuedTokens::new()
    }
}

impl IssuedTokens {
    /// An empty cache.
    pub fn new() -> IssuedTokens {
        IssuedTokens {
            cache: Cache::new(CAPACITY),
            signed: Counter::default(),
        }
    }

    /// The count of tokens signed (a handle on the same count).
    pub fn signed(&self) -> Counter {
        self.signed.clone()
    }

    /// The token to hand out now: the kept one while it is younger than `reissue_secs` and
    /// unexpired, else whatever `sign` produces (then kept). Also says whether it is new.
    pub fn current<E>(
        &self,
        session: &Session,
        now: u64,
        reissue_secs: u64,
        sign: impl FnOnce() -> Result<IssuedToken, E>,
    ) -> Result<(IssuedToken, bool), E> {
        if let Some(kept) = self.cache.get(&session.id) {
            let fresh = now < kept.signed_at.saturating_add(reissue_secs) && now < kept.exp;
            if fresh {
                return Ok((kept, false));
            }
        }
        let issued = sign()?;
        self.signed.inc();
        self.cache.insert(session.id, issued.clone());
        Ok((issued, true))
    }

    /// Keeps a token signed elsewhere (at sign-in) for reuse.
    pub fn keep(&self, session: &Session, token: IssuedToken) {
        self.signed.inc();
        self.cache.insert(session.id, token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::session::SessionKey;

    #[test]
    fn a_token_is_reused_within_the_interval_then_replaced() {
        let issued = IssuedTokens::new();
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
        let (t1, new1) = issued.current(&s, 1000, 60, || sign(1000)).unwrap();
        let (t2, new2) = issued.current(&s, 1059, 60, || sign(1059)).unwrap();
        let (t3, new3) = issued.current(&s, 1060, 60, || sign(1060)).unwrap();
        assert!(new1 && !new2 && new3);
        assert_eq!(issued.signed().get(), 2);
        assert_eq!(t1.jwt(), t2.jwt());
        assert_ne!(t2.jwt(), t3.jwt());
    }

    #[test]
    fn an_expired_kept_token_is_never_handed_out() {
        let issued = IssuedTokens::new();
        let s = Session::new(
            SessionKey::generate().unwrap(),
            1,
            1000,
            1030,
            [127, 0, 0, 1].into(),
            "",
        );
        issued.keep(&s, IssuedToken::new("short".into(), 1000, 1030).unwrap());
        let (t, new) = issued
            .current(&s, 1030, 60, || {
                Ok::<_, ()>(IssuedToken::new("next".into(), 1030, 1030).unwrap())
            })
            .unwrap();
        assert!(new);
        assert_eq!(t.jwt(), "next");
    }
}

//! The access token last issued for each active session, so `GN-Access-Token` is signed at
//! most once per `reissue_interval` and reused in between. Bounded: a session that drops out
//! of the cache simply gets a freshly signed token on its next request, and idle sessions
//! hold no token at all, which keeps a million sessions small.
//!
//! Signing happens on signing threads, never on a serving thread: an RS256 signature takes
//! 0.2–1 ms by host, which would hold up every other connection of that thread. Requests
//! that need the same session's new token at once share one signature.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::metrics::counter::Counter;
use quick_cache::sync::Cache;
use tokio::sync::{OnceCell, oneshot};

use super::crypto_threads::CryptoThreads;
use super::session::{IssuedToken, Session, SessionId};
use super::token::TokenError;

/// Sessions whose current token is kept.
const CAPACITY: usize = 65_536;

/// A signature under way, shared by every request of its session that waits for it.
type Signing = Arc<OnceCell<IssuedToken>>;

/// Tokens kept per session.
pub struct IssuedTokens {
    cache: Cache<SessionId, IssuedToken>,
    /// Signatures under way, by session.
    signing: Mutex<HashMap<SessionId, Signing>>,
    threads: CryptoThreads,
    /// Tokens signed so far. Each is a private-key operation (0.2–1 ms for RS256-2048, by
    /// host), so this rate is what sliding expiry costs; `/metrics` shows it.
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
    /// An empty cache, with one signing thread per CPU (started on first use).
    pub fn new() -> IssuedTokens {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        IssuedTokens {
            cache: Cache::new(CAPACITY),
            signing: Mutex::new(HashMap::new()),
            threads: CryptoThreads::signing(cpus),
            signed: Counter::default(),
        }
    }

    /// The count of tokens signed (a handle on the same count).
    pub fn signed(&self) -> Counter {
        self.signed.clone()
    }

    /// The kept token, while it is younger than `reissue_secs` and unexpired at `now`.
    pub fn kept(&self, session: &Session, now: u64, reissue_secs: u64) -> Option<IssuedToken> {
        self.cache
            .get(&session.id)
            .filter(|kept| kept.is_current(now, reissue_secs))
    }

    /// A new token for `session`, made by `sign` on a signing thread and then kept; or, when
    /// another request of the session got there first, the token that one signed. Also says
    /// whether this call signed.
    pub async fn renew(
        &self,
        session: &Session,
        now: u64,
        reissue_secs: u64,
        sign: impl FnOnce() -> Result<IssuedToken, TokenError> + Send + 'static,
    ) -> Result<(IssuedToken, bool), TokenError> {
        let cell = {
            let mut signing = self.signing.lock().unwrap_or_else(PoisonError::into_inner);
            // Looked at again under the lock: a signature finished since is kept by now,
            // because it is kept before its entry here is removed.
            if let Some(kept) = self.kept(session, now, reissue_secs) {
                return Ok((kept, false));
            }
            signing.entry(session.id).or_default().clone()
        };
        // Removes the entry however this call ends, cancelled included.
        let _done = SigningDone {
            signing: &self.signing,
            id: session.id,
            cell: &cell,
        };
        let signed_here = AtomicBool::new(false);
        let (flag, id) = (&signed_here, session.id);
        let token = cell
            .get_or_try_init(move || async move {
                flag.store(true, Ordering::Relaxed);
                let token = self.sign_on_thread(sign).await?;
                self.signed.inc();
                self.cache.insert(id, token.clone());
                Ok::<_, TokenError>(token)
            })
            .await?;
        Ok((token.clone(), signed_here.into_inner()))
    }

    async fn sign_on_thread(
        &self,
        sign: impl FnOnce() -> Result<IssuedToken, TokenError> + Send + 'static,
    ) -> Result<IssuedToken, TokenError> {
        let (tx, rx) = oneshot::channel();
        self.threads
            .run(move || {
                // The request may have gone away meanwhile; then nobody needs the token.
                let _ = tx.send(sign());
            })
            .map_err(TokenError::Signing)?;
        rx.await
            .map_err(|_| TokenError::Signing("the signing thread dropped the job".into()))?
    }

    /// The first token of a new session (at sign-in), made by `sign` on a signing thread
    /// and kept.
    pub async fn issue(
        &self,
        session: &Session,
        sign: impl FnOnce() -> Result<IssuedToken, TokenError> + Send + 'static,
    ) -> Result<IssuedToken, TokenError> {
        let token = self.sign_on_thread(sign).await?;
        self.signed.inc();
        self.cache.insert(session.id, token.clone());
        Ok(token)
    }
}

/// Takes a finished (or abandoned) signature's entry out of the table.
struct SigningDone<'a> {
    signing: &'a Mutex<HashMap<SessionId, Signing>>,
    id: SessionId,
    cell: &'a Signing,
}

impl Drop for SigningDone<'_> {
    fn drop(&mut self) {
        let mut signing = self.signing.lock().unwrap_or_else(PoisonError::into_inner);
        // Only this signature's entry: a later one for the session may have replaced it.
        if signing
            .get(&self.id)
            .is_some_and(|c| Arc::ptr_eq(c, self.cell))
        {
            signing.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;
    use crate::auth::session::SessionKey;

    fn session(absolute_end: u64) -> Arc<Session> {
        Arc::new(Session::new(
            SessionKey::generate().unwrap(),
            1,
            1000,
            absolute_end,
            [127, 0, 0, 1].into(),
            "",
        ))
    }

    fn token(jwt: &str, now: u64, exp: u64) -> Result<IssuedToken, TokenError> {
        Ok(IssuedToken::new(jwt.to_owned(), now, exp).unwrap())
    }

    /// What a request hands out: the kept token, else a renewed one.
    async fn current(issued: &IssuedTokens, s: &Session, now: u64, jwt: &str) -> (String, bool) {
        if let Some(kept) = issued.kept(s, now, 60) {
            return (kept.jwt().to_owned(), false);
        }
        let jwt = jwt.to_owned();
        let (t, new) = issued
            .renew(s, now, 60, move || token(&jwt, now, now + 3600))
            .await
            .unwrap();
        (t.jwt().to_owned(), new)
    }

    #[tokio::test]
    async fn a_token_is_reused_within_the_interval_then_replaced() {
        let issued = IssuedTokens::new();
        let s = session(99_999);
        assert_eq!(current(&issued, &s, 1000, "t1").await, ("t1".into(), true));
        assert_eq!(current(&issued, &s, 1059, "t2").await, ("t1".into(), false));
        assert_eq!(current(&issued, &s, 1060, "t3").await, ("t3".into(), true));
        assert_eq!(issued.signed().get(), 2);
    }

    #[tokio::test]
    async fn an_expired_kept_token_is_never_handed_out() {
        let issued = IssuedTokens::new();
        let s = session(1030);
        let first = issued.issue(&s, || token("short", 1000, 1030)).await;
        assert_eq!(first.unwrap().jwt(), "short");
        assert!(issued.kept(&s, 1029, 60).is_some());
        assert!(issued.kept(&s, 1030, 60).is_none());
        assert_eq!(
            current(&issued, &s, 1030, "next").await,
            ("next".into(), true)
        );
    }

    #[tokio::test]
    async fn requests_needing_one_sessions_token_at_once_share_one_signature() {
        let issued = Arc::new(IssuedTokens::new());
        let s = session(99_999);
        let calls = Arc::new(AtomicUsize::new(0));
        let renewals = (0..8).map(|_| {
            let (issued, s, calls) = (issued.clone(), s.clone(), calls.clone());
            async move {
                issued
                    .renew(&s, 1000, 60, move || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let thread = std::thread::current().name().unwrap_or("").to_owned();
                        // Long enough for every request to find this signature under way.
                        std::thread::sleep(Duration::from_millis(100));
                        token(&thread, 1000, 4600)
                    })
                    .await
                    .unwrap()
            }
        });
        let results = futures_util::future::join_all(renewals).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(results.iter().filter(|(_, signed)| *signed).count(), 1);
        for (t, _) in &results {
            assert_eq!(
                t.jwt(),
                "tollgate-sign",
                "signed on a signing thread, shared"
            );
        }
        assert_eq!(issued.signed().get(), 1);
        assert!(issued.signing.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_abandoned_signature_leaves_nothing_behind() {
        let issued = IssuedTokens::new();
        let s = session(99_999);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        {
            let renewal = issued.renew(&s, 1000, 60, move || {
                let _ = wait.recv();
                token("late", 1000, 4600)
            });
            // The client goes away while its token is being signed.
            let abandoned = tokio::time::timeout(Duration::from_millis(50), renewal).await;
            assert!(abandoned.is_err());
        }
        assert!(issued.signing.lock().unwrap().is_empty());
        release.send(()).unwrap();
        assert_eq!(
            current(&issued, &s, 1000, "again").await,
            ("again".into(), true)
        );
    }
}

//! The sign-in state that outlives configuration reloads: the user store, the session
//! store, the clock, and a cache of user records so proxied requests do not read the
//! database each time.
//!
//! A cached record stays valid while the change feed is current: once a second the
//! gateway asks the database which users changed ([`Identity::follow_user_changes`]) and
//! drops those records, so a disabled account or a revoked role takes effect on every
//! instance within about a second. When the feed is not current (the database does not
//! answer), a record is trusted for at most [`USER_REFRESH`] and then read again, which
//! fails closed with 503 while the database is down.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use http::HeaderValue;
use quick_cache::sync::Cache;

use super::issued::IssuedTokens;
use crate::clock::SharedClock;
use crate::sessions::SessionStore;
use crate::store::{Store, StoreError, User, unix_now};

/// How long a cached user record is trusted when the change feed is not current.
pub const USER_REFRESH: Duration = Duration::from_secs(2);
/// How often the change feed asks the database which users changed.
pub const USER_FEED_INTERVAL: Duration = Duration::from_secs(1);
/// How far each feed query looks back before the previous one started, in seconds: it
/// covers clock differences between instances and a read of a user record that was still
/// in flight while the change landed (a database call is bounded by its timeout).
const USER_FEED_OVERLAP_SECS: i64 = 15;
/// Users whose records are kept in memory at once.
const USER_CACHE_CAPACITY: usize = 100_000;

/// What a request needs to know about its user.
#[derive(Debug)]
pub struct UserView {
    /// User id.
    pub id: u64,
    /// Username.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Role names.
    pub roles: BTreeSet<String>,
    /// Disabled accounts cannot sign in and their sessions end.
    pub disabled: bool,
    /// Identity header values, built once per record.
    pub header_values: IdentityValues,
}

/// Pre-built identity header values.
#[derive(Debug, Clone)]
pub struct IdentityValues {
    /// The user id.
    pub user_id: HeaderValue,
    /// The username, when it is a valid header value.
    pub username: Option<HeaderValue>,
    /// Comma-separated roles.
    pub roles: Option<HeaderValue>,
}

impl IdentityValues {
    /// The values for one user, slices of one buffer: a request then touches one
    /// allocation and one reference count for all of them, not one of each per value.
    fn new(id: u64, username: &str, roles: &str) -> IdentityValues {
        let digits = id.to_string();
        let mut text = BytesMut::with_capacity(digits.len() + username.len() + roles.len());
        let mut span = |part: &str| {
            let start = text.len();
            text.extend_from_slice(part.as_bytes());
            start..text.len()
        };
        let spans = [span(&digits), span(username), span(roles)];
        let text = text.freeze();
        let value = |i: usize| HeaderValue::from_maybe_shared(text.slice(spans[i].clone())).ok();
        IdentityValues {
            // Digits are always a valid value; the fallback only satisfies the type.
            user_id: value(0).unwrap_or_else(|| HeaderValue::from(id)),
            username: value(1),
            roles: value(2),
        }
    }
}

impl From<User> for UserView {
    fn from(user: User) -> UserView {
        let roles = user.roles.iter().cloned().collect::<Vec<_>>().join(",");
        UserView {
            header_values: IdentityValues::new(user.id, &user.username, &roles),
            id: user.id,
            username: user.username,
            email: user.email,
            roles: user.roles,
            disabled: user.disabled,
        }
    }
}

#[derive(Debug, Clone)]
struct CachedUser {
    user: Option<Arc<UserView>>,
    fetched_at: Duration,
}

/// Users, sessions and time, shared by every request.
#[derive(Debug)]
pub struct Identity {
    /// Where users live.
    pub store: Store,
    /// Where sessions live.
    pub sessions: SessionStore,
    /// The time source for every expiry.
    pub clock: SharedClock,
    /// The token last issued per active session.
    pub issued: IssuedTokens,
    users: Cache<u64, CachedUser>,
    /// Clock time (ms) until which the change feed counts as current.
    feed_current_until_ms: AtomicU64,
}

impl Identity {
    /// Bundles the stores and the clock.
    pub fn new(store: Store, sessions: SessionStore, clock: SharedClock) -> Identity {
        Identity {
            store,
            sessions,
            clock,
            issued: IssuedTokens::new(),
            users: Cache::new(USER_CACHE_CAPACITY),
            feed_current_until_ms: AtomicU64::new(0),
        }
    }

    /// The user record for `id` at `now` (read from [`Identity::clock`] by the caller, who
    /// needs the time anyway), from the cache while fresh; `None` when the user is gone.
    pub async fn user(&self, id: u64, now: Duration) -> Result<Option<Arc<UserView>>, StoreError> {
        if let Some(cached) = self.users.get(&id)
            && (self.feed_is_current(now) || now.saturating_sub(cached.fetched_at) < USER_REFRESH)
        {
            return Ok(cached.user);
        }
        // Boxed: the database call's future is large, and most requests never make it.
        Box::pin(self.fetch_user(id, now)).await
    }

    async fn fetch_user(
        &self,
        id: u64,
        now: Duration,
    ) -> Result<Option<Arc<UserView>>, StoreError> {
        let user = self
            .store
            .user_by_id(id)
            .await?
            .map(|u| Arc::new(UserView::from(u)));
        self.users.insert(
            id,
            CachedUser {
                user: user.clone(),
                fetched_at: now,
            },
        );
        Ok(user)
    }

    /// Drops the cached record so the next request reads the database.
    pub fn forget_user(&self, id: u64) {
        self.users.remove(&id);
    }
}

impl Identity {
    /// Follows user changes in the database until `stop` fires: every
    /// [`USER_FEED_INTERVAL`] it drops the cached records of users changed since the
    /// previous query (with [`USER_FEED_OVERLAP_SECS`] to spare), and marks the feed
    /// current for two intervals after a query succeeds.
    pub async fn follow_user_changes(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut since = unix_now() - USER_FEED_OVERLAP_SECS;
        let mut failing = false;
        loop {
            let started = self.clock.now();
            let started_unix = unix_now();
            match self.store.users_changed_since(since).await {
                Ok(changed) => {
                    for id in changed {
                        self.forget_user(id);
                    }
                    since = started_unix - USER_FEED_OVERLAP_SECS;
                    let until = started.saturating_add(2 * USER_FEED_INTERVAL);
                    self.feed_current_until_ms
                        .store(millis(until), Ordering::Release);
                    if failing {
                        tracing::info!("user change feed is current again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "user change feed failed; user records are read again every few seconds");
                        failing = true;
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(USER_FEED_INTERVAL) => {}
            }
        }
    }

    fn feed_is_current(&self, now: Duration) -> bool {
        millis(now) < self.feed_current_until_ms.load(Ordering::Acquire)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_values_are_slices_of_one_buffer() {
        let values = IdentityValues::new(42, "Ozzie", "admin,dev");
        assert_eq!(values.user_id, "42");
        assert_eq!(values.username.as_ref().unwrap(), "Ozzie");
        assert_eq!(values.roles.as_ref().unwrap(), "admin,dev");
        let (id, name) = (values.user_id.as_bytes(), values.username.unwrap());
        assert_eq!(id.as_ptr().wrapping_add(id.len()), name.as_bytes().as_ptr());
        let bad = IdentityValues::new(7, "line\nbreak", "");
        assert_eq!(bad.user_id, "7");
        assert!(bad.username.is_none());
        assert_eq!(bad.roles.unwrap(), "");
    }
}

//! The sign-in state that outlives configuration reloads: the user store, the session
//! store, the clock, and a short-lived cache of user records so proxied requests do not
//! read the database each time while a disabled account still stops working within
//! `USER_REFRESH`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use quick_cache::sync::Cache;

use super::issued::IssuedTokens;
use crate::clock::SharedClock;
use crate::sessions::SessionStore;
use crate::store::{Store, StoreError, User};

/// How long a cached user record is trusted before it is read again.
pub const USER_REFRESH: Duration = Duration::from_secs(2);
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

impl From<User> for UserView {
    fn from(user: User) -> UserView {
        let roles = user.roles.iter().cloned().collect::<Vec<_>>().join(",");
        UserView {
            header_values: IdentityValues {
                user_id: HeaderValue::from(user.id),
                username: HeaderValue::from_str(&user.username).ok(),
                roles: HeaderValue::from_str(&roles).ok(),
            },
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
        }
    }

    /// The user record for `id`, from the cache while fresh; `None` when the user is gone.
    pub async fn user(&self, id: u64) -> Result<Option<Arc<UserView>>, StoreError> {
        let now = self.clock.now();
        if let Some(cached) = self.users.get(&id)
            && now.saturating_sub(cached.fetched_at) < USER_REFRESH
        {
            return Ok(cached.user);
        }
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

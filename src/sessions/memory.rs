//! The in-process session store on quick_cache. The cache has no expiry of its own, so
//! every read checks the session's idle and absolute deadlines; eviction under memory
//! pressure only ever ends a session early, never extends or revives one.

use std::sync::Arc;

use quick_cache::sync::Cache;

use crate::auth::session::{Session, SessionId};

/// Sessions of this process, indexed by the digest of their key.
#[derive(Debug)]
pub struct MemorySessions {
    cache: Cache<SessionId, Arc<Session>>,
}

impl MemorySessions {
    /// A store holding at most `capacity` sessions.
    pub fn new(capacity: usize) -> MemorySessions {
        MemorySessions {
            cache: Cache::new(capacity.max(1)),
        }
    }

    /// Stores a session under its key's digest.
    pub fn insert(&self, session: Arc<Session>) {
        self.cache.insert(session.id, session);
    }

    /// The live session for `id`, checking the presented key in constant time.
    pub fn get(
        &self,
        id: &SessionId,
        presented: &str,
        now: u64,
        idle_secs: u64,
    ) -> Option<Arc<Session>> {
        let session = self.cache.get(id)?;
        if !constant_time_eq(session.key.as_str().as_bytes(), presented.as_bytes()) {
            return None;
        }
        if session.is_expired(now, idle_secs) {
            self.cache.remove(id);
            return None;
        }
        Some(session)
    }

    /// Ends one session.
    pub fn remove(&self, id: &SessionId) {
        self.cache.remove(id);
    }

    /// Ends every session of `user_id`.
    pub fn remove_user(&self, user_id: u64) -> usize {
        let before = self.cache.len();
        self.cache.retain(|_, session| session.user_id != user_id);
        before.saturating_sub(self.cache.len())
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::session::SessionKey;

    fn session(user: u64, now: u64) -> Arc<Session> {
        Arc::new(Session::new(
            SessionKey::generate().unwrap(),
            user,
            now,
            now + 86_400,
            [127, 0, 0, 1].into(),
            "t",
        ))
    }

    #[test]
    fn get_checks_deadlines_and_removes_ended_sessions() {
        let store = MemorySessions::new(100);
        let s = session(7, 1000);
        store.insert(s.clone());
        let id = s.key.lookup_id();
        assert!(store.get(&id, s.key.as_str(), 1100, 300).is_some());
        assert!(store.get(&id, s.key.as_str(), 1300, 300).is_none(), "idle");
        assert_eq!(store.len(), 0, "an ended session is dropped on read");
    }

    #[test]
    fn remove_user_ends_only_that_users_sessions() {
        let store = MemorySessions::new(100);
        for user in [1, 1, 2] {
            store.insert(session(user, 1000));
        }
        assert_eq!(store.remove_user(1), 2);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_wrong_key_with_the_same_digest_slot_is_refused() {
        let store = MemorySessions::new(100);
        let s = session(1, 1000);
        store.insert(s.clone());
        assert!(
            store
                .get(&s.key.lookup_id(), "x".repeat(48).as_str(), 1001, 300)
                .is_none()
        );
    }
}

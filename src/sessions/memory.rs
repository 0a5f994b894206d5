//! The in-process session store on quick_cache. The cache has no expiry of its own, so
//! every read checks the session's idle and absolute deadlines; eviction under memory
//! pressure only ever ends a session early, never extends or revives one.
//!
//! A session leaves the cache only through this module (removal, expiry on read, eviction,
//! or an insert under the same id, which quick_cache reports as an eviction), and every way
//! out marks it ended ([`Session::end`]), so a copy of it held beside a verified token
//! ([`MemorySessions::get_held`]) is live exactly as long as the one in the cache.

use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};

use crate::auth::session::{Session, SessionId};

/// Sessions of this process, indexed by the digest of their key.
#[derive(Debug)]
pub struct MemorySessions {
    cache: Cache<SessionId, Arc<Session>, UnitWeighter, DefaultHashBuilder, EndOnEvict>,
}

/// Marks a session ended when the cache evicts it to make room, or replaces it with one
/// stored under the same id.
#[derive(Debug, Clone, Copy, Default)]
struct EndOnEvict;

impl Lifecycle<SessionId, Arc<Session>> for EndOnEvict {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: SessionId, session: Arc<Session>) {
        session.end();
    }
}

impl MemorySessions {
    /// A store holding at most `capacity` sessions.
    pub fn new(capacity: usize) -> MemorySessions {
        let capacity = capacity.max(1);
        MemorySessions {
            cache: Cache::with(
                capacity,
                capacity as u64,
                UnitWeighter,
                DefaultHashBuilder::default(),
                EndOnEvict,
            ),
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
            self.remove(id);
            return None;
        }
        Some(session)
    }

    /// [`get`](Self::get), answered from `held` (a session an earlier `get` returned for the
    /// same presented key) while the cache still holds it and it is live at `now`.
    pub fn get_held(
        &self,
        held: Option<&Arc<Session>>,
        id: &SessionId,
        presented: &str,
        now: u64,
        idle_secs: u64,
    ) -> Option<Arc<Session>> {
        match held {
            Some(session) if !session.has_ended() && !session.is_expired(now, idle_secs) => {
                Some(session.clone())
            }
            _ => self.get(id, presented, now, idle_secs),
        }
    }

    /// Ends one session.
    pub fn remove(&self, id: &SessionId) {
        if let Some((_, session)) = self.cache.remove(id) {
            session.end();
        }
    }

    /// Ends every session of `user_id`.
    pub fn remove_user(&self, user_id: u64) -> usize {
        let before = self.cache.len();
        self.cache.retain(|_, session| {
            let keep = session.user_id != user_id;
            if !keep {
                session.end();
            }
            keep
        });
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
    fn a_held_session_ends_with_every_way_out_of_the_store() {
        let store = MemorySessions::new(100);
        let get = |s: &Arc<Session>, now| store.get_held(Some(s), &s.id, s.key.as_str(), now, 300);
        let (removed, expired) = (session(1, 1000), session(2, 1000));
        let (alice, alices_other) = (session(3, 1000), session(3, 1000));
        for s in [&removed, &expired, &alice, &alices_other] {
            store.insert(s.clone());
            assert!(get(s, 1001).is_some_and(|got| Arc::ptr_eq(&got, s)));
        }
        store.remove(&removed.id);
        assert!(get(&removed, 1002).is_none(), "removed");
        assert!(get(&expired, 1300).is_none(), "idle");
        assert!(
            get(&expired, 1001).is_none(),
            "an expired session stays ended"
        );
        store.remove_user(3);
        assert!(get(&alice, 1002).is_none(), "user's sessions ended");
        assert!(get(&alices_other, 1002).is_none(), "user's sessions ended");
        assert!(removed.has_ended() && expired.has_ended() && alice.has_ended());

        // A record stored under an id already held replaces the one there, which ends.
        let replaced = session(4, 1000);
        store.insert(replaced.clone());
        let key = SessionKey::parse(replaced.key.as_str()).unwrap();
        let newer = Arc::new(Session::new(
            key,
            4,
            1001,
            1001 + 86_400,
            [127, 0, 0, 1].into(),
            "t",
        ));
        assert_eq!(newer.id, replaced.id);
        store.insert(newer.clone());
        assert!(replaced.has_ended() && !newer.has_ended());
        assert!(
            get(&replaced, 1002).is_some_and(|got| Arc::ptr_eq(&got, &newer)),
            "the held copy gives way to the record that replaced it"
        );
    }

    #[test]
    fn sessions_evicted_to_make_room_are_ended() {
        let store = MemorySessions::new(50);
        let all: Vec<_> = (0..500).map(|i| session(i, 1000)).collect();
        for s in &all {
            store.insert(s.clone());
        }
        let held = |s: &Arc<Session>| {
            store
                .get_held(Some(s), &s.id, s.key.as_str(), 1001, 300)
                .is_some()
        };
        let (kept, evicted): (Vec<_>, Vec<_>) = all
            .iter()
            .partition(|s| store.get(&s.id, s.key.as_str(), 1001, 300).is_some());
        assert!(
            !evicted.is_empty() && kept.len() <= 50 + 10,
            "{}",
            kept.len()
        );
        assert!(evicted.iter().all(|s| s.has_ended() && !held(s)));
        assert!(kept.iter().all(|s| !s.has_ended() && held(s)));
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

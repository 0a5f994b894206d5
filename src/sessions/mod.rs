//! Session stores. `memory` keeps sessions in this process; a shared store for several
//! instances plugs in beside it behind the same calls.

pub mod memory;

use std::sync::Arc;

use crate::auth::session::{Session, SessionId, lookup_id};

/// Why the session store could not answer (maps to 503 `storageUnavailable`).
#[derive(Debug, thiserror::Error)]
pub enum SessionStoreError {
    /// The store is unreachable or failed.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// Where sessions live.
#[derive(Debug, Clone)]
pub enum SessionStore {
    /// In this process (quick_cache).
    Memory(Arc<memory::MemorySessions>),
}

impl SessionStore {
    /// An in-process store holding at most `capacity` sessions.
    pub fn memory(capacity: usize) -> SessionStore {
        SessionStore::Memory(Arc::new(memory::MemorySessions::new(capacity)))
    }

    /// Stores a new session.
    pub async fn insert(&self, session: Arc<Session>) -> Result<(), SessionStoreError> {
        match self {
            SessionStore::Memory(m) => {
                m.insert(session);
                Ok(())
            }
        }
    }

    /// The live session for a presented key (whose store index is `id`, from
    /// [`lookup_id`]) at `now`; an ended session is removed and reported as absent, so
    /// nothing past its timeouts is ever returned. `held` is the session an earlier call
    /// returned for the same key, if the caller kept it: the memory store answers from it
    /// while the session is still in the store and live, which spares the look-up; a
    /// store shared by several instances would ask itself every time.
    pub async fn get_held(
        &self,
        held: Option<&Arc<Session>>,
        id: &SessionId,
        key: &str,
        now: u64,
        idle_secs: u64,
    ) -> Result<Option<Arc<Session>>, SessionStoreError> {
        match self {
            SessionStore::Memory(m) => Ok(m.get_held(held, id, key, now, idle_secs)),
        }
    }

    /// Records that the session was used at `now`.
    pub async fn touch(&self, session: &Session, now: u64) -> Result<(), SessionStoreError> {
        match self {
            SessionStore::Memory(_) => {
                session.touch(now);
                Ok(())
            }
        }
    }

    /// Ends one session.
    pub async fn remove(&self, key: &str) -> Result<(), SessionStoreError> {
        match self {
            SessionStore::Memory(m) => {
                m.remove(&lookup_id(key));
                Ok(())
            }
        }
    }

    /// Ends every session of a user; returns how many ended.
    pub async fn remove_user(&self, user_id: u64) -> Result<usize, SessionStoreError> {
        match self {
            SessionStore::Memory(m) => Ok(m.remove_user(user_id)),
        }
    }

    /// Number of sessions held (live or not yet swept).
    pub fn len(&self) -> usize {
        match self {
            SessionStore::Memory(m) => m.len(),
        }
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

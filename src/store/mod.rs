//! Durable storage: user accounts in SQLite or MySQL / MariaDB, behind one [`Store`] handle.
//!
//! Every call is bounded by the timeout given to [`Store::connect`]: a database that hangs
//! turns into [`StoreError::Timeout`], which callers answer with 503, instead of a request
//! that never ends. Both backends behave the same, down to case-insensitive uniqueness,
//! because keys are lower-cased in Rust and compared byte for byte by the database.

mod columns;
mod migrations;
pub mod mysql;
pub mod sqlite;
mod target;

/// Wall-clock unix seconds: the time base of `created_at` and `updated_at`.
pub use columns::now as unix_now;
pub use target::DatabaseTarget;

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable numeric id; tokens carry it as `sub`.
    pub id: u64,
    /// The name as registered; unique without regard to case.
    pub username: String,
    /// The address as registered; unique without regard to case.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Role names, used by `role:<name>` route policies.
    pub roles: BTreeSet<String>,
    /// A disabled user cannot log in and their sessions stop working.
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last change to any field.
    pub updated_at: i64,
}

/// What registration supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The name to register, kept as given.
    pub username: String,
    /// The address to register, kept as given.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Initial roles.
    pub roles: BTreeSet<String>,
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A call exceeded the store's timeout.
    #[error("database call timed out")]
    Timeout,
    /// Connection, IO or SQL failure; the message is for logs only.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique field (`"username"` or `"email"`) is already taken.
    #[error("{0} already taken")]
    Conflict(&'static str),
}

/// The one storage handle; cheap to clone.
#[derive(Debug, Clone)]
pub enum Store {
    /// An embedded SQLite file.
    Sqlite(sqlite::SqliteStore),
    /// A MySQL / MariaDB server shared by every instance.
    Mysql(mysql::MysqlStore),
}

/// Calls the backend's method of the same name, bounded by that backend's timeout.
macro_rules! dispatch {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        match $self {
            Store::Sqlite(s) => bounded(s.timeout(), s.$method($($arg),*)).await,
            Store::Mysql(m) => bounded(m.timeout(), m.$method($($arg),*)).await,
        }
    };
}

impl Store {
    /// Opens the database and checks that it answers, within `timeout`; every later call
    /// on the store is bounded by the same `timeout`.
    pub async fn connect(target: &DatabaseTarget, timeout: Duration) -> Result<Store, StoreError> {
        match target {
            DatabaseTarget::Sqlite(path) => {
                let store = bounded(timeout, sqlite::SqliteStore::open(path.clone(), timeout));
                Ok(Store::Sqlite(store.await?))
            }
            DatabaseTarget::Mysql { url, password } => {
                let store = mysql::MysqlStore::open(url, password.as_deref(), timeout)?;
                bounded(timeout, store.ping()).await?;
                Ok(Store::Mysql(store))
            }
        }
    }

    /// Applies the embedded migrations not yet applied; returns how many ran now. Safe
    /// when several instances start at once: one applies, the others wait and find nothing
    /// to do. Bounded by [`MIGRATION_TIMEOUT`] at least, since a schema change on a large
    /// table may take longer than an ordinary call and must not be abandoned half way.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        match self {
            Store::Sqlite(s) => bounded(s.timeout().max(MIGRATION_TIMEOUT), s.migrate()).await,
            Store::Mysql(m) => bounded(m.timeout().max(MIGRATION_TIMEOUT), m.migrate()).await,
        }
    }

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, ping())
    }

    /// Registers a user; `Conflict("username")` or `Conflict("email")` when either is
    /// taken in any letter case.
    pub async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        dispatch!(self, create_user(new))
    }

    /// Finds a user by email if `login` contains `@`, else by username; case-insensitive.
    pub async fn user_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        let column = columns::login_column(login);
        let key = columns::key(login);
        dispatch!(self, user_by_key(column, key))
    }

    /// Finds a user by id.
    pub async fn user_by_id(&self, id: u64) -> Result<Option<User>, StoreError> {
        dispatch!(self, user_by_id(id))
    }

    /// Every user, ordered by id.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        dispatch!(self, list_users())
    }

    /// Ids of the users whose record changed at or after `since` (unix seconds); every
    /// change to a user sets `updated_at`.
    pub async fn users_changed_since(&self, since: i64) -> Result<Vec<u64>, StoreError> {
        dispatch!(self, users_changed_since(since))
    }

    /// Replaces a user's password hash; `false` if there is no such user.
    pub async fn set_password_hash(&self, id: u64, hash: &str) -> Result<bool, StoreError> {
        let hash = hash.to_owned();
        dispatch!(self, set_password_hash(id, hash))
    }

    /// Disables or re-enables a user; `false` if there is no such user.
    pub async fn set_disabled(&self, id: u64, disabled: bool) -> Result<bool, StoreError> {
        dispatch!(self, set_disabled(id, disabled))
    }

    /// Adds a role (no change if already held); `false` if there is no such user.
    pub async fn grant_role(&self, id: u64, role: &str) -> Result<bool, StoreError> {
        let role = role.to_owned();
        dispatch!(self, edit_roles(id, role, true))
    }

    /// Removes a role (no change if not held); `false` if there is no such user.
    pub async fn revoke_role(&self, id: u64, role: &str) -> Result<bool, StoreError> {
        let role = role.to_owned();
        dispatch!(self, edit_roles(id, role, false))
    }

    /// `"sqlite"` or `"mysql"`, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Mysql(_) => "mysql",
        }
    }
}

/// The least time [`Store::migrate`] is given, whatever the per-call timeout.
pub const MIGRATION_TIMEOUT: Duration = Duration::from_secs(600);

/// Awaits `call` for at most `limit`; the one place a slow database becomes `Timeout`.
async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or(Err(StoreError::Timeout))
}

//! SQLite backend: one connection behind a mutex, every call on a blocking thread so the
//! async reactor never waits on disk or on a lock held by another process.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};

use super::columns::{self, USER_COLUMNS, UserRow};
use super::migrations::{self, Migration};
use super::{NewUser, StoreError, User};

/// A SQLite database file; clones share the connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    timeout: Duration,
}

impl SqliteStore {
    /// Opens (creating if needed) the file and its folder and sets the connection up.
    pub(super) async fn open(path: PathBuf, timeout: Duration) -> Result<Self, StoreError> {
        let conn = tokio::task::spawn_blocking(move || open_file(&path, timeout))
            .await
            .map_err(|e| StoreError::Unavailable(format!("sqlite open task: {e}")))??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            timeout,
        })
    }

    /// The bound on each call.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `work` with the connection on a blocking thread, within the call timeout.
    async fn call<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.call_within(self.timeout, work).await
    }

    /// Runs `work` with the connection on a blocking thread. The async side stops waiting
    /// after `limit` (see `Store`); this side makes sure the thread stops soon after too,
    /// so calls queued behind a slow one are not all made to wait in turn.
    async fn call_within<T, F>(&self, limit: Duration, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let deadline = Instant::now().checked_add(limit);
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held cannot leave a transaction open (rusqlite
            // rolls back on drop), so the connection is still good to use.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            let left = deadline.map_or(limit, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                // The caller has already been told `Timeout`; doing the work now would
                // surprise it and delay everyone queued behind.
                return Err(StoreError::Timeout);
            }
            // Wait on another process's lock only while the caller still waits.
            conn.busy_timeout(busy_wait(left))?;
            work(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite task: {e}")))?
    }

    /// Checks that the file can be read (the schema table, not just the connection).
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let sql = "SELECT COUNT(*) FROM sqlite_master";
        self.call(move |c| Ok(c.query_row(sql, [], |_| Ok(()))?))
            .await
    }

    /// Applies pending migrations in one IMMEDIATE transaction: it takes the write lock
    /// before reading what is applied, so a second process waits and then finds nothing
    /// to do, and a failing migration leaves no trace (SQLite DDL is transactional).
    pub(super) async fn migrate(&self) -> Result<usize, StoreError> {
        let limit = self.timeout.max(super::MIGRATION_TIMEOUT);
        self.call_within(limit, |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA_MIGRATIONS)?;
            let applied = tx
                .prepare("SELECT version FROM schema_migrations")?
                .query_map([], |r| r.get::<_, u32>(0))?
                .collect::<Result<Vec<u32>, _>>()?;
            let pending = migrations::pending(migrations::SQLITE, &applied);
            for Migration { version, name, sql } in &pending {
                tx.execute_batch(sql)
                    .map_err(|e| StoreError::Unavailable(format!("migration {name}: {e}")))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                    params![version, name, columns::now()],
                )?;
                tracing::info!(version, name, "applied sqlite migration");
            }
            tx.commit()?;
            Ok(pending.len())
        })
        .await
    }

    /// Inserts a user; unique-key violations become `Conflict`.
    pub(super) async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        self.call(move |c| {
            let now = columns::now();
            c.execute(
                "INSERT INTO users (username, username_key, email, email_key, password_hash, \
                 roles, disabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7)",
                params![
                    new.username,
                    columns::key(&new.username),
                    new.email,
                    columns::key(&new.email),
                    new.password_hash,
                    columns::encode_roles(&new.roles)?,
                    now,
                ],
            )?;
            let id = u64::try_from(c.last_insert_rowid())
                .map_err(|_| StoreError::Unavailable("negative rowid".into()))?;
            Ok(User {
                id,
                username: new.username,
                email: new.email,
                password_hash: new.password_hash,
                roles: new.roles,
                disabled: false,
                created_at: now,
                updated_at: now,
            })
        })
        .await
    }

    /// Finds a user by a lower-cased key column (`username_key` or `email_key`).
    pub(super) async fn user_by_key(
        &self,
        column: &'static str,
        key: String,
    ) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = ?1");
        self.call(move |c| {
            let row = c.query_row(&sql, [key], read_user).optional()?;
            row.map(columns::user_from_row).transpose()
        })
        .await
    }

    /// Finds a user by id; ids SQLite cannot hold simply do not exist.
    pub(super) async fn user_by_id(&self, id: u64) -> Result<Option<User>, StoreError> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
        self.call(move |c| {
            let row = c.query_row(&sql, [id], read_user).optional()?;
            row.map(columns::user_from_row).transpose()
        })
        .await
    }

    /// Every user, by id.
    pub(super) async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
        self.call(move |c| {
            let rows = c
                .prepare(&sql)?
                .query_map([], read_user)?
                .collect::<Result<Vec<UserRow>, _>>()?;
            rows.into_iter().map(columns::user_from_row).collect()
        })
        .await
    }

    /// Ids of the users changed at or after `since` (unix seconds).
    pub(super) async fn users_changed_since(&self, since: i64) -> Result<Vec<u64>, StoreError> {
        self.call(move |c| {
            let ids = c
                .prepare_cached("SELECT id FROM users WHERE updated_at >= ?1")?
                .query_map([since], |r| r.get::<_, i64>(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(ids
                .into_iter()
                .filter_map(|id| u64::try_from(id).ok())
                .collect())
        })
        .await
    }

    /// Replaces the password hash.
    pub(super) async fn set_password_hash(
        &self,
        id: u64,
        hash: String,
    ) -> Result<bool, StoreError> {
        self.update(id, "password_hash", hash).await
    }

    /// Sets the disabled flag.
    pub(super) async fn set_disabled(&self, id: u64, disabled: bool) -> Result<bool, StoreError> {
        self.update(id, "disabled", disabled).await
    }

    /// Sets one column and `updated_at`; `false` if no row has that id. SQLite counts
    /// matched rows, so setting a value to what it already is still answers `true`.
    async fn update<V>(&self, id: u64, column: &'static str, value: V) -> Result<bool, StoreError>
    where
        V: rusqlite::ToSql + Send + 'static,
    {
        let Ok(id) = i64::try_from(id) else {
            return Ok(false);
        };
        let sql = format!("UPDATE users SET {column} = ?1, updated_at = ?2 WHERE id = ?3");
        self.call(move |c| Ok(c.execute(&sql, params![value, columns::now(), id])? > 0))
            .await
    }

    /// Grants or revokes a role inside an IMMEDIATE transaction, so concurrent edits from
    /// this or another process cannot lose each other's change.
    pub(super) async fn edit_roles(
        &self,
        id: u64,
        role: String,
        grant: bool,
    ) -> Result<bool, StoreError> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(false);
        };
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored: Option<String> = tx
                .query_row("SELECT roles FROM users WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            let Some(stored) = stored else {
                return Ok(false);
            };
            if let Some(roles) = columns::edit_roles(&stored, &role, grant)? {
                tx.execute(
                    "UPDATE users SET roles = ?1, updated_at = ?2 WHERE id = ?3",
                    params![roles, columns::now(), id],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}

/// Records which migrations ran; created by the runner itself, before any migration.
const SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT;";

/// Opens the file with the settings every connection needs.
fn open_file(path: &Path, timeout: Duration) -> Result<Connection, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Unavailable(format!("creating {}: {e}", parent.display())))?;
    }
    let conn = Connection::open(path)?;
    // Waiting on another process's lock for as long as a call may take, then failing,
    // keeps a busy file from looking like a hang.
    conn.busy_timeout(busy_wait(timeout))?;
    // WAL lets readers proceed while a writer commits; the pragma answers with the mode.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "sqlite did not switch to WAL journal mode");
    }
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    Ok(conn)
}

/// `limit` capped to what SQLite's busy timeout can hold (milliseconds in an `i32`).
fn busy_wait(limit: Duration) -> Duration {
    limit.min(Duration::from_secs(86_400))
}

/// Reads the [`USER_COLUMNS`] of one row.
fn read_user(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    let id: i64 = r.get(0)?;
    Ok((
        u64::try_from(id).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, id))?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

impl From<rusqlite::Error> for StoreError {
    /// A unique-key violation on a user key is a `Conflict`; anything else means the
    /// database could not do its job.
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(code, Some(message)) = &e
            && code.code == ErrorCode::ConstraintViolation
            && code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            && let Some(field) = columns::conflict_field(message)
        {
            return StoreError::Conflict(field);
        }
        StoreError::Unavailable(e.to_string())
    }
}

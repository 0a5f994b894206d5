//! MySQL 8 / MariaDB backend over a `mysql_async` connection pool, shared by every
//! gateway instance that points at the same database.

use std::fmt;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, TxOpts};

use super::columns::{self, USER_COLUMNS, UserRow};
use super::migrations;
use super::{NewUser, StoreError, User};

/// MySQL's error number for a duplicate key.
const ER_DUP_ENTRY: u16 = 1062;

/// A MySQL / MariaDB database; clones share the pool.
#[derive(Clone)]
pub struct MysqlStore {
    pool: Pool,
    opts: Opts,
    timeout: Duration,
}

impl fmt::Debug for MysqlStore {
    /// Leaves the options out: they hold the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl MysqlStore {
    /// Builds the pool; no connection is made until the first call.
    pub(super) fn open(
        url: &str,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let opts = Opts::from_url(url)
            .map_err(|e| StoreError::Unavailable(format!("database url: {e}")))?;
        if opts.db_name().is_none_or(str::is_empty) {
            return Err(StoreError::Unavailable(
                "database url names no database".into(),
            ));
        }
        // Found rows, not changed rows: an update that sets a value to what it already is
        // must still tell "this user exists" apart from "no such user".
        let mut builder = OptsBuilder::from_opts(opts).client_found_rows(true);
        if let Some(password) = password {
            builder = builder.pass(Some(password));
        }
        let opts = Opts::from(builder);
        Ok(Self {
            pool: Pool::new(opts.clone()),
            opts,
            timeout,
        })
    }

    /// The bound on each call.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Takes a connection from the pool and checks that the server answers.
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.pool.get_conn().await?.ping().await?;
        Ok(())
    }

    /// Applies pending migrations while holding a named lock, so that of several instances
    /// starting together one migrates and the others wait, then find nothing to do. MySQL
    /// DDL commits on its own, so each migration is recorded right after it runs. The lock
    /// is taken on a connection of its own: if this call is abandoned, dropping that
    /// connection ends its session and the server releases the lock.
    pub(super) async fn migrate(&self) -> Result<usize, StoreError> {
        let mut conn = Conn::new(self.opts.clone()).await?;
        let wait = super::MIGRATION_TIMEOUT.as_secs();
        let locked: Option<Option<i64>> = conn
            .exec_first(format!("SELECT GET_LOCK({LOCK_NAME}, ?)"), (wait,))
            .await?;
        if locked.flatten() != Some(1) {
            return Err(StoreError::Unavailable(
                "could not take the migration lock".into(),
            ));
        }
        conn.query_drop(SCHEMA_MIGRATIONS).await?;
        let applied: Vec<u32> = conn.query("SELECT version FROM schema_migrations").await?;
        let pending = migrations::pending(migrations::MYSQL, &applied);
        for migration in &pending {
            let (version, name) = (migration.version, migration.name);
            conn.query_drop(migration.sql)
                .await
                .map_err(|e| StoreError::Unavailable(format!("migration {name}: {e}")))?;
            conn.exec_drop(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, columns::now()),
            )
            .await?;
            tracing::info!(version, name, "applied mysql migration");
        }
        conn.query_drop(format!("DO RELEASE_LOCK({LOCK_NAME})"))
            .await?;
        conn.disconnect().await?;
        Ok(pending.len())
    }

    /// Inserts a user; duplicate keys become `Conflict`.
    pub(super) async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let now = columns::now();
        let roles = columns::encode_roles(&new.roles)?;
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "INSERT INTO users (username, username_key, email, email_key, password_hash, \
             roles, disabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, FALSE, ?, ?)",
            (
                new.username.as_str(),
                columns::key(&new.username),
                new.email.as_str(),
                columns::key(&new.email),
                new.password_hash.as_str(),
                roles,
                now,
                now,
            ),
        )
        .await?;
        let id = conn
            .last_insert_id()
            .ok_or_else(|| StoreError::Unavailable("insert returned no id".into()))?;
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
    }

    /// Finds a user by a lower-cased key column (`username_key` or `email_key`).
    pub(super) async fn user_by_key(
        &self,
        column: &'static str,
        key: String,
    ) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = ?");
        let mut conn = self.pool.get_conn().await?;
        let row: Option<UserRow> = conn.exec_first(sql, (key,)).await?;
        row.map(columns::user_from_row).transpose()
    }

    /// Finds a user by id.
    pub(super) async fn user_by_id(&self, id: u64) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        let mut conn = self.pool.get_conn().await?;
        let row: Option<UserRow> = conn.exec_first(sql, (id,)).await?;
        row.map(columns::user_from_row).transpose()
    }

    /// Every user, by id.
    pub(super) async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<UserRow> = conn.query(sql).await?;
        rows.into_iter().map(columns::user_from_row).collect()
    }

    /// Ids of the users changed at or after `since` (unix seconds).
    pub(super) async fn users_changed_since(&self, since: i64) -> Result<Vec<u64>, StoreError> {
        let mut conn = self.pool.get_conn().await?;
        let ids: Vec<u64> = conn
            .exec("SELECT id FROM users WHERE updated_at >= ?", (since,))
            .await?;
        Ok(ids)
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

    /// Sets one column and `updated_at`; `false` if no row has that id.
    async fn update<V>(&self, id: u64, column: &'static str, value: V) -> Result<bool, StoreError>
    where
        V: Into<mysql_async::Value> + Send,
    {
        let sql = format!("UPDATE users SET {column} = ?, updated_at = ? WHERE id = ?");
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(sql, (value.into(), columns::now(), id))
            .await?;
        Ok(conn.affected_rows() > 0)
    }

    /// Grants or revokes a role in a transaction that locks the row (`FOR UPDATE`), so
    /// concurrent edits from any instance cannot lose each other's change.
    pub(super) async fn edit_roles(
        &self,
        id: u64,
        role: String,
        grant: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.start_transaction(TxOpts::default()).await?;
        let stored: Option<String> = tx
            .exec_first("SELECT roles FROM users WHERE id = ? FOR UPDATE", (id,))
            .await?;
        let Some(stored) = stored else {
            tx.rollback().await?;
            return Ok(false);
        };
        // An early return below drops `tx`; the pool then rolls it back.
        if let Some(roles) = columns::edit_roles(&stored, &role, grant)? {
            tx.exec_drop(
                "UPDATE users SET roles = ?, updated_at = ? WHERE id = ?",
                (roles, columns::now(), id),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// The named lock that serialises migrations; per database, because one server may hold
/// several tollgate databases. Named locks are limited to 64 characters.
const LOCK_NAME: &str = "LEFT(CONCAT('tollgate.migrate.', DATABASE()), 64)";

/// Records which migrations ran; created by the runner itself, before any migration.
const SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INT UNSIGNED NOT NULL PRIMARY KEY,
    name       VARCHAR(255) NOT NULL,
    applied_at BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4";

impl From<mysql_async::Error> for StoreError {
    /// A duplicate user key is a `Conflict`; anything else means the database could not
    /// do its job.
    fn from(e: mysql_async::Error) -> Self {
        if let mysql_async::Error::Server(server) = &e
            && server.code == ER_DUP_ENTRY
            // The message quotes the duplicate value before the index name; only the index
            // name may decide, or a value that looks like a column name would mislead.
            && let Some((_, index)) = server.message.rsplit_once("for key")
            && let Some(field) = columns::conflict_field(index)
        {
            return StoreError::Conflict(field);
        }
        StoreError::Unavailable(e.to_string())
    }
}

//! The two storage backends every storage test runs on: SQLite in a temporary folder, and a
//! fresh MySQL / MariaDB database per test on the server `TOLLGATE_TEST_MYSQL_URL` names.
//!
//! Each MySQL test database is called `tollgate_t_<unix seconds>_<random hex>` and dropped
//! when its [`Backend`] is dropped, panics included; databases left behind by a killed run
//! are swept once they are an hour old.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tempfile::TempDir;
use tollgate::store::{DatabaseTarget, Store};

/// The per-call timeout of test stores: generous, since the build machine is shared.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(10);

/// Test databases older than this are left over from a killed run.
const STALE_AFTER_SECS: u64 = 3600;

/// One backend ready for a test; dropping it deletes the database.
pub struct Backend {
    /// `"sqlite"` or `"mysql"`, for assertion messages.
    pub name: &'static str,
    /// A connected store (migrated when it came from [`each_backend`]).
    pub store: Store,
    /// Where the database is, to open more stores on it.
    pub target: DatabaseTarget,
    /// The same place as a `[database] url` config value (`sqlite:///abs/path` or
    /// `mysql://user@host:port/tollgate_t_...`), for tests that start a gateway.
    pub url: String,
    // Held for their Drop, which deletes the database; declared after `store` so they are
    // dropped after it has let go of the database.
    _folder: Option<TempDir>,
    _database: Option<TestDatabase>,
}

/// Every backend, schema applied. Without `TOLLGATE_TEST_MYSQL_URL` the MySQL backend is
/// left out with a note on stderr, except under `CI=true`, where that is a failure.
pub async fn each_backend() -> Vec<Backend> {
    let backends = each_empty_backend().await;
    for b in &backends {
        let applied = b.store.migrate().await;
        assert!(applied.is_ok(), "{}: migrate: {applied:?}", b.name);
    }
    backends
}

/// Every backend as [`each_backend`] gives them, but with empty databases (no migrations).
pub async fn each_empty_backend() -> Vec<Backend> {
    let mut all = vec![sqlite().await];
    if let Some(server) = mysql_server_url() {
        all.push(mysql(&server).await);
    }
    all
}

/// The MySQL server URL for tests, or `None` (with a note) when MySQL tests are skipped
/// locally. Under `CI=true` a missing URL panics: there, MySQL must never be skipped.
pub fn mysql_server_url() -> Option<String> {
    match std::env::var("TOLLGATE_TEST_MYSQL_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "TOLLGATE_TEST_MYSQL_URL is not set; under CI storage tests must run on MySQL too"
            )
        }
        _ => {
            eprintln!("TOLLGATE_TEST_MYSQL_URL is not set: skipping the MySQL half of this test");
            None
        }
    }
}

impl Backend {
    /// Runs `sql` on a connection of its own and returns the first column of the first row
    /// as an integer: for checking what the database holds, behind the store's back.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        match &self.target {
            DatabaseTarget::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.query_row(sql, [], |r| r.get(0)).unwrap()
            }
            DatabaseTarget::Mysql { url, .. } => {
                let mut conn = Conn::from_url(url).await.unwrap();
                let value: Option<i64> = conn.query_first(sql).await.unwrap();
                conn.disconnect().await.unwrap();
                value.unwrap_or_else(|| panic!("no row from {sql}"))
            }
        }
    }
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    // A folder that does not exist yet: connecting must create it.
    let path = dir.path().join("var").join("tollgate.db");
    let target = DatabaseTarget::Sqlite(path.clone());
    let store = Store::connect(&target, STORE_TIMEOUT).await.unwrap();
    Backend {
        name: "sqlite",
        store,
        url: format!("sqlite://{}", path.display()),
        target,
        _folder: Some(dir),
        _database: None,
    }
}

async fn mysql(server: &str) -> Backend {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if !SWEPT.swap(true, Ordering::SeqCst) {
        sweep_stale(server).await;
    }
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).unwrap();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("tollgate_t_{}_{hex}", unix_now());

    let mut conn = Conn::from_url(server)
        .await
        .unwrap_or_else(|e| panic!("cannot reach TOLLGATE_TEST_MYSQL_URL: {e}"));
    conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    let guard = TestDatabase {
        server: server.to_owned(),
        name: name.clone(),
    };

    let url = with_database(server, &name);
    let target = DatabaseTarget::Mysql {
        url: url.clone(),
        password: None,
    };
    let store = Store::connect(&target, STORE_TIMEOUT).await.unwrap();
    Backend {
        name: "mysql",
        store,
        target,
        url,
        _folder: None,
        _database: Some(guard),
    }
}

/// `server` with its database path replaced by `name`, query parameters kept.
fn with_database(server: &str, name: &str) -> String {
    let (scheme, rest) = server.split_once("://").unwrap();
    let (place, query) = rest
        .split_once('?')
        .map_or((rest, None), |(p, q)| (p, Some(q)));
    let authority = place.split_once('/').map_or(place, |(a, _)| a);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A MySQL database that exists for one test.
struct TestDatabase {
    server: String,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // The test's own runtime may be single-threaded and is busy dropping us, so the
        // drop runs on a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(drop_database(&server, &name))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

async fn drop_database(server: &str, name: &str) -> Result<(), mysql_async::Error> {
    let mut conn = Conn::from_url(server).await?;
    // Bounded, so a lock left by a failed test delays cleanup instead of hanging the run;
    // the sweep removes the database later.
    conn.query_drop("SET SESSION lock_wait_timeout = 20")
        .await?;
    conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
        .await?;
    conn.disconnect().await
}

/// Drops test databases created more than an hour ago by runs that never cleaned up.
async fn sweep_stale(server: &str) {
    let Ok(mut conn) = Conn::from_url(server).await else {
        return;
    };
    let names: Vec<String> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'tollgate\\_t\\_%'")
        .await
        .unwrap_or_default();
    let now = unix_now();
    for name in names {
        let created = name
            .strip_prefix("tollgate_t_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|t| now.saturating_sub(t) > STALE_AFTER_SECS) {
            let _ = conn
                .query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
                .await;
        }
    }
    let _ = conn.disconnect().await;
}

//! A database that hangs or is unreachable gives an error within the store's timeout;
//! it never hangs the caller.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use tokio::net::TcpListener;
use tollgate::store::{DatabaseTarget, Store, StoreError};

use super::backends::{each_backend, mysql_server_url};

/// The short timeout under test.
const SHORT: Duration = Duration::from_millis(400);
/// How long a call under [`SHORT`] may take at most, scheduling noise included.
const BOUND: Duration = Duration::from_secs(3);

fn is_failure(result: &Result<impl std::fmt::Debug, StoreError>) -> bool {
    matches!(
        result,
        Err(StoreError::Timeout | StoreError::Unavailable(_))
    )
}

#[tokio::test]
async fn server_that_accepts_and_never_answers_times_out() {
    // A listener that takes connections and holds them without sending the handshake.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let target = DatabaseTarget::Mysql {
        url: format!("mysql://tollgate@{addr}/tollgate"),
        password: Some("secret".into()),
    };

    let started = Instant::now();
    let result = tokio::time::timeout(BOUND * 2, Store::connect(&target, SHORT))
        .await
        .expect("connect hung past the store timeout");
    assert!(matches!(result, Err(StoreError::Timeout)), "{result:?}");
    assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
    holder.abort();
}

#[tokio::test]
async fn unreachable_or_malformed_targets_are_unavailable() {
    // A port nobody listens on: bind, note the port, close.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let closed = DatabaseTarget::Mysql {
        url: format!("mysql://u@{addr}/db"),
        password: None,
    };
    let no_db = DatabaseTarget::Mysql {
        url: format!("mysql://u@{addr}"),
        password: None,
    };
    let garbage = DatabaseTarget::Mysql {
        url: "not a url".into(),
        password: None,
    };
    for target in [closed, no_db, garbage] {
        let result = Store::connect(&target, SHORT).await;
        assert!(is_failure(&result), "{target:?}: {result:?}");
    }

    // A SQLite path whose folder cannot be created, because a file is in the way.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let blocked = DatabaseTarget::Sqlite(dir.path().join("file").join("tollgate.db"));
    let result = Store::connect(&blocked, SHORT).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn mysql_password_overrides_the_url() {
    let Some(server) = mysql_server_url() else {
        return;
    };
    let target = DatabaseTarget::Mysql {
        url: server,
        password: Some("certainly-not-the-password".into()),
    };
    let result = Store::connect(&target, Duration::from_secs(10)).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_row_gives_an_error_within_the_timeout() {
    for b in each_backend().await {
        let user = b
            .store
            .create_user(tollgate::store::NewUser {
                username: "lock".into(),
                email: "lock@example.com".into(),
                password_hash: "h".into(),
                roles: Default::default(),
            })
            .await
            .unwrap();
        let impatient = Store::connect(&b.target, SHORT).await.unwrap();

        // Another client holds a write lock on the row (MySQL) or the file (SQLite).
        let lock = RowLock::take(&b.target, user.id).await;
        let started = Instant::now();
        let result = tokio::time::timeout(BOUND * 2, impatient.set_disabled(user.id, true))
            .await
            .expect("call hung past the store timeout");
        let took = started.elapsed();
        assert!(is_failure(&result), "{}: {result:?}", b.name);
        assert!(took < BOUND, "{}: took {took:?}", b.name);
        lock.release().await;

        // Once the lock is gone the same store works again.
        let found = impatient.user_by_id(user.id).await.unwrap();
        assert_eq!(found.map(|u| u.id), Some(user.id), "{}", b.name);
    }
}

/// A write lock held by a connection outside the store.
enum RowLock {
    Sqlite(rusqlite::Connection),
    Mysql(mysql_async::Conn),
}

impl RowLock {
    async fn take(target: &DatabaseTarget, id: u64) -> RowLock {
        match target {
            DatabaseTarget::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
                RowLock::Sqlite(conn)
            }
            DatabaseTarget::Mysql { url, .. } => {
                let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
                conn.query_drop("START TRANSACTION").await.unwrap();
                let sql = format!("SELECT id FROM users WHERE id = {id} FOR UPDATE");
                let _: Option<u64> = conn.query_first(sql).await.unwrap();
                RowLock::Mysql(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            RowLock::Sqlite(conn) => conn.execute_batch("ROLLBACK").unwrap(),
            RowLock::Mysql(mut conn) => {
                conn.query_drop("ROLLBACK").await.unwrap();
                conn.disconnect().await.unwrap();
            }
        }
    }
}

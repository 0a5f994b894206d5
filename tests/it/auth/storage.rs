//! Storage failure fails closed (SPEC 9): when the database goes away, sign-in and
//! protected routes answer 503 `storageUnavailable`, never 200.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable as _;
use serde_json::json;
use tokio::net::TcpListener;
use tollgate::auth::identity::USER_REFRESH;
use tollgate::server::Running;
use tollgate::store::DatabaseTarget;

use super::super::harness::{Config, TestUpstream, WAIT, dead_upstream};
use super::super::store::backends::Backend;
use super::{
    Gate, PASSWORD, each_backend, expect_error, expect_passed, get_bearer, login, login_as, on_db,
    register, register_as,
};

/// Takes the database away behind the gateway's back: MySQL drops the whole database,
/// SQLite (one file the gateway holds open) drops the users table.
async fn destroy(b: &Backend) {
    match &b.target {
        DatabaseTarget::Mysql { url, .. } => {
            let name = url.rsplit('/').next().unwrap().split('?').next().unwrap();
            let mut conn = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
            conn.query_drop(format!("DROP DATABASE `{name}`"))
                .await
                .unwrap();
            conn.disconnect().await.unwrap();
        }
        DatabaseTarget::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch("DROP TABLE users").unwrap();
        }
    }
}

#[tokio::test]
async fn a_lost_database_means_503_for_login_register_and_protected_routes() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let config = on_db(&b, "timeout = \"1s\"").route_with(
            "/app",
            &up.url(),
            "policy = \"authenticated\"",
        );
        let gate = Gate::start(&config).await;
        register(&gate, "alice").await;
        let token = login(&gate, "alice").await;
        expect_passed(&get_bearer(&gate, "/app/x", &token).await, "before");

        destroy(&b).await;
        let started = Instant::now();
        let resp = login_as(&gate, &json!({"username": "alice", "password": PASSWORD})).await;
        expect_error(
            resp,
            503,
            "storageUnavailable",
            &format!("{}: login", b.name),
        )
        .await;
        let body = json!({"username": "bob", "email": "bob@example.test", "password": PASSWORD});
        let resp = register_as(&gate, &body).await;
        expect_error(
            resp,
            503,
            "storageUnavailable",
            &format!("{}: register", b.name),
        )
        .await;

        // Once the cached user record is stale, a request must re-read it and cannot.
        gate.advance(USER_REFRESH + Duration::from_secs(1));
        let before = up.received().len();
        let resp = get_bearer(&gate, "/app/x", &token).await;
        expect_error(
            resp,
            503,
            "storageUnavailable",
            &format!("{}: proxied", b.name),
        )
        .await;
        let resp = get_bearer(&gate, "/auth/me", &token).await;
        expect_error(resp, 503, "storageUnavailable", &format!("{}: me", b.name)).await;
        assert_eq!(
            up.received().len(),
            before,
            "{}: reached the upstream",
            b.name
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{}: the failures took {:?}",
            b.name,
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_gateway_whose_mysql_never_answers_does_not_start() {
    // Accepts connections and never says a word: the MySQL handshake never comes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    let config = Config::new()
        .section(&format!(
            "[database]\nurl = \"mysql://tollgate@{addr}/tollgate\"\ntimeout = \"1s\""
        ))
        .route("/", &dead_upstream());
    std::fs::write(&path, config.build()).unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(WAIT, Running::start(&path))
        .await
        .expect("start hung on a silent database");
    assert!(result.is_err(), "started on a database that never answered");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    holder.abort();
}

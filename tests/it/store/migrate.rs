//! Schema migrations: applied once, recorded, idempotent, and safe when two instances
//! start at the same moment.

use tollgate::store::{DatabaseTarget, Store};

use super::backends::{STORE_TIMEOUT, each_empty_backend};

#[tokio::test]
async fn migrate_applies_then_is_idempotent() {
    for b in each_empty_backend().await {
        let first = b.store.migrate().await.unwrap();
        assert!(
            first >= 1,
            "{}: nothing applied on an empty database",
            b.name
        );
        let recorded = b.query_i64("SELECT COUNT(*) FROM schema_migrations").await;
        assert_eq!(recorded, first as i64, "{}", b.name);

        assert_eq!(
            b.store.migrate().await.unwrap(),
            0,
            "{}: second run",
            b.name
        );
        // A restart, reaching the same database through its config URL, finds nothing to do.
        let again = Store::connect(&target_of(&b.url), STORE_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(
            again.migrate().await.unwrap(),
            0,
            "{}: after reconnect",
            b.name
        );
        assert_eq!(
            b.query_i64("SELECT COUNT(*) FROM users").await,
            0,
            "{}",
            b.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_migrating_at_once_apply_each_step_once() {
    for b in each_empty_backend().await {
        let other = Store::connect(&b.target, STORE_TIMEOUT).await.unwrap();
        let (one, two) = tokio::join!(b.store.migrate(), other.migrate());
        let (one, two) = (one.unwrap(), two.unwrap());
        assert!(
            (one == 0) != (two == 0),
            "{}: exactly one instance migrates, got {one} and {two}",
            b.name
        );
        let recorded = b.query_i64("SELECT COUNT(*) FROM schema_migrations").await;
        assert_eq!(recorded, (one + two) as i64, "{}", b.name);
        assert_eq!(b.store.migrate().await.unwrap(), 0, "{}", b.name);
    }
}

#[tokio::test]
async fn calls_before_migrating_fail_without_hanging() {
    for b in each_empty_backend().await {
        // No users table yet: an error the caller turns into 503, not a panic or a hang.
        let missing = b.store.user_by_login("anyone").await;
        assert!(
            matches!(missing, Err(tollgate::store::StoreError::Unavailable(_))),
            "{}: {missing:?}",
            b.name
        );
    }
}

/// The target a `[database] url` names, as the config would build it.
fn target_of(url: &str) -> DatabaseTarget {
    match url.strip_prefix("sqlite://") {
        Some(path) => DatabaseTarget::Sqlite(path.into()),
        None => DatabaseTarget::Mysql {
            url: url.into(),
            password: None,
        },
    }
}

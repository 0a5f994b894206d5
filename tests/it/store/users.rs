//! User accounts on both backends: registration, case-insensitive lookups and uniqueness,
//! listing, password changes, disabling and roles.

use std::collections::BTreeSet;

use tollgate::store::{NewUser, StoreError, User};

use super::backends::each_backend;

/// A registration with the given names and roles.
fn new_user(username: &str, email: &str, roles: &[&str]) -> NewUser {
    NewUser {
        username: username.into(),
        email: email.into(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$hash-of-{username}"),
        roles: roles_of(roles),
    }
}

fn roles_of(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn create_then_find_by_username_and_email_in_any_case() {
    for b in each_backend().await {
        let before = now();
        let alice = b
            .store
            .create_user(new_user("Alice", "Alice@Example.COM", &["ops"]))
            .await
            .unwrap();
        let after = now();
        assert!(alice.id > 0, "{}", b.name);
        assert_eq!(alice.username, "Alice", "{}: kept as given", b.name);
        assert_eq!(alice.email, "Alice@Example.COM", "{}", b.name);
        assert_eq!(alice.roles, roles_of(&["ops"]), "{}", b.name);
        assert!(!alice.disabled, "{}", b.name);
        assert!((before..=after).contains(&alice.created_at), "{}", b.name);
        assert_eq!(alice.created_at, alice.updated_at, "{}", b.name);

        for login in [
            "Alice",
            "alice",
            "ALICE",
            "alice@example.com",
            "ALICE@EXAMPLE.com",
        ] {
            let found = b.store.user_by_login(login).await.unwrap();
            assert_eq!(found.as_ref(), Some(&alice), "{}: {login}", b.name);
        }
        assert_eq!(
            b.store.user_by_id(alice.id).await.unwrap(),
            Some(alice.clone())
        );
        assert_eq!(
            b.store.user_by_login("bob").await.unwrap(),
            None,
            "{}",
            b.name
        );
        assert_eq!(
            b.store.user_by_login("bob@example.com").await.unwrap(),
            None
        );

        // The database holds the name as typed and the lower-cased key next to it.
        let stored = b
            .query_i64("SELECT COUNT(*) FROM users WHERE username = 'Alice' AND username_key = 'alice' AND email_key = 'alice@example.com'")
            .await;
        assert_eq!(stored, 1, "{}", b.name);
        assert_eq!(b.store.backend(), b.name);
    }
}

#[tokio::test]
async fn unicode_names_match_case_insensitively() {
    for b in each_backend().await {
        let user = b
            .store
            .create_user(new_user("Ärger", "Ölaf@Beispiel.de", &[]))
            .await
            .unwrap();
        let found = b.store.user_by_login("äRGER").await.unwrap();
        assert_eq!(found.map(|u| u.id), Some(user.id), "{}", b.name);
        let found = b.store.user_by_login("ölaf@beispiel.DE").await.unwrap();
        assert_eq!(found.map(|u| u.id), Some(user.id), "{}", b.name);
        // Accents are not folded away: a different name is a different user.
        assert_eq!(
            b.store.user_by_login("arger").await.unwrap(),
            None,
            "{}",
            b.name
        );
        let other = b
            .store
            .create_user(new_user("Arger", "arger@x.de", &[]))
            .await;
        assert!(other.is_ok(), "{}: {other:?}", b.name);
    }
}

#[tokio::test]
async fn duplicate_username_or_email_in_another_case_conflicts() {
    for b in each_backend().await {
        let first = b
            .store
            .create_user(new_user("Carol", "carol@example.com", &[]))
            .await
            .unwrap();

        let same_name = b
            .store
            .create_user(new_user("cAROL", "other@example.com", &[]))
            .await;
        assert!(
            matches!(same_name, Err(StoreError::Conflict("username"))),
            "{}: {same_name:?}",
            b.name
        );
        let same_email = b
            .store
            .create_user(new_user("Dave", "CAROL@Example.Com", &[]))
            .await;
        assert!(
            matches!(same_email, Err(StoreError::Conflict("email"))),
            "{}: {same_email:?}",
            b.name
        );

        // Refused registrations leave nothing behind, and the names stay usable afterwards.
        assert_eq!(
            b.store.list_users().await.unwrap(),
            vec![first],
            "{}",
            b.name
        );
        let dave = b
            .store
            .create_user(new_user("Dave", "dave@example.com", &[]))
            .await;
        assert!(dave.is_ok(), "{}: {dave:?}", b.name);
    }
}

#[tokio::test]
async fn list_is_ordered_by_id() {
    for b in each_backend().await {
        assert_eq!(
            b.store.list_users().await.unwrap(),
            Vec::<User>::new(),
            "{}",
            b.name
        );
        let mut created = Vec::new();
        for name in ["zed", "amy", "mia"] {
            let user = b
                .store
                .create_user(new_user(name, &format!("{name}@example.com"), &[]))
                .await
                .unwrap();
            created.push(user);
        }
        let listed = b.store.list_users().await.unwrap();
        assert_eq!(listed, created, "{}", b.name);
        assert!(listed.windows(2).all(|w| w[0].id < w[1].id), "{}", b.name);
    }
}

#[tokio::test]
async fn password_hash_can_be_replaced() {
    for b in each_backend().await {
        let user = b
            .store
            .create_user(new_user("erin", "erin@example.com", &[]))
            .await
            .unwrap();
        assert!(
            b.store
                .set_password_hash(user.id, "$argon2id$new")
                .await
                .unwrap()
        );
        let after = b.store.user_by_login("ERIN").await.unwrap().unwrap();
        assert_eq!(after.password_hash, "$argon2id$new", "{}", b.name);
        assert!(after.updated_at >= user.updated_at, "{}", b.name);
        assert_eq!(after.created_at, user.created_at, "{}", b.name);
        assert_eq!(after.roles, user.roles, "{}: nothing else changes", b.name);
    }
}

#[tokio::test]
async fn disable_and_enable() {
    for b in each_backend().await {
        let user = b
            .store
            .create_user(new_user("frank", "frank@example.com", &[]))
            .await
            .unwrap();
        assert!(
            b.store.set_disabled(user.id, true).await.unwrap(),
            "{}",
            b.name
        );
        assert!(b.store.user_by_id(user.id).await.unwrap().unwrap().disabled);
        // Setting what is already set still reports that the user exists.
        assert!(
            b.store.set_disabled(user.id, true).await.unwrap(),
            "{}",
            b.name
        );
        assert!(
            b.store.set_disabled(user.id, false).await.unwrap(),
            "{}",
            b.name
        );
        let enabled = b
            .store
            .user_by_login("frank@example.com")
            .await
            .unwrap()
            .unwrap();
        assert!(!enabled.disabled, "{}", b.name);
    }
}

#[tokio::test]
async fn grant_and_revoke_roles() {
    for b in each_backend().await {
        let user = b
            .store
            .create_user(new_user("gina", "gina@example.com", &["viewer"]))
            .await
            .unwrap();
        let roles = || async { b.store.user_by_id(user.id).await.unwrap().unwrap().roles };

        assert!(
            b.store.grant_role(user.id, "admin").await.unwrap(),
            "{}",
            b.name
        );
        assert_eq!(roles().await, roles_of(&["admin", "viewer"]), "{}", b.name);
        // Granting again is not an error and changes nothing.
        assert!(
            b.store.grant_role(user.id, "admin").await.unwrap(),
            "{}",
            b.name
        );
        assert_eq!(roles().await, roles_of(&["admin", "viewer"]), "{}", b.name);
        // Any characters are fine in a role name, separators included.
        assert!(b.store.grant_role(user.id, "team,red ü").await.unwrap());
        assert_eq!(
            roles().await,
            roles_of(&["admin", "team,red ü", "viewer"]),
            "{}",
            b.name
        );

        // Revoking a role the user lacks: the user exists, so `true`, and nothing changes.
        assert!(
            b.store.revoke_role(user.id, "billing").await.unwrap(),
            "{}",
            b.name
        );
        assert!(
            b.store.revoke_role(user.id, "admin").await.unwrap(),
            "{}",
            b.name
        );
        assert!(
            b.store.revoke_role(user.id, "team,red ü").await.unwrap(),
            "{}",
            b.name
        );
        assert_eq!(roles().await, roles_of(&["viewer"]), "{}", b.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_grants_are_all_kept() {
    for b in each_backend().await {
        let user = b
            .store
            .create_user(new_user("hank", "hank@example.com", &[]))
            .await
            .unwrap();
        let grants: Vec<_> = (0..12)
            .map(|i| {
                let store = b.store.clone();
                tokio::spawn(async move { store.grant_role(user.id, &format!("r{i:02}")).await })
            })
            .collect();
        for grant in grants {
            assert!(grant.await.unwrap().unwrap(), "{}", b.name);
        }
        let roles = b.store.user_by_id(user.id).await.unwrap().unwrap().roles;
        let expected: BTreeSet<String> = (0..12).map(|i| format!("r{i:02}")).collect();
        assert_eq!(roles, expected, "{}: a concurrent grant was lost", b.name);
    }
}

#[tokio::test]
async fn unknown_ids_are_none_or_false() {
    for b in each_backend().await {
        let known = b
            .store
            .create_user(new_user("ivy", "ivy@example.com", &[]))
            .await
            .unwrap();
        for id in [0, known.id + 1000, i64::MAX as u64, u64::MAX] {
            let s = &b.store;
            assert_eq!(s.user_by_id(id).await.unwrap(), None, "{}: {id}", b.name);
            assert!(
                !s.set_password_hash(id, "x").await.unwrap(),
                "{}: {id}",
                b.name
            );
            assert!(!s.set_disabled(id, true).await.unwrap(), "{}: {id}", b.name);
            assert!(
                !s.grant_role(id, "admin").await.unwrap(),
                "{}: {id}",
                b.name
            );
            assert!(
                !s.revoke_role(id, "admin").await.unwrap(),
                "{}: {id}",
                b.name
            );
        }
        // The one real user was not touched by any of that.
        assert_eq!(
            b.store.list_users().await.unwrap(),
            vec![known],
            "{}",
            b.name
        );
    }
}

//! `POST /auth/register`: 201 with the new user, 409 for a taken name or address in any
//! letter case, 400 for malformed input, 403 when closed, 413 for an oversized body.

use serde_json::{Value, json};

use super::super::harness::dead_upstream;
use super::{Gate, PASSWORD, each_backend, expect_error, http, on_db, register_as};

#[tokio::test]
async fn register_creates_the_user_and_refuses_taken_names_in_any_case() {
    for b in each_backend().await {
        let gate = Gate::start(&on_db(&b, "").route("/", &dead_upstream())).await;
        let resp = register_as(
            &gate,
            &json!({"username": "Alice", "email": "Alice@Example.test", "password": PASSWORD}),
        )
        .await;
        assert_eq!(resp.status(), 201, "{}", b.name);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["success"], true, "{}: {body}", b.name);
        let user = body["user"].as_object().unwrap();
        let mut fields: Vec<&str> = user.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["email", "id", "username"], "{}: {body}", b.name);
        assert_eq!(user["username"], "Alice", "{}", b.name);
        assert_eq!(user["email"], "Alice@Example.test", "{}", b.name);
        let id = user["id"].as_u64().expect("numeric id");

        // The database holds the user with an argon2id hash, never the password.
        let stored = b.store.user_by_login("alice").await.unwrap().unwrap();
        assert_eq!(stored.id, id, "{}", b.name);
        assert!(stored.password_hash.starts_with("$argon2id$"), "{}", b.name);
        assert!(!stored.password_hash.contains(PASSWORD), "{}", b.name);

        for (username, email) in [
            ("ALICE", "someone.else@example.test"),
            ("alice", "alice2@example.test"),
            ("bob", "alice@EXAMPLE.TEST"),
            ("bob", "ALICE@example.test"),
        ] {
            let resp = register_as(
                &gate,
                &json!({"username": username, "email": email, "password": PASSWORD}),
            )
            .await;
            let what = format!("{}: {username} / {email}", b.name);
            expect_error(resp, 409, "userExists", &what).await;
        }
        assert_eq!(b.store.list_users().await.unwrap().len(), 1, "{}", b.name);
    }
}

#[tokio::test]
async fn malformed_registrations_are_400_and_create_nothing() {
    for b in each_backend().await {
        let gate = Gate::start(&on_db(&b, "").route("/", &dead_upstream())).await;
        let bodies = [
            "{not json",
            "",
            "[]",
            r#"{"username":"carol","email":"carol@example.test"}"#,
            r#"{"username":"carol","password":"correct horse battery"}"#,
            r#"{"email":"carol@example.test","password":"correct horse battery"}"#,
            r#"{"username":"carol","email":"carol@example.test","password":"short"}"#,
            r#"{"username":"carol","email":"carol@example.test","password":12345678901}"#,
            r#"{"username":"ca","email":"carol@example.test","password":"correct horse battery"}"#,
            r#"{"username":"car ol","email":"carol@example.test","password":"correct horse battery"}"#,
            r#"{"username":"carol@x","email":"carol@example.test","password":"correct horse battery"}"#,
            r#"{"username":"carol","email":"no-at-sign","password":"correct horse battery"}"#,
        ];
        for body in bodies {
            let resp = http()
                .post(gate.url("/auth/register"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let what = format!("{}: {body}", b.name);
            expect_error(resp, 400, "invalidRequest", &what).await;
        }
        let long_username = "u".repeat(65);
        let resp = register_as(
            &gate,
            &json!({"username": long_username, "email": "u@example.test", "password": PASSWORD}),
        )
        .await;
        expect_error(resp, 400, "invalidRequest", "65-character username").await;
        assert!(b.store.list_users().await.unwrap().is_empty(), "{}", b.name);
    }
}

#[tokio::test]
async fn closed_registration_is_403() {
    for b in each_backend().await {
        let login = "[login]\nregistration = false\n\n\
                     [login.argon2]\nmemory_kib = 1024\niterations = 1\nparallelism = 1";
        let config = on_db(&b, "").section(login).route("/", &dead_upstream());
        let gate = Gate::start(&config).await;
        let resp = register_as(
            &gate,
            &json!({"username": "dave", "email": "dave@example.test", "password": PASSWORD}),
        )
        .await;
        expect_error(resp, 403, "registrationClosed", b.name).await;
        assert!(b.store.list_users().await.unwrap().is_empty(), "{}", b.name);
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    for b in each_backend().await {
        let config = on_db(&b, "")
            .server("max_body_bytes = 1024")
            .route("/", &dead_upstream());
        let gate = Gate::start(&config).await;
        let body = json!({
            "username": "erin",
            "email": "erin@example.test",
            "password": PASSWORD,
            "padding": "p".repeat(4096),
        });
        let resp = register_as(&gate, &body).await;
        expect_error(resp, 413, "payloadTooLarge", "register").await;
        let resp = http()
            .post(gate.url("/auth/login"))
            .json(&json!({"username": "erin", "password": "p".repeat(4096)}))
            .send()
            .await
            .unwrap();
        expect_error(resp, 413, "payloadTooLarge", "login").await;
        assert!(b.store.list_users().await.unwrap().is_empty(), "{}", b.name);
    }
}

//! `POST /auth/login` (JSON and browser form) and `GET /auth/login` (the sign-in page).
//! Unknown user, wrong password and disabled account are indistinguishable; an overlong
//! password is refused before any hashing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use super::super::harness::{WAIT, dead_upstream};
use super::{
    BROWSER, Gate, INVALID_CREDENTIALS, PASSWORD, claims, each_backend, header, header_all, http,
    login_as, on_db, post_form, register,
};

#[tokio::test]
async fn json_login_by_email_in_any_case_or_by_username() {
    for b in each_backend().await {
        let gate = Gate::start(&on_db(&b, "").route("/", &dead_upstream())).await;
        let id = register(&gate, "alice").await;
        let mut sids = Vec::new();
        for body in [
            json!({"email": "ALICE@Example.TEST", "password": PASSWORD}),
            json!({"email": "alice@example.test", "password": PASSWORD}),
            json!({"username": "Alice", "password": PASSWORD}),
        ] {
            let what = format!("{}: {body}", b.name);
            let resp = login_as(&gate, &body).await;
            assert_eq!(resp.status(), 200, "{what}");
            let gn = header(&resp, "gn-access-token").expect("GN-Access-Token");
            let got: Value = resp.json().await.unwrap();
            assert_eq!(got["success"], true, "{what}");
            assert_eq!(got["token_type"], "Bearer", "{what}");
            let token = got["access_token"].as_str().unwrap();
            assert_eq!(token, gn, "{what}: header and body carry the same token");
            let expires_in = got["expires_in"].as_u64().expect("numeric expires_in");
            assert!((1..=3600).contains(&expires_in), "{what}: {expires_in}");
            assert_eq!(claims(token)["sub"], id.to_string(), "{what}");
            sids.push(claims(token)["sid"].as_str().unwrap().to_owned());
        }
        sids.dedup();
        assert_eq!(
            sids.len(),
            3,
            "{}: every login starts a new session",
            b.name
        );
    }
}

#[tokio::test]
async fn unknown_user_wrong_password_and_disabled_user_look_the_same() {
    for b in each_backend().await {
        let gate = Gate::start(&on_db(&b, "").route("/", &dead_upstream())).await;
        register(&gate, "alice").await;
        let disabled = register(&gate, "mallory").await;
        assert!(b.store.set_disabled(disabled, true).await.unwrap());

        let attempts = [
            (
                "unknown email",
                json!({"email": "nobody@example.test", "password": PASSWORD}),
            ),
            (
                "unknown username",
                json!({"username": "nobody", "password": PASSWORD}),
            ),
            (
                "wrong password",
                json!({"email": "alice@example.test", "password": "wrong password"}),
            ),
            (
                "wrong password by name",
                json!({"username": "alice", "password": "Correct horse battery"}),
            ),
            (
                "disabled user",
                json!({"username": "mallory", "password": PASSWORD}),
            ),
            (
                "2 KB password",
                json!({"username": "alice", "password": "x".repeat(2048)}),
            ),
        ];
        for (what, body) in attempts {
            let resp = login_as(&gate, &body).await;
            let status = resp.status().as_u16();
            assert!(header(&resp, "gn-access-token").is_none(), "{what}");
            assert!(header(&resp, "set-cookie").is_none(), "{what}");
            let text = resp.text().await.unwrap();
            assert_eq!(
                (status, text.as_str()),
                (401, INVALID_CREDENTIALS),
                "{}: {what}",
                b.name
            );
        }
    }
}

/// With the one hashing slot held by slow hashes, an ordinary login waits for it and is
/// told the server is busy (503), while a password over 1024 bytes is refused at once with
/// the usual 401: it never queued for hashing.
#[tokio::test]
async fn an_overlong_password_is_refused_without_hashing() {
    let login = "[login]\nmax_concurrent_hashes = 1\nhash_wait = \"30ms\"\n\n\
                 [login.argon2]\nmemory_kib = 65536\niterations = 3\nparallelism = 1";
    for b in each_backend().await {
        let gate = Gate::start(&on_db(&b, "").section(login).route("/", &dead_upstream())).await;
        let wrong = json!({"username": "nobody", "password": "wrong password"});
        let stop = Arc::new(AtomicBool::new(false));
        // Keeps the only slot busy with (dummy-hash) verifications.
        let hammer = tokio::spawn({
            let (url, body, stop) = (gate.url("/auth/login"), wrong.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::SeqCst) {
                    http().post(&url).json(&body).send().await.unwrap();
                }
            }
        });
        let mut busy = false;
        for _ in 0..100 {
            if login_as(&gate, &wrong).await.status() == 503 {
                busy = true;
                break;
            }
        }
        assert!(busy, "{}: the hashing slot never looked busy", b.name);
        let long = json!({"username": "nobody", "password": "x".repeat(2048)});
        let resp = login_as(&gate, &long).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        stop.store(true, Ordering::SeqCst);
        tokio::time::timeout(WAIT, hammer).await.unwrap().unwrap();
        assert_eq!(
            (status, text.as_str()),
            (401, INVALID_CREDENTIALS),
            "{}: a 2 KB password waited for a hashing slot",
            b.name
        );
    }
}

/// `login.hash_cpus`, set by a reload, keeps the new hashing threads to the CPUs named;
/// sign-in works as ever.
#[tokio::test]
async fn hashing_threads_keep_to_the_cpus_configured() {
    let process = tollgate::auth::CpuList::of_process().unwrap();
    let last = *process.cpus().last().unwrap();
    let cheap = "[login.argon2]\nmemory_kib = 1024\niterations = 1\nparallelism = 1";
    for b in each_backend().await {
        let config = |login: &str| {
            on_db(&b, "")
                .section(&format!("[login]\n{login}\n\n{cheap}"))
                .route("/", &dead_upstream())
        };
        let gate = Gate::start(&config("")).await;
        register(&gate, "kept").await;
        gate.gw
            .rewrite_config(&config(&format!("hash_cpus = [{last}]")).build());
        gate.gw.reload().unwrap_or_else(|e| panic!("{e}"));
        let body = json!({"username": "kept", "password": PASSWORD});
        assert_eq!(login_as(&gate, &body).await.status(), 200, "{}", b.name);
        // No other test keeps hashing threads to a CPU, so a hashing thread of this process
        // on that CPU alone is one of this gateway's new ones.
        let kept_to_last = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| {
                let dir = task.ok()?.path();
                let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
                let status = std::fs::read_to_string(dir.join("status")).ok()?;
                let allowed = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
                    .trim()
                    .to_owned();
                (comm.trim() == "tollgate-hash").then_some(allowed)
            })
            .filter(|allowed| *allowed == last.to_string())
            .count();
        assert!(
            kept_to_last >= 1,
            "{}: no hashing thread on CPU {last} alone",
            b.name
        );
    }
}

#[tokio::test]
async fn form_login_sets_the_access_cookie_and_redirects_to_a_safe_rd() {
    for b in each_backend().await {
        for secure in [false, true] {
            let config = on_db(&b, "")
                .section(&format!("[cookies]\nsecure = {secure}"))
                .route("/", &dead_upstream());
            let gate = Gate::start(&config).await;
            let user = format!("user{secure}");
            register(&gate, &user).await;
            let name = if secure {
                "__Host-tollgate-access"
            } else {
                "tollgate-access"
            };
            for (rd, location) in [
                (Some("/app"), "/app"),
                (Some("/app/x?y=1"), "/app/x?y=1"),
                (Some("//evil.test"), "/"),
                (Some("https://evil.test/"), "/"),
                (Some("/\\evil.test"), "/"),
                (None, "/"),
            ] {
                let what = format!("{} secure={secure} rd={rd:?}", b.name);
                let mut form = vec![("login", user.as_str()), ("password", PASSWORD)];
                form.extend(rd.map(|rd| ("rd", rd)));
                let resp = post_form(&gate, &form).await;
                assert_eq!(resp.status(), 303, "{what}");
                assert_eq!(
                    header(&resp, "location").as_deref(),
                    Some(location),
                    "{what}"
                );
                let token = header(&resp, "gn-access-token").expect("GN-Access-Token");
                let cookies = header_all(&resp, "set-cookie");
                let access: Vec<&String> = cookies
                    .iter()
                    .filter(|c| c.starts_with(&format!("{name}=")))
                    .collect();
                assert_eq!(access.len(), 1, "{what}: {cookies:?}");
                let cookie = access[0];
                let value = cookie[name.len() + 1..].split(';').next().unwrap();
                assert_eq!(value, token, "{what}");
                let attrs: Vec<String> = cookie
                    .split(';')
                    .skip(1)
                    .map(|a| a.trim().to_ascii_lowercase())
                    .collect();
                assert!(attrs.contains(&"path=/".into()), "{what}: {cookie}");
                assert!(attrs.contains(&"httponly".into()), "{what}: {cookie}");
                assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{what}");
                assert_eq!(attrs.contains(&"secure".into()), secure, "{what}: {cookie}");
            }
            let resp = post_form(&gate, &[("login", &user), ("password", "nope nope")]).await;
            assert_eq!(resp.status(), 401, "{}: bad form login", b.name);
            assert!(header(&resp, "set-cookie").is_none());
            assert!(header(&resp, "location").is_none());
        }
    }
}

#[tokio::test]
async fn login_page_keeps_rd_escaped() {
    let gate =
        Gate::start(&super::super::harness::Config::new().route("/", &dead_upstream())).await;
    let resp = http()
        .get(gate.url("/auth/login?rd=%2Fx%3Fa%3D1"))
        .header("accept", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = header(&resp, "content-type").unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = resp.text().await.unwrap();
    assert!(page.contains("<form"), "{page}");
    assert!(page.contains("action=\"/auth/login\""), "{page}");
    assert!(page.contains("method=\"post\""), "{page}");
    assert!(page.contains("name=\"rd\" value=\"/x?a=1\""), "{page}");

    let resp = http()
        .get(gate.url("/auth/login?rd=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(!page.contains("<script>"), "{page}");
    let escaped = "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;";
    assert!(
        page.contains(&format!("name=\"rd\" value=\"{escaped}\"")),
        "{page}"
    );
}

#[tokio::test]
async fn every_sign_in_starts_a_session_the_metrics_count() {
    for b in each_backend().await {
        let gate = Gate::start(&on_db(&b, "").route("/", &dead_upstream())).await;
        register(&gate, "carol").await;
        for _ in 0..3 {
            let resp = login_as(&gate, &json!({"username": "carol", "password": PASSWORD})).await;
            assert_eq!(resp.status(), 200, "{}", b.name);
        }
        let metrics = gate.gw.metrics().await;
        assert!(
            metrics.contains("tollgate_sessions 3\n"),
            "{}: {metrics}",
            b.name
        );
    }
}

//! Sessions (SPEC 4.2) through the clock: idle and absolute timeouts, a session lost with
//! a restart, and a disabled user whose every session ends at once.

use std::time::Duration;

use tollgate::auth::identity::USER_REFRESH;

use super::super::harness::TestUpstream;
use super::{
    Gate, INVALID_CREDENTIALS, each_backend, expect_error, expect_passed, get_bearer, login,
    login_as, protected, register,
};

const MINUTE: Duration = Duration::from_secs(60);

/// Asserts a 401 `sessionExpired` with the `invalid_token` challenge.
async fn assert_session_expired(gate: &Gate, up: &TestUpstream, token: &str, what: &str) {
    let before = up.received().len();
    let resp = get_bearer(gate, "/app/x", token).await;
    let challenge = expect_error(resp, 401, "sessionExpired", what).await;
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{what}: WWW-Authenticate {challenge:?}"
    );
    assert_eq!(up.received().len(), before, "{what}: reached the upstream");
}

#[tokio::test]
async fn a_session_ends_after_the_idle_timeout_and_activity_keeps_it_alive() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let gate =
            Gate::start(&protected(&b, &up).section("[sessions]\nidle_timeout = \"5m\"")).await;
        register(&gate, "alice").await;
        let token = login(&gate, "alice").await;

        gate.advance(4 * MINUTE);
        expect_passed(&get_bearer(&gate, "/app/x", &token).await, "+4m");
        gate.advance(4 * MINUTE);
        expect_passed(&get_bearer(&gate, "/app/x", &token).await, "+8m, 4m idle");
        gate.advance(6 * MINUTE);
        assert_session_expired(&gate, &up, &token, &format!("{}: 6m idle", b.name)).await;
        let resp = get_bearer(&gate, "/auth/me", &token).await;
        expect_error(resp, 401, "sessionExpired", "me after idle").await;
        // A browser whose session ended is sent to sign in again.
        let resp = super::http()
            .get(gate.url("/app/x?y=1"))
            .header("accept", super::BROWSER)
            .header("cookie", format!("__Host-tollgate-access={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302, "{}: browser after idle", b.name);
        let location = super::header(&resp, "location").unwrap_or_default();
        let query = location.strip_prefix("/auth/login?").unwrap_or_default();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        assert_eq!(pairs, [("rd".into(), "/app/x?y=1".into())], "{location}");
        // Nothing revives it.
        assert_session_expired(&gate, &up, &token, &format!("{}: again", b.name)).await;
    }
}

#[tokio::test]
async fn a_session_ends_at_the_absolute_timeout_despite_activity() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let sessions = "[sessions]\nidle_timeout = \"5m\"\nabsolute_timeout = \"1h\"";
        let gate = Gate::start(&protected(&b, &up).section(sessions)).await;
        register(&gate, "alice").await;
        let mut token = login(&gate, "alice").await;
        for step in 1..=14 {
            gate.advance(4 * MINUTE);
            let resp = get_bearer(&gate, "/app/x", &token).await;
            token = expect_passed(&resp, &format!("{}: +{}m", b.name, step * 4));
        }
        gate.advance(4 * MINUTE);
        assert_session_expired(&gate, &up, &token, &format!("{}: +60m", b.name)).await;
    }
}

#[tokio::test]
async fn a_token_whose_session_is_gone_is_refused_after_a_restart() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let config = protected(&b, &up);
        let first = Gate::start(&config).await;
        register(&first, "alice").await;
        let token = login(&first, "alice").await;
        expect_passed(
            &get_bearer(&first, "/app/x", &token).await,
            "before the restart",
        );
        first.gw.shutdown().await;

        let second = Gate::start(&config).await;
        assert_session_expired(&second, &up, &token, &format!("{}: after restart", b.name)).await;
        let resp = get_bearer(&second, "/auth/me", &token).await;
        expect_error(resp, 401, "sessionExpired", "me after restart").await;
        // The account itself is durable.
        let again = login(&second, "alice").await;
        expect_passed(&get_bearer(&second, "/app/x", &again).await, "new session");
    }
}

#[tokio::test]
async fn disabling_a_user_ends_all_their_sessions_at_once() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let gate = Gate::start(&protected(&b, &up)).await;
        let alice = register(&gate, "alice").await;
        register(&gate, "bob").await;
        let laptop = login(&gate, "alice").await;
        let phone = login(&gate, "alice").await;
        let bobs = login(&gate, "bob").await;
        for token in [&laptop, &phone, &bobs] {
            expect_passed(
                &get_bearer(&gate, "/app/x", token).await,
                "before disabling",
            );
        }

        assert!(b.store.set_disabled(alice, true).await.unwrap());
        gate.advance(USER_REFRESH + Duration::from_secs(1));
        let before = up.received().len();
        let resp = get_bearer(&gate, "/app/x", &laptop).await;
        expect_error(resp, 403, "userDisabled", &format!("{}: disabled", b.name)).await;
        assert_eq!(up.received().len(), before, "{}", b.name);
        assert_session_expired(&gate, &up, &phone, &format!("{}: other session", b.name)).await;
        assert_session_expired(&gate, &up, &laptop, &format!("{}: same session", b.name)).await;
        expect_passed(
            &get_bearer(&gate, "/app/x", &bobs).await,
            "bob is unaffected",
        );

        let resp = login_as(
            &gate,
            &serde_json::json!({"username": "alice", "password": super::PASSWORD}),
        )
        .await;
        assert_eq!(resp.status(), 401, "{}", b.name);
        assert_eq!(resp.text().await.unwrap(), INVALID_CREDENTIALS);

        assert!(b.store.set_disabled(alice, false).await.unwrap());
        gate.advance(USER_REFRESH + Duration::from_secs(1));
        let again = login(&gate, "alice").await;
        expect_passed(&get_bearer(&gate, "/app/x", &again).await, "re-enabled");
    }
}

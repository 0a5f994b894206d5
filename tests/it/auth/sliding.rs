//! The sliding access token (SPEC 4.3): every authenticated response carries
//! `GN-Access-Token`, re-signed at most once per `reissue_interval`, never outliving the
//! session; browsers get a new cookie only when a new token was signed.

use std::time::Duration;

use serde_json::Value;

use super::super::harness::TestUpstream;
use super::{
    BROWSER, Gate, PASSWORD, claims, each_backend, exp_of, expect_passed, get_bearer, header,
    header_all, http, login, login_as, post_form, protected, register,
};

const SECOND: Duration = Duration::from_secs(1);

/// Asserts the headers every authenticated response carries; returns the token.
fn assert_token_headers(resp: &reqwest::Response, what: &str) -> String {
    let token = expect_passed(resp, what);
    let exposed = header_all(resp, "access-control-expose-headers").join(",");
    assert!(
        exposed
            .split(',')
            .any(|h| h.trim().eq_ignore_ascii_case("GN-Access-Token")),
        "{what}: Access-Control-Expose-Headers {exposed:?}"
    );
    let cache = header(resp, "cache-control").unwrap_or_default();
    assert!(cache.contains("private"), "{what}: Cache-Control {cache:?}");
    token
}

#[tokio::test]
async fn responses_to_requests_with_and_without_a_body_carry_the_same_token_headers() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let gate = Gate::start(&protected(&b, &up)).await;
        register(&gate, "bodied").await;
        let token = login(&gate, "bodied").await;
        let client = http();
        // Without a body the direct HTTP/1.1 path answers; with one, hyper does.
        let requests = [
            ("without a body", client.get(gate.url("/app/plain"))),
            (
                "with a body",
                client.post(gate.url("/app/form")).body("a=1"),
            ),
        ];
        for (what, request) in requests {
            let what = format!("{} {what}", b.name);
            let resp = request.bearer_auth(&token).send().await.unwrap();
            assert_eq!(assert_token_headers(&resp, &what), token, "{what}");
            assert_eq!(header_all(&resp, "gn-access-token").len(), 1, "{what}");
            assert_eq!(
                header_all(&resp, "cache-control"),
                ["private"],
                "{what}: the upstream set no policy of its own"
            );
        }
    }
}

#[tokio::test]
async fn the_token_is_reused_within_the_reissue_interval_then_renewed() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let gate = Gate::start(&protected(&b, &up)).await;
        register(&gate, "alice").await;
        let first = login(&gate, "alice").await;

        let signed = r#"tollgate_tokens_signed_total"#;
        gate.gw.wait_metric(signed, 1.0).await;
        let at0 = assert_token_headers(&get_bearer(&gate, "/app/x", &first).await, "+0s");
        assert_eq!(at0, first, "{}: +0s", b.name);
        gate.advance(30 * SECOND);
        let at30 = assert_token_headers(&get_bearer(&gate, "/app/x", &first).await, "+30s");
        assert_eq!(at30, first, "{}: +30s", b.name);
        let me = get_bearer(&gate, "/auth/me", &first).await;
        assert_eq!(assert_token_headers(&me, "me +30s"), first, "{}", b.name);

        gate.gw.wait_metric(signed, 1.0).await;

        gate.advance(31 * SECOND);
        let renewed = assert_token_headers(&get_bearer(&gate, "/app/x", &first).await, "+61s");
        assert_ne!(renewed, first, "{}: +61s", b.name);
        assert!(exp_of(&renewed) > exp_of(&first), "{}", b.name);
        assert_eq!(
            claims(&renewed)["sid"],
            claims(&first)["sid"],
            "same session"
        );
        assert_eq!(claims(&renewed)["sub"], claims(&first)["sub"]);
        // The lower bound: no earlier than now + access_ttl - reissue_interval.
        assert!(exp_of(&renewed) >= gate.now() + 3600 - 60, "{}", b.name);

        gate.advance(30 * SECOND);
        let again = assert_token_headers(&get_bearer(&gate, "/app/x", &renewed).await, "+91s");
        assert_eq!(
            again, renewed,
            "{}: within the interval of the renewed token",
            b.name
        );
        // One at sign-in, one renewal.
        gate.gw.wait_metric(signed, 2.0).await;
    }
}

#[tokio::test]
async fn requests_that_need_a_new_token_at_once_share_one_signature() {
    let up = TestUpstream::start().await;
    let b = each_backend().await.remove(0);
    let gate = Gate::start(&protected(&b, &up)).await;
    register(&gate, "alice").await;
    let first = login(&gate, "alice").await;
    let signed = "tollgate_tokens_signed_total";
    gate.gw.wait_metric(signed, 1.0).await;

    gate.advance(61 * SECOND);
    let requests = (0..8).map(|_| get_bearer(&gate, "/app/x", &first));
    let responses = futures_util::future::join_all(requests).await;
    let tokens: Vec<String> = responses
        .iter()
        .map(|r| assert_token_headers(r, "+61s"))
        .collect();
    assert_ne!(tokens[0], first);
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    // One at sign-in, one renewal for all eight.
    gate.gw.wait_metric(signed, 2.0).await;
}

#[tokio::test]
async fn the_token_never_outlives_the_sessions_absolute_end() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let config = protected(&b, &up)
            .section("[sessions]\nidle_timeout = \"5m\"\nabsolute_timeout = \"10m\"");
        let gate = Gate::start(&config).await;
        register(&gate, "alice").await;
        let login_time = gate.now();
        let resp = login_as(
            &gate,
            &serde_json::json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        let first = body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(exp_of(&first), login_time + 600, "{}: exp at login", b.name);
        assert_eq!(body["expires_in"], 600, "{}: expires_in", b.name);

        let mut token = first.clone();
        for step in 1..=4 {
            gate.advance(2 * 60 * SECOND + SECOND);
            let resp = get_bearer(&gate, "/app/x", &token).await;
            token = assert_token_headers(&resp, &format!("{}: step {step}", b.name));
            assert_ne!(token, first, "{}: step {step} re-signed", b.name);
            assert_eq!(exp_of(&token), login_time + 600, "{}: step {step}", b.name);
        }
    }
}

#[tokio::test]
async fn browsers_get_a_new_cookie_only_when_a_new_token_was_signed() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let gate = Gate::start(&protected(&b, &up).section("[cookies]\nsecure = false")).await;
        register(&gate, "alice").await;
        let bearer = login(&gate, "alice").await;
        let resp = post_form(&gate, &[("login", "alice"), ("password", PASSWORD)]).await;
        assert_eq!(resp.status(), 303);
        let mut cookie = header(&resp, "gn-access-token").unwrap();

        let browse = |token: String| {
            http()
                .get(gate.url("/app/page"))
                .header("accept", BROWSER)
                .header("cookie", format!("tollgate-access={token}"))
                .send()
        };
        let access_cookies = |resp: &reqwest::Response| -> Vec<String> {
            header_all(resp, "set-cookie")
                .into_iter()
                .filter(|c| c.starts_with("tollgate-access="))
                .collect()
        };
        for (advance, renewed) in [(0, false), (30, false), (31, true), (1, false)] {
            gate.advance(advance * SECOND);
            let what = format!("{}: +{advance}s", b.name);
            let resp = browse(cookie.clone()).await.unwrap();
            let token = assert_token_headers(&resp, &what);
            let set = access_cookies(&resp);
            if renewed {
                assert_ne!(token, cookie, "{what}");
                assert_eq!(set.len(), 1, "{what}: {set:?}");
                let value = set[0]["tollgate-access=".len()..]
                    .split(';')
                    .next()
                    .unwrap();
                assert_eq!(value, token, "{what}: cookie and header agree");
                cookie = token;
            } else {
                assert_eq!(token, cookie, "{what}");
                assert!(set.is_empty(), "{what}: unexpected {set:?}");
            }
        }
        // A bearer client is re-signed too, but never gets a cookie.
        let resp = get_bearer(&gate, "/app/x", &bearer).await;
        let renewed = assert_token_headers(&resp, "bearer");
        assert_ne!(renewed, bearer, "{}", b.name);
        assert!(header_all(&resp, "set-cookie").is_empty(), "{}", b.name);
    }
}

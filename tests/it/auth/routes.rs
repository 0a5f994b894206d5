//! `GET /auth/me` and protected routes: `authenticated` and `role:<name>` policies, the
//! 401 challenge and the browser redirect, and exactly which identity the upstream learns.

use serde_json::Value;
use tollgate::auth::identity::USER_REFRESH;

use super::super::harness::{TestUpstream, normalised_name};
use super::{
    BROWSER, Gate, PASSWORD, each_backend, expect_error, expect_passed, get_bearer, header, http,
    login, post_form, protected, register,
};

/// A little past the time a cached user record is trusted.
fn past_user_refresh() -> std::time::Duration {
    USER_REFRESH + std::time::Duration::from_secs(1)
}

#[tokio::test]
async fn me_shows_the_user_and_the_session() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let gate =
            Gate::start(&protected(&b, &up).section("[sessions]\nidle_timeout = \"5m\"")).await;
        let id = register(&gate, "alice").await;
        let login_time = gate.now();
        let token = login(&gate, "alice").await;
        gate.advance(std::time::Duration::from_secs(30));

        let resp = get_bearer(&gate, "/auth/me", &token).await;
        let gn = expect_passed(&resp, b.name);
        assert!(!gn.is_empty());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["success"], true, "{}: {body}", b.name);
        let user = &body["user"];
        assert_eq!(user["id"], id, "{}: {body}", b.name);
        assert_eq!(user["username"], "alice", "{}", b.name);
        assert_eq!(user["email"], "alice@example.test", "{}", b.name);
        assert_eq!(user["roles"], serde_json::json!([]), "{}", b.name);
        assert!(user.get("password_hash").is_none(), "{}: {body}", b.name);
        let session = &body["session"];
        assert_eq!(session["created_at"], login_time, "{}: {body}", b.name);
        assert_eq!(session["last_seen"], login_time + 30, "{}: {body}", b.name);
        assert_eq!(
            session["expires_at"],
            login_time + 30 + 300,
            "{}: {body}",
            b.name
        );

        let resp = http().get(gate.url("/auth/me")).send().await.unwrap();
        expect_error(resp, 401, "missingToken", "me without a token").await;
    }
}

#[tokio::test]
async fn protected_routes_challenge_redirect_and_pass_only_the_gateways_identity() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let gate = Gate::start(&protected(&b, &up)).await;
        let id = register(&gate, "alice").await;

        for path in ["/app", "/admin"] {
            let resp = http().get(gate.url(path)).send().await.unwrap();
            let challenge = expect_error(resp, 401, "missingToken", path).await;
            assert_eq!(challenge, "Bearer realm=\"tollgate\"", "{path}");
        }
        let resp = http()
            .get(gate.url("/app/page?x=1&y=a%20b"))
            .header("accept", BROWSER)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302, "{}: browser without a session", b.name);
        let location = header(&resp, "location").unwrap();
        let query = location
            .strip_prefix("/auth/login?")
            .unwrap_or_else(|| panic!("redirect to {location}"));
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        assert_eq!(
            pairs,
            [("rd".to_string(), "/app/page?x=1&y=a%20b".to_string())]
        );
        assert!(
            up.received().is_empty(),
            "{}: nothing reached the upstream",
            b.name
        );

        let token = login(&gate, "alice").await;
        let resp = http()
            .get(gate.url("/app/data?q=1"))
            .bearer_auth(&token)
            .header("X-User-Id", "999")
            .header("x_user_id", "999")
            .header("X-USER-NAME", "root")
            .header("x-user-roles", "admin")
            .header("cookie", "theme=dark")
            .send()
            .await
            .unwrap();
        expect_passed(&resp, b.name);
        let got = up.last();
        assert_eq!(got.uri, "/app/data?q=1");
        let copies = |name: &str| -> Vec<String> {
            got.headers
                .iter()
                .filter(|(n, _)| normalised_name(n.as_str()) == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(copies("x-user-id"), [id.to_string()], "{}", b.name);
        assert_eq!(copies("x-user-name"), ["alice"], "{}", b.name);
        let roles = copies("x-user-roles");
        assert!(
            roles.len() <= 1 && roles.iter().all(String::is_empty),
            "{}: a user without roles got X-User-Roles {roles:?}",
            b.name
        );
        assert_eq!(
            got.header("authorization"),
            None,
            "{}: bearer token leaked",
            b.name
        );
        assert_eq!(got.header("cookie"), Some("theme=dark"), "{}", b.name);

        let before = up.received().len();
        let resp = get_bearer(&gate, "/admin/panel", &token).await;
        expect_error(resp, 403, "forbidden", "role route without the role").await;
        assert_eq!(up.received().len(), before, "{}", b.name);

        assert!(b.store.grant_role(id, "admin").await.unwrap());
        gate.advance(past_user_refresh());
        let resp = get_bearer(&gate, "/admin/panel", &token).await;
        expect_passed(&resp, b.name);
        assert_eq!(
            up.last().header("x-user-roles"),
            Some("admin"),
            "{}",
            b.name
        );

        assert!(b.store.revoke_role(id, "admin").await.unwrap());
        gate.advance(past_user_refresh());
        let resp = get_bearer(&gate, "/admin/panel", &token).await;
        expect_error(resp, 403, "forbidden", "role revoked").await;
    }
}

#[tokio::test]
async fn browsers_use_the_access_cookie_and_the_upstream_never_sees_it() {
    for b in each_backend().await {
        for secure in [false, true] {
            let up = TestUpstream::start().await;
            let config = protected(&b, &up).section(&format!("[cookies]\nsecure = {secure}"));
            let gate = Gate::start(&config).await;
            let name = if secure {
                "__Host-tollgate-access"
            } else {
                "tollgate-access"
            };
            let id = register(&gate, &format!("user{secure}")).await;
            let login = format!("user{secure}");
            let resp = post_form(&gate, &[("login", &login), ("password", PASSWORD)]).await;
            assert_eq!(resp.status(), 303, "{} secure={secure}", b.name);
            let token = header(&resp, "gn-access-token").unwrap();

            let resp = http()
                .get(gate.url("/app/home"))
                .header("accept", BROWSER)
                .header("cookie", format!("theme=dark; {name}={token}; lang=en"))
                .send()
                .await
                .unwrap();
            expect_passed(&resp, name);
            let got = up.last();
            assert_eq!(got.header("x-user-id"), Some(id.to_string().as_str()));
            assert_eq!(got.header("cookie"), Some("theme=dark; lang=en"), "{name}");
            assert_eq!(got.header("authorization"), None);

            // Never from the query string.
            let before = up.received().len();
            let resp = http()
                .get(gate.url(&format!("/app/home?access_token={token}")))
                .send()
                .await
                .unwrap();
            expect_error(resp, 401, "missingToken", "token in the query").await;
            assert_eq!(up.received().len(), before);
        }
    }
}

#[tokio::test]
async fn the_clients_own_authorization_goes_upstream_only_where_tollgate_does_not_use_it() {
    let b = each_backend().await.remove(0);
    let up = TestUpstream::start().await;
    let config = protected(&b, &up).route_with("/open", &up.url(), "policy = \"public\"");
    let gate = Gate::start(&config).await;
    register(&gate, "alice").await;
    let token = login(&gate, "alice").await;
    let sent_upstream = |what: &str| -> Vec<String> {
        let got = up.last();
        let values = got.headers.get_all("authorization").iter();
        let values: Vec<String> = values.map(|v| v.to_str().unwrap().to_owned()).collect();
        assert!(
            values.len() <= 1 || what.contains("two"),
            "{what}: {values:?}"
        );
        values
    };

    // A public route passes the client's credentials for the upstream on, once.
    let resp = http()
        .get(gate.url("/open/a"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sent_upstream("public"), ["Basic YTpi"]);

    // So does a route signed into by cookie; a bearer token tollgate used never goes on.
    let resp = http()
        .get(gate.url("/app/a"))
        .header("authorization", "Basic YTpi")
        .header("cookie", format!("__Host-tollgate-access={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "cookie session with Basic credentials");
    assert_eq!(sent_upstream("cookie"), ["Basic YTpi"]);
    let resp = get_bearer(&gate, "/app/a", &token).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(sent_upstream("bearer"), Vec::<String>::new());

    // Named in `Connection`, it is this hop's alone.
    let resp = http()
        .get(gate.url("/open/b"))
        .header("authorization", "Basic YTpi")
        .header("connection", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sent_upstream("named in Connection"), Vec::<String>::new());

    // Two fields both go on from a public route; on a protected one the first decides and
    // neither goes on.
    let resp = http()
        .get(gate.url("/open/c"))
        .header("authorization", "Basic YTpi")
        .header("authorization", "Basic Yzpk")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sent_upstream("two, public"), ["Basic YTpi", "Basic Yzpk"]);
    let resp = http()
        .get(gate.url("/app/c"))
        .bearer_auth(&token)
        .header("authorization", "Basic Yzpk")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sent_upstream("two, bearer first"), Vec::<String>::new());

    // tollgate's own endpoints read it too.
    let resp = get_bearer(&gate, "/auth/me", &token).await;
    assert_eq!(resp.status(), 200);
}

//! Routing: paths are canonicalised before matching and forwarded canonical; prefixes
//! match on segment boundaries, longest wins; hosts match case-insensitively without port;
//! the auth prefix never reaches an upstream.

use super::harness::raw::{self, RawResponse};
use super::harness::{Config, TestGateway, TestUpstream};

/// Route `/admin` → `admin`, `/` → `root`.
struct TwoRoutes {
    admin: TestUpstream,
    root: TestUpstream,
    gw: TestGateway,
}

impl TwoRoutes {
    async fn start() -> Self {
        let admin = TestUpstream::start().await;
        let root = TestUpstream::start().await;
        let config = Config::new()
            .route("/admin", &admin.url())
            .route("/", &root.url())
            .build();
        let gw = TestGateway::start(&config).await;
        Self { admin, root, gw }
    }

    async fn get(&self, target: &str) -> RawResponse {
        raw::send(self.gw.addr, &raw::get(target, "app.test", &[])).await
    }

    /// Asserts `target` went to the admin upstream, arriving as `expected`.
    async fn expect_admin(&self, target: &str, expected: &str) {
        let before = (self.admin.received().len(), self.root.received().len());
        let resp = self.get(target).await;
        assert_eq!(resp.status, 200, "{target}: {}", resp.text());
        assert_eq!(
            self.admin.received().len(),
            before.0 + 1,
            "{target} did not reach /admin upstream"
        );
        assert_eq!(
            self.root.received().len(),
            before.1,
            "{target} reached / upstream"
        );
        assert_eq!(self.admin.last().uri, expected, "{target}");
    }

    /// Asserts `target` went to the root upstream, arriving as `expected`.
    async fn expect_root(&self, target: &str, expected: &str) {
        let before = (self.admin.received().len(), self.root.received().len());
        let resp = self.get(target).await;
        assert_eq!(resp.status, 200, "{target}: {}", resp.text());
        assert_eq!(
            self.admin.received().len(),
            before.0,
            "{target} reached /admin"
        );
        assert_eq!(
            self.root.received().len(),
            before.1 + 1,
            "{target} missed /"
        );
        assert_eq!(self.root.last().uri, expected, "{target}");
    }

    /// Asserts `target` is refused with 400 `invalidRequest` and reaches nobody.
    async fn expect_bad_request(&self, target: &str) {
        let before = (self.admin.received().len(), self.root.received().len());
        let resp = self.get(target).await;
        assert_eq!(resp.status, 400, "{target}: {}", resp.text());
        assert_eq!(
            resp.json(),
            serde_json::json!({"success": false, "message": "invalidRequest"}),
            "{target}"
        );
        let after = (self.admin.received().len(), self.root.received().len());
        assert_eq!(after, before, "{target} reached an upstream");
    }
}

#[tokio::test]
async fn canonical_path_is_matched_and_forwarded() {
    let t = TwoRoutes::start().await;
    t.expect_admin("/admin", "/admin").await;
    t.expect_admin("/admin/", "/admin/").await;
    t.expect_admin("/admin/users?x=1", "/admin/users?x=1").await;
    t.expect_admin("/pub/../admin", "/admin").await;
    t.expect_admin("//admin", "/admin").await;
    t.expect_admin("/%61dmin", "/admin").await;
    t.expect_admin("/./admin/./x", "/admin/x").await;
    t.expect_admin("/admin/x/../y", "/admin/y").await;
    t.expect_admin("/pub/..//admin", "/admin").await;
}

#[tokio::test]
async fn encoded_dot_segments_never_escape() {
    // `.` is unreserved: decoded then resolved (→ /admin), or refused; never passed raw.
    let t = TwoRoutes::start().await;
    for target in ["/pub/%2e%2e/admin", "/pub/%2E%2E/admin", "/pub/.%2e/admin"] {
        let resp = t.get(target).await;
        assert!(
            t.root.received().is_empty(),
            "{target} reached /: {:?}",
            t.root.received()
        );
        match resp.status {
            400 => assert_eq!(resp.json()["message"], "invalidRequest", "{target}"),
            200 => assert_eq!(t.admin.last().uri, "/admin", "{target}"),
            other => panic!("{target}: unexpected status {other}: {}", resp.text()),
        }
    }
}

#[tokio::test]
async fn query_is_passed_unchanged() {
    let t = TwoRoutes::start().await;
    t.expect_admin(
        "/pub/../admin?next=%2F..%2Fx&a=1&a=2",
        "/admin?next=%2F..%2Fx&a=1&a=2",
    )
    .await;
    t.expect_root("/search?q=a+b&q=%20c", "/search?q=a+b&q=%20c")
        .await;
}

#[tokio::test]
async fn prefixes_match_on_segment_boundaries() {
    let t = TwoRoutes::start().await;
    t.expect_root("/administrator", "/administrator").await;
    t.expect_root("/admins/x", "/admins/x").await;
    t.expect_root("/", "/").await;
    t.expect_root("/public/admin", "/public/admin").await;
    t.expect_root("/admin/../public", "/public").await;
}

#[tokio::test]
async fn unsafe_paths_are_refused() {
    let t = TwoRoutes::start().await;
    t.expect_bad_request("/admin%2f").await;
    t.expect_bad_request("/admin%2Fx").await;
    t.expect_bad_request("/pub%2f..%2fadmin").await;
    t.expect_bad_request("/admin%5cx").await;
    t.expect_bad_request("/admin%00").await;
    t.expect_bad_request("/..;/admin").await;
    t.expect_bad_request("/pub/..;/admin").await;
}

#[tokio::test]
async fn longest_prefix_wins() {
    let short = TestUpstream::start().await;
    let long = TestUpstream::start().await;
    let config = Config::new()
        .route("/api", &short.url())
        .route("/api/v2", &long.url())
        .build();
    let gw = TestGateway::start(&config).await;

    let resp = raw::send(gw.addr, &raw::get("/api/v2/items", "app.test", &[])).await;
    assert_eq!(resp.status, 200);
    let resp = raw::send(gw.addr, &raw::get("/api/v1/items", "app.test", &[])).await;
    assert_eq!(resp.status, 200);
    let resp = raw::send(gw.addr, &raw::get("/api/v2x", "app.test", &[])).await;
    assert_eq!(resp.status, 200);

    let long_got: Vec<_> = long.received().into_iter().map(|r| r.uri).collect();
    let short_got: Vec<_> = short.received().into_iter().map(|r| r.uri).collect();
    assert_eq!(long_got, ["/api/v2/items"]);
    assert_eq!(short_got, ["/api/v1/items", "/api/v2x"]);

    // Nothing matches outside /api.
    let resp = raw::send(gw.addr, &raw::get("/apix", "app.test", &[])).await;
    assert_eq!(resp.status, 404);
}

#[tokio::test]
async fn host_routes_match_case_insensitively_ignoring_port() {
    let app = TestUpstream::start().await;
    let other = TestUpstream::start().await;
    let config = Config::new()
        .route_with("/", &app.url(), "host = \"app.example.com\"")
        .route("/", &other.url())
        .build();
    let gw = TestGateway::start(&config).await;

    for host in ["app.example.com", "APP.Example.COM", "app.example.com:8443"] {
        let resp = raw::send(gw.addr, &raw::get("/h", host, &[])).await;
        assert_eq!(resp.status, 200, "{host}");
        assert_eq!(app.last().header("host"), Some(host), "{host}");
    }
    assert_eq!(app.received().len(), 3);

    for host in ["other.example.com", "app.example.com.evil", "example.com"] {
        let resp = raw::send(gw.addr, &raw::get("/h", host, &[])).await;
        assert_eq!(resp.status, 200, "{host}");
        assert_eq!(other.last().header("host"), Some(host), "{host}");
    }
    assert_eq!(app.received().len(), 3);
    assert_eq!(other.received().len(), 3);
}

#[tokio::test]
async fn host_only_routes_give_404_for_other_hosts() {
    let app = TestUpstream::start().await;
    let config = Config::new()
        .route_with("/", &app.url(), "host = \"app.example.com\"")
        .build();
    let gw = TestGateway::start(&config).await;

    let resp = raw::send(gw.addr, &raw::get("/", "other.example.com", &[])).await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json()["message"], "notFound");
    let resp = raw::send(gw.addr, &raw::get("/", "app.example.com", &[])).await;
    assert_eq!(resp.status, 200);
    assert_eq!(app.received().len(), 1);
}

#[tokio::test]
async fn auth_prefix_never_reaches_an_upstream() {
    let up = TestUpstream::start().await;
    let config = Config::new().route("/", &up.url()).build();
    let gw = TestGateway::start(&config).await;

    for target in [
        "/auth",
        "/auth/",
        "/auth/no-such-endpoint",
        "/pub/../auth/no-such-endpoint",
        "//auth/x",
        "/%61uth/x",
    ] {
        let resp = raw::send(gw.addr, &raw::get(target, "app.test", &[])).await;
        assert_eq!(resp.status, 404, "{target}");
        assert_eq!(resp.json()["message"], "notFound", "{target}");
    }
    assert!(up.received().is_empty(), "{:?}", up.received());

    // `/authority` is not under `/auth`.
    let resp = raw::send(gw.addr, &raw::get("/authority", "app.test", &[])).await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().uri, "/authority");
}

#[tokio::test]
async fn custom_auth_prefix_is_honoured() {
    let up = TestUpstream::start().await;
    let config = Config::new()
        .top("auth_prefix = \"/sso\"")
        .route("/", &up.url())
        .build();
    let gw = TestGateway::start(&config).await;

    let resp = raw::send(gw.addr, &raw::get("/sso/x", "app.test", &[])).await;
    assert_eq!(resp.status, 404);
    // The sign-in page moves with the prefix.
    let resp = raw::send(gw.addr, &raw::get("/sso/login", "app.test", &[])).await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.text().contains("action=\"/sso/login\""),
        "{}",
        resp.text()
    );
    assert!(up.received().is_empty());

    let resp = raw::send(gw.addr, &raw::get("/auth/login", "app.test", &[])).await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().uri, "/auth/login");
}

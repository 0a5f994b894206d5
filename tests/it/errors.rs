//! Error responses: JSON `{"success": false, "message": code}` for API clients, an HTML
//! page for browsers (`Accept: text/html`), for 400, 404, 502 and 504.

use std::time::{Duration, Instant};

use super::harness::raw::{self, RawResponse};
use super::harness::{Config, TestGateway, TestUpstream, dead_upstream};

const BROWSER_ACCEPT: &str =
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn assert_json_error(resp: &RawResponse, status: u16, code: &str) {
    assert_eq!(resp.status, status, "body: {}", resp.text());
    let ct = resp.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    assert_eq!(
        resp.json(),
        serde_json::json!({"success": false, "message": code})
    );
}

fn assert_html_error(resp: &RawResponse, status: u16, code: &str) {
    assert_eq!(resp.status, status, "body: {}", resp.text());
    let ct = resp.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/html"), "content-type {ct:?}");
    let body = resp.text();
    assert!(
        body.to_ascii_lowercase().contains("<html"),
        "not an HTML page: {body}"
    );
    assert!(body.contains(&status.to_string()), "status missing: {body}");
    assert!(body.contains(code), "{code} missing: {body}");
}

#[tokio::test]
async fn not_found_in_json_and_html() {
    let up = TestUpstream::start().await;
    let gw = TestGateway::start(&Config::new().route("/app", &up.url()).build()).await;

    let resp = raw::send(gw.addr, &raw::get("/nothing-here", "app.test", &[])).await;
    assert_json_error(&resp, 404, "notFound");
    let resp = raw::send(
        gw.addr,
        &raw::get("/nothing-here", "app.test", &["Accept: application/json"]),
    )
    .await;
    assert_json_error(&resp, 404, "notFound");
    let resp = raw::send(
        gw.addr,
        &raw::get("/nothing-here", "app.test", &[BROWSER_ACCEPT]),
    )
    .await;
    assert_html_error(&resp, 404, "notFound");
    let resp = raw::send(
        gw.addr,
        &raw::get("/auth/no-such-page", "app.test", &[BROWSER_ACCEPT]),
    )
    .await;
    assert_html_error(&resp, 404, "notFound");
    assert!(up.received().is_empty());
}

#[tokio::test]
async fn bad_path_in_json_and_html() {
    let up = TestUpstream::start().await;
    let gw = TestGateway::start(&Config::new().route("/", &up.url()).build()).await;

    let resp = raw::send(gw.addr, &raw::get("/a%2fb", "app.test", &[])).await;
    assert_json_error(&resp, 400, "invalidRequest");
    let resp = raw::send(gw.addr, &raw::get("/a%2fb", "app.test", &[BROWSER_ACCEPT])).await;
    assert_html_error(&resp, 400, "invalidRequest");
    assert!(up.received().is_empty());
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let gw = TestGateway::start(&Config::new().route("/", &dead_upstream()).build()).await;

    let resp = raw::send(gw.addr, &raw::get("/x", "app.test", &[])).await;
    assert_json_error(&resp, 502, "upstreamUnavailable");
    let resp = raw::send(gw.addr, &raw::get("/x", "app.test", &[BROWSER_ACCEPT])).await;
    assert_html_error(&resp, 502, "upstreamUnavailable");

    let resp = super::harness::client()
        .post(gw.url("/x"))
        .body("some body")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "upstreamUnavailable");
}

#[tokio::test]
async fn slow_upstream_is_504_after_the_route_timeout() {
    let up = TestUpstream::start().await;
    let config = Config::new()
        .route_with("/", &up.url(), "timeout = \"300ms\"")
        .build();
    let gw = TestGateway::start(&config).await;

    let started = Instant::now();
    let resp = raw::send(gw.addr, &raw::get("/slow?ms=5000", "app.test", &[])).await;
    let took = started.elapsed();
    assert_json_error(&resp, 504, "upstreamTimeout");
    assert!(
        took >= Duration::from_millis(250),
        "504 after only {took:?}"
    );
    assert!(took < Duration::from_secs(3), "504 only after {took:?}");

    let resp = raw::send(
        gw.addr,
        &raw::get("/slow?ms=5000", "app.test", &[BROWSER_ACCEPT]),
    )
    .await;
    assert_html_error(&resp, 504, "upstreamTimeout");

    // A quick request on the same route is unaffected.
    let resp = raw::send(gw.addr, &raw::get("/slow?ms=10", "app.test", &[])).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "slow done");
}

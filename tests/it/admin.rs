//! The admin listener: `/healthz`, `/readyz`, and `/metrics` after some traffic.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::harness::raw::{self, read_response};
use super::harness::{Config, TestGateway, TestUpstream, WAIT, client, metric_value};

#[tokio::test]
async fn health_and_readiness() {
    let up = TestUpstream::start().await;
    let gw = TestGateway::start(&Config::new().route("/", &up.url()).build()).await;

    for path in ["/healthz", "/readyz"] {
        let resp = client().get(gw.admin_url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    // The admin endpoints live only on the admin listener: on the main one they are
    // ordinary paths forwarded to the upstream.
    let resp = client().get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().uri, "/metrics");
}

#[tokio::test]
async fn metrics_after_some_requests() {
    let up = TestUpstream::start().await;
    let config = Config::new()
        .route_with("/", &up.url(), "name = \"app\"")
        .route_with("/api", &up.url(), "name = \"api\"")
        .build();
    let gw = TestGateway::start(&config).await;

    for _ in 0..3 {
        let resp = client().get(gw.url("/page")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let resp = client().get(gw.url("/api/thing")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    let resp = client().get(gw.url("/auth/nothing")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    resp.bytes().await.unwrap();

    let text = gw
        .wait_metric(r#"tollgate_requests_total{route="app",status="200"}"#, 3.0)
        .await;
    assert_eq!(
        metric_value(
            &text,
            r#"tollgate_requests_total{route="api",status="200"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("tollgate_requests_total{") && l.contains("status=\"404\"")),
        "no 404 series:\n{text}"
    );
    let count = text
        .lines()
        .filter(|l| l.starts_with("tollgate_upstream_duration_seconds_count"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>();
    assert_eq!(count, 4.0, "upstream histogram count:\n{text}");
    assert!(
        text.contains("tollgate_upstream_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("tollgate_open_connections"), "{text}");
}

#[tokio::test]
async fn open_connections_gauge_follows_connections() {
    let up = TestUpstream::start().await;
    let gw = TestGateway::start(&Config::new().route("/", &up.url()).build()).await;

    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"GET /keep HTTP/1.1\r\nHost: app.test\r\n\r\n")
            .await
            .unwrap();
        let resp = tokio::time::timeout(WAIT, read_response(&mut s))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status, 200);
        held.push(s);
    }
    gw.wait_metric("tollgate_open_connections", 2.0).await;
    drop(held);
    gw.wait_metric("tollgate_open_connections", 0.0).await;

    // Plain request/close traffic leaves the gauge at zero.
    let resp = raw::send(gw.addr, &raw::get("/x", "app.test", &[])).await;
    assert_eq!(resp.status, 200);
    gw.wait_metric("tollgate_open_connections", 0.0).await;
}

//! Reload (good file swaps in, bad file changes nothing) and graceful shutdown (in-flight
//! requests finish, new connections are refused, idle ones close, bounded by
//! `shutdown_timeout`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::harness::raw::read_response;
use super::harness::{Config, TestGateway, TestUpstream, WAIT, client, metric_value};

const RELOAD_OK: &str = r#"tollgate_config_reloads_total{result="success"}"#;
const RELOAD_FAILED: &str = r#"tollgate_config_reloads_total{result="failure"}"#;

/// Which upstream answered a GET of `path` (by the port in `X-Test-Upstream`).
async fn answered_by(gw: &TestGateway, path: &str) -> u16 {
    let resp = client().get(gw.url(path)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.headers()["x-test-upstream"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A gateway in front of `up` that drains for up to `shutdown_timeout`.
async fn gateway_draining_for(up: &TestUpstream, shutdown_timeout: &str) -> TestGateway {
    let config = Config::new()
        .server(&format!("shutdown_timeout = {shutdown_timeout:?}"))
        .route("/", &up.url())
        .build();
    TestGateway::start(&config).await
}

/// A GET of the upstream's `/slow` (`ms` long) on a connection of its own, in the
/// background; resolves to its status and body.
fn slow_request(gw: &TestGateway, ms: u64) -> JoinHandle<(StatusCode, String)> {
    let url = gw.url(&format!("/slow?ms={ms}"));
    tokio::spawn(async move {
        let resp = client().get(url).send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    })
}

/// Asserts that connecting to `addr` fails within 2 s.
async fn assert_refused_soon(addr: SocketAddr) {
    let refused = tokio::time::timeout(Duration::from_secs(2), async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "still accepting connections 2 s into shutdown"
    );
}

#[tokio::test]
async fn reload_with_a_good_file_changes_behaviour() {
    let a = TestUpstream::start().await;
    let b = TestUpstream::start().await;
    let gw = TestGateway::start(&Config::new().route("/", &a.url()).build()).await;
    assert_eq!(answered_by(&gw, "/x").await, a.addr.port());

    let new_config = Config::new()
        .route("/", &b.url())
        .route("/only-a", &a.url())
        .build();
    gw.rewrite_config(&new_config);
    gw.reload().expect("reload of a good file");

    assert_eq!(answered_by(&gw, "/x").await, b.addr.port());
    assert_eq!(answered_by(&gw, "/only-a/y").await, a.addr.port());
    gw.wait_metric(RELOAD_OK, 1.0).await;
}

#[tokio::test]
async fn reload_with_a_bad_file_keeps_the_running_config() {
    let a = TestUpstream::start().await;
    let b = TestUpstream::start().await;
    let good = Config::new().route("/", &a.url()).build();
    let gw = TestGateway::start(&good).await;

    let bad_files = [
        // unknown key
        Config::new()
            .server("no_such_key = 1")
            .route("/", &b.url())
            .build(),
        // bad duration
        Config::new()
            .route_with("/", &b.url(), "timeout = \"soon\"")
            .build(),
        // not TOML at all
        "this is [not toml".to_owned(),
        // upstream with a path
        Config::new()
            .route("/", &format!("{}/base", b.url()))
            .build(),
    ];
    for (i, bad) in bad_files.iter().enumerate() {
        gw.rewrite_config(bad);
        let err = gw.reload().expect_err("reload accepted a bad file");
        assert!(!err.to_string().is_empty());
        assert_eq!(
            answered_by(&gw, "/x").await,
            a.addr.port(),
            "after bad file {i}"
        );
        gw.wait_metric(RELOAD_FAILED, (i + 1) as f64).await;
    }
    assert!(b.received().is_empty());

    let text = gw.metrics().await;
    assert!(
        metric_value(&text, RELOAD_OK).unwrap_or(0.0) == 0.0,
        "a failed reload counted as success:\n{text}"
    );

    // The file fixed: the next reload works again.
    gw.rewrite_config(&Config::new().route("/", &b.url()).build());
    gw.reload().expect("reload after fixing the file");
    assert_eq!(answered_by(&gw, "/x").await, b.addr.port());
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_connections() {
    let up = TestUpstream::start().await;
    let gw = gateway_draining_for(&up, "10s").await;
    let addr = gw.addr;

    let in_flight = slow_request(&gw, 1500);
    up.wait_received(1).await;

    let started = Instant::now();
    let shutdown = tokio::spawn(gw.shutdown());

    // New connections are refused soon after shutdown starts.
    assert_refused_soon(addr).await;

    let (status, body) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("in-flight request did not finish")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "slow done");

    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown did not return")
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert_eq!(up.received().len(), 1);
}

#[tokio::test]
async fn shutdown_gives_up_after_shutdown_timeout() {
    let up = TestUpstream::start().await;
    let gw = gateway_draining_for(&up, "1s").await;

    let in_flight = tokio::spawn({
        let url = gw.url("/slow?ms=8000");
        async move { client().get(url).send().await.map(|r| r.status()) }
    });
    up.wait_received(1).await;

    let started = Instant::now();
    gw.shutdown().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800),
        "shutdown returned after {took:?}, before shutdown_timeout"
    );
    assert!(
        took < Duration::from_secs(4),
        "shutdown took {took:?} with a 1 s shutdown_timeout"
    );
    in_flight.abort();
}

#[tokio::test]
async fn serving_threads_share_the_listener_and_drain_on_shutdown() {
    let up = TestUpstream::start().await;
    let gw = gateway_draining_for(&up, "10s").await;
    gw.serve_on_more_threads(2);
    let addr = gw.addr;

    // Many connections at once: whichever thread accepts one serves all of its requests.
    let busy: Vec<_> = (0..16)
        .map(|i| {
            let url = gw.url(&format!("/c{i}"));
            tokio::spawn(async move {
                let client = client();
                for _ in 0..3 {
                    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
                }
            })
        })
        .collect();
    for task in busy {
        task.await.unwrap();
    }

    // Slow requests on connections of their own, spread over the threads, finish while the
    // gateway shuts down.
    let slow: Vec<_> = (0..6).map(|_| slow_request(&gw, 1000)).collect();
    up.wait_received(48 + 6).await;
    let shutdown = tokio::spawn(gw.shutdown());
    assert_refused_soon(addr).await;
    for task in slow {
        let (status, body) = task.await.unwrap();
        assert_eq!((status.as_u16(), body.as_str()), (200, "slow done"));
    }
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown did not return")
        .unwrap();
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_busy_ones_after_their_response() {
    let up = TestUpstream::start().await;
    let gw = gateway_draining_for(&up, "10s").await;
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(b"GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, read_response(&mut idle)).await;
    assert_eq!(first.unwrap().unwrap().status, 200);
    let mut busy = TcpStream::connect(gw.addr).await.unwrap();
    busy.write_all(b"GET /slow?ms=1000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    up.wait_received(2).await;

    let started = Instant::now();
    let shutdown = tokio::spawn(gw.shutdown());

    // Between requests: closed at once, well before the 10 s header timeout.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), idle.read_to_end(&mut rest)).await;
    assert_eq!(closed.expect("idle connection still open").unwrap(), 0);
    // Mid-request: the response arrives, marked as the last, then the connection ends.
    let response = tokio::time::timeout(WAIT, read_response(&mut busy)).await;
    let response = response.unwrap().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    let ended = tokio::time::timeout(WAIT, busy.read_to_end(&mut rest)).await;
    assert_eq!(ended.unwrap().unwrap(), 0);

    tokio::time::timeout(WAIT, shutdown).await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}

//! Upstream connections: an HTTP/1.1 client connection keeps its own upstream connection
//! for all of its requests, and an upstream that closes a kept-alive connection costs a
//! new connection, never a failed request.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::harness::raw::{RawUpstream, next_request_head, read_response};
use super::harness::{Config, TestGateway, WAIT};

/// A bare HTTP/1.1 upstream that answers each request (no bodies expected) with
/// `200 conn-N`, N being the connection's number; with `close_after_each` it closes the
/// connection right after every response, without announcing it, as an upstream whose
/// keep-alive timeout expired would.
async fn counting_upstream(close_after_each: bool) -> RawUpstream {
    RawUpstream::start(move |stream, n| serve(stream, n, close_after_each)).await
}

async fn serve(mut stream: TcpStream, n: usize, close_after_each: bool) {
    let mut buf = Vec::new();
    while next_request_head(&mut stream, &mut buf).await.is_some() {
        let body = format!("conn-{n}");
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() || close_after_each {
            return;
        }
    }
}

/// A gateway whose only route goes to `up`.
async fn gateway_to(up: &RawUpstream) -> TestGateway {
    let config = Config::new().route("/", &format!("http://{}", up.addr));
    TestGateway::start(&config.build()).await
}

/// Sends `count` GETs on one client connection; returns the response bodies.
async fn requests_on_one_connection(gw: SocketAddr, count: usize) -> Vec<String> {
    requests_with_method(gw, "GET", count).await
}

/// Sends `count` bodiless `method` requests on one client connection; returns the bodies.
async fn requests_with_method(gw: SocketAddr, method: &str, count: usize) -> Vec<String> {
    let mut stream = TcpStream::connect(gw).await.unwrap();
    let mut bodies = Vec::new();
    for i in 0..count {
        let request = format!("{method} /r{i} HTTP/1.1\r\nHost: app.test\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let response = tokio::time::timeout(WAIT, read_response(&mut stream))
            .await
            .expect("response in time")
            .unwrap();
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
        bodies.push(response.text());
    }
    bodies
}

#[tokio::test]
async fn a_client_connection_keeps_one_upstream_connection() {
    let up = counting_upstream(false).await;
    let gw = gateway_to(&up).await;

    let bodies = requests_on_one_connection(gw.addr, 5).await;
    assert!(bodies.iter().all(|b| b == "conn-1"), "{bodies:?}");
    assert_eq!(up.accepted(), 1);

    // A second client connection gets a connection of its own.
    let bodies = requests_on_one_connection(gw.addr, 3).await;
    assert!(bodies.iter().all(|b| b == "conn-2"), "{bodies:?}");
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn an_upstream_closing_its_connection_costs_a_new_one_not_a_failure() {
    let up = counting_upstream(true).await;
    let gw = gateway_to(&up).await;

    let bodies = requests_on_one_connection(gw.addr, 4).await;
    assert_eq!(bodies, ["conn-1", "conn-2", "conn-3", "conn-4"]);
    assert_eq!(up.accepted(), 4);
}

#[tokio::test]
async fn a_kept_connection_the_upstream_closed_is_noticed_before_it_is_used() {
    // A POST is never sent twice, so had the closed connection been used, the request
    // would fail rather than be repeated: each one must go out on a fresh connection.
    let up = counting_upstream(true).await;
    let gw = gateway_to(&up).await;

    let bodies = requests_with_method(gw.addr, "POST", 3).await;
    assert_eq!(bodies, ["conn-1", "conn-2", "conn-3"]);
    assert_eq!(up.accepted(), 3);
}

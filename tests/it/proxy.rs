//! Forwarding: method, path, query, host and bodies reach the upstream; bodies stream both
//! ways; hop-by-hop and spoofed identity headers are stripped; `X-Forwarded-*` are set;
//! WebSockets pass through.

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use super::harness::raw::{self, read_response};
use super::harness::{Config, TestGateway, TestUpstream, WAIT, client, normalised_name};

async fn gateway_to(upstream: &TestUpstream, server_lines: &[&str]) -> TestGateway {
    let mut config = Config::new();
    for line in server_lines {
        config = config.server(line);
    }
    TestGateway::start(&config.route("/", &upstream.url()).build()).await
}

#[tokio::test]
async fn get_reaches_upstream_with_path_query_and_host() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up, &[]).await;

    let resp = client()
        .get(gw.url("/some/page?b=2&a=%20x&a=1"))
        .header("X-Custom", "hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-test-upstream"],
        up.addr.port().to_string().as_str()
    );
    let echo: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "GET");

    let got = up.last();
    assert_eq!(got.method, "GET");
    assert_eq!(got.uri, "/some/page?b=2&a=%20x&a=1");
    assert_eq!(got.header("host"), Some(gw.addr.to_string().as_str()));
    assert_eq!(got.header("x-custom"), Some("hello"));
    assert_eq!(got.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        got.header("x-forwarded-host"),
        Some(gw.addr.to_string().as_str())
    );
}

#[tokio::test]
async fn post_body_is_forwarded_whole() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up, &[]).await;

    let body = "x".repeat(200_000);
    let resp = client()
        .post(gw.url("/upload"))
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = up.last();
    assert_eq!(got.method, "POST");
    assert_eq!(got.body.len(), body.len());
    assert_eq!(got.header("content-type"), Some("text/plain"));
}

#[tokio::test]
async fn request_body_is_streamed_not_buffered() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up, &[]).await;

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let head = "POST /stream-request HTTP/1.1\r\nHost: app.test\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"b\r\nfirst-chunk\r\n").await.unwrap();
    // The upstream must see the first chunk while the client still holds back the rest.
    up.wait_request_data(b"first-chunk").await;
    stream
        .write_all(b"c\r\nsecond-chunk\r\n0\r\n\r\n")
        .await
        .unwrap();
    let resp = tokio::time::timeout(WAIT, read_response(&mut stream))
        .await
        .expect("no response in time")
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "first-chunksecond-chunk");
    assert_eq!(&up.last().body[..], b"first-chunksecond-chunk");
}

#[tokio::test]
async fn response_body_is_streamed_not_buffered() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up, &[]).await;

    let mut resp = client()
        .get(gw.url("/stream-response"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The first chunk arrives while the upstream still holds back the last one.
    let first = tokio::time::timeout(WAIT, resp.chunk())
        .await
        .expect("first chunk did not arrive before the upstream finished")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first-chunk\n");
    up.release_stream_response();
    let mut rest = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, resp.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"last-chunk\n");
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_removed() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up, &[]).await;

    let req = "GET /hop HTTP/1.1\r\nHost: app.test\r\n\
               Connection: close, X-Drop-Me\r\nX-Drop-Me: 1\r\nKeep-Alive: timeout=5\r\n\
               Proxy-Authorization: Basic Zm9vOmJhcg==\r\nX-Keep-Me: yes\r\n\r\n";
    let resp = raw::send(gw.addr, req).await;
    assert_eq!(resp.status, 200);

    let got = up.last();
    for name in ["x-drop-me", "keep-alive", "proxy-authorization"] {
        assert!(
            got.header(name).is_none(),
            "{name} reached the upstream: {:?}",
            got.headers
        );
    }
    for value in got.header_all("connection") {
        assert!(
            !value.to_ascii_lowercase().contains("x-drop-me"),
            "Connection: {value}"
        );
    }
    assert_eq!(got.header("x-keep-me"), Some("yes"));
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_removed() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up, &[]).await;

    let resp = raw::send(gw.addr, &raw::get("/set-headers", "app.test", &[])).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "headers set");
    assert_eq!(resp.header("x-upstream-normal"), Some("kept"));
    assert_eq!(resp.header("x-upstream-secret"), None, "{:?}", resp.headers);
    assert_eq!(resp.header("keep-alive"), None, "{:?}", resp.headers);
    for (name, value) in &resp.headers {
        if name == "connection" {
            assert!(
                !value.to_ascii_lowercase().contains("x-upstream-secret"),
                "Connection: {value}"
            );
        }
    }
}

/// Every header an upstream got whose name reads as one of `names`.
fn identity_headers_seen(got: &super::harness::Received, names: &[&str]) -> Vec<String> {
    got.headers
        .iter()
        .filter(|(n, _)| names.contains(&normalised_name(n.as_str()).as_str()))
        .map(|(n, v)| format!("{n}: {v:?}"))
        .collect()
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up, &[]).await;

    let req = "GET /who HTTP/1.1\r\nHost: app.test\r\n\
               X-User-Id: 1\r\nx-user-id: 2\r\nX-USER-ID: 3\r\nX_User_Id: 4\r\n\
               X-User-Name: root\r\nx_user_name: root\r\n\
               X-User-Roles: admin\r\nX-User-Roles: superuser\r\nx_USER_roles: admin\r\n\
               X-Other: fine\r\nConnection: close\r\n\r\n";
    let resp = raw::send(gw.addr, req).await;
    assert_eq!(resp.status, 200);

    let got = up.last();
    let seen = identity_headers_seen(&got, &["x-user-id", "x-user-name", "x-user-roles"]);
    assert!(
        seen.is_empty(),
        "identity headers reached upstream: {seen:?}"
    );
    assert_eq!(got.header("x-other"), Some("fine"));
}

#[tokio::test]
async fn configured_identity_header_names_are_removed_too() {
    let up = TestUpstream::start().await;
    let config = Config::new()
        .section(
            "[identity_headers]\nuser_id = \"X-Auth-Uid\"\nusername = \"X-Auth-Login\"\n\
             roles = \"X-Auth-Groups\"",
        )
        .route("/", &up.url())
        .build();
    let gw = TestGateway::start(&config).await;

    let req = "GET /who HTTP/1.1\r\nHost: app.test\r\n\
               X-Auth-Uid: 1\r\nx_auth_uid: 2\r\nX-AUTH-LOGIN: root\r\nx-auth-groups: admin\r\n\
               Connection: close\r\n\r\n";
    let resp = raw::send(gw.addr, req).await;
    assert_eq!(resp.status, 200);
    let seen = identity_headers_seen(&up.last(), &["x-auth-uid", "x-auth-login", "x-auth-groups"]);
    assert!(
        seen.is_empty(),
        "identity headers reached upstream: {seen:?}"
    );
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_replaced() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up, &[]).await;

    let req = "GET /xff HTTP/1.1\r\nHost: app.example.com\r\n\
               X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n\
               X-Forwarded-Host: evil.example\r\nConnection: close\r\n\r\n";
    let resp = raw::send(gw.addr, req).await;
    assert_eq!(resp.status, 200);

    let got = up.last();
    assert_eq!(got.header_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(got.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(got.header_all("x-forwarded-host"), ["app.example.com"]);
    assert_eq!(got.header("host"), Some("app.example.com"));
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_peer_is_extended() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up, &["trusted_proxies = [\"127.0.0.0/8\"]"]).await;

    let req = "GET /xff HTTP/1.1\r\nHost: app.example.com\r\n\
               X-Forwarded-For: 1.2.3.4, 5.6.7.8\r\nConnection: close\r\n\r\n";
    let resp = raw::send(gw.addr, req).await;
    assert_eq!(resp.status, 200);
    let got = up.last();
    assert_eq!(
        got.header_all("x-forwarded-for").join(", "),
        "1.2.3.4, 5.6.7.8, 127.0.0.1"
    );

    // Without a client chain the peer alone is reported.
    let resp = raw::send(gw.addr, &raw::get("/xff2", "app.example.com", &[])).await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().header_all("x-forwarded-for"), ["127.0.0.1"]);
}

#[tokio::test]
async fn websocket_echo_passes_through() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up, &[]).await;

    let url = format!("ws://{}/ws", gw.addr);
    let (mut ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("websocket handshake timed out")
        .unwrap();
    assert_eq!(resp.status(), 101);

    for text in ["hello", "through the gateway"] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no echo in time")
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Message::text(text));
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::binary(vec![0u8, 1, 2, 255]));
    ws.close(None).await.unwrap();

    let got = up.last();
    assert_eq!(got.path(), "/ws");
    assert_eq!(
        got.header("upgrade").map(str::to_ascii_lowercase),
        Some("websocket".into())
    );
}

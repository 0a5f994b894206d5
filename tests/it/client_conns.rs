//! Client connections over HTTP/1.1: requests without a body are served directly, anything
//! else hands the connection to the general HTTP/1 server, and either way the client sees
//! one well-behaved connection: requests with and without bodies mix freely, pipelined
//! requests are answered in order, `Connection: close` is honoured, and malformed input
//! gets the same answer as ever.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::harness::raw::{RawResponse, read_response, send};
use super::harness::{Config, TestGateway, TestUpstream, WAIT};

async fn gateway_to(up: &TestUpstream) -> TestGateway {
    TestGateway::start(&Config::new().route("/", &up.url()).build()).await
}

async fn next_response(stream: &mut TcpStream) -> RawResponse {
    tokio::time::timeout(WAIT, read_response(stream))
        .await
        .expect("a response in time")
        .expect("a whole response")
}

#[tokio::test]
async fn requests_with_and_without_bodies_share_one_connection() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();

    let requests = [
        "GET /one HTTP/1.1\r\nHost: app.test\r\n\r\n".to_owned(),
        "POST /two HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello".to_owned(),
        "GET /three HTTP/1.1\r\nHost: app.test\r\n\r\n".to_owned(),
        "PUT /four HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n\
         3\r\nabc\r\n0\r\n\r\n"
            .to_owned(),
    ];
    for request in &requests {
        stream.write_all(request.as_bytes()).await.unwrap();
        assert_eq!(next_response(&mut stream).await.status, 200, "{request:?}");
    }
    let received = up.received();
    let seen: Vec<(&str, &str, &[u8])> = received
        .iter()
        .map(|r| (r.method.as_str(), r.path(), &r.body[..]))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/one", &b""[..]),
            ("POST", "/two", b"hello"),
            ("GET", "/three", b""),
            ("PUT", "/four", b"abc"),
        ]
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let pipelined = "GET /a HTTP/1.1\r\nHost: app.test\r\n\r\n\
                     HEAD /b HTTP/1.1\r\nHost: app.test\r\n\r\n\
                     GET /c HTTP/1.1\r\nHost: app.test\r\n\r\n";
    stream.write_all(pipelined.as_bytes()).await.unwrap();
    let first = next_response(&mut stream).await;
    assert_eq!(first.status, 200);
    // HEAD's response has no body; reading it as if it had would swallow the next one.
    let head = tokio::time::timeout(
        WAIT,
        super::harness::raw::read_response_to(&mut stream, "HEAD"),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let third = next_response(&mut stream).await;
    assert_eq!(third.status, 200);
    let paths: Vec<String> = up.received().iter().map(|r| r.path().to_owned()).collect();
    assert_eq!(paths, ["/a", "/b", "/c"]);
    assert!(first.text().contains("/a") && third.text().contains("/c"));
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up).await;
    // `send` reads until the connection ends when needed, so a server that kept it open
    // would make this time out.
    let response = send(
        gw.addr,
        "GET /bye HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /bye HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    next_response(&mut stream).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        WAIT,
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest),
    );
    assert_eq!(read.await.expect("closed in time").unwrap(), 0);
}

#[tokio::test]
async fn malformed_and_unusual_requests_get_the_usual_answers() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up).await;
    let bad = send(
        gw.addr,
        "GET / HTTP/1.1\r\nHost: app.test\r\nNo colon here\r\n\r\n",
    )
    .await;
    assert_eq!(bad.status, 400);
    let bad_target = send(gw.addr, "GET /a b HTTP/1.1\r\nHost: app.test\r\n\r\n").await;
    assert_eq!(bad_target.status, 400);
    // HTTP/1.0 and absolute-form targets are served too.
    let old = send(gw.addr, "GET /old HTTP/1.0\r\nHost: app.test\r\n\r\n").await;
    assert_eq!(old.status, 200);
    let absolute = send(
        gw.addr,
        "GET http://app.test/abs HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(absolute.status, 200);
    let paths: Vec<String> = up.received().iter().map(|r| r.path().to_owned()).collect();
    assert_eq!(paths, ["/old", "/abs"]);
}

#[tokio::test]
async fn responses_carry_a_date() {
    let up = TestUpstream::start().await;
    let gw = gateway_to(&up).await;
    // An error tollgate answers itself, and a proxied response.
    for path in ["/auth/nothing-here", "/proxied"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n");
        let response = send(gw.addr, &request).await;
        let date = response
            .header("date")
            .unwrap_or_else(|| panic!("{path}: no date"));
        assert!(date.ends_with(" GMT"), "{path}: {date}");
    }
}

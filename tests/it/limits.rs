//! Connection-level limits: header read timeout for slow clients, the connection cap
//! (503 with `Retry-After`), and the header size limit.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::harness::raw::{self, read_response};
use super::harness::{Config, TestGateway, TestUpstream, WAIT};

/// Reads until EOF or an error; returns what was read.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_client_is_disconnected_after_header_read_timeout() {
    let up = TestUpstream::start().await;
    let config = Config::new()
        .server("header_read_timeout = \"1s\"")
        .route("/", &up.url())
        .build();
    let gw = TestGateway::start(&config).await;

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(b"GET /slo").await.unwrap();
    let started = Instant::now();
    let seen = tokio::time::timeout(Duration::from_secs(3), read_until_closed(&mut stream))
        .await
        .expect("connection still open 3 s after a half request line");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "closed after only {took:?}"
    );
    let text = String::from_utf8_lossy(&seen);
    assert!(
        seen.is_empty() || text.starts_with("HTTP/1.1 408"),
        "unexpected bytes before close: {text:?}"
    );
    assert!(up.received().is_empty());

    // A prompt client on the same gateway is served.
    let resp = raw::send(gw.addr, &raw::get("/fine", "app.test", &[])).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn slow_headers_are_cut_off_too() {
    let up = TestUpstream::start().await;
    let config = Config::new()
        .server("header_read_timeout = \"1s\"")
        .route("/", &up.url())
        .build();
    let gw = TestGateway::start(&config).await;

    // A complete request line, then one header line every 300 ms, never the blank line.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /drip HTTP/1.1\r\nHost: app.test\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let drip = async {
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let line = format!("X-Drip-{i}: {i}\r\n");
            if stream.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(6), drip).await;
    let closed = tokio::time::timeout(Duration::from_secs(1), read_until_closed(&mut stream)).await;
    assert!(
        closed.is_ok() && started.elapsed() < Duration::from_secs(6),
        "a client dripping headers kept the connection for {:?}",
        started.elapsed()
    );
    assert!(up.received().is_empty());
}

#[tokio::test]
async fn connections_over_the_cap_get_503() {
    let up = TestUpstream::start().await;
    let config = Config::new()
        .server("max_connections = 1")
        .route("/", &up.url())
        .build();
    let gw = TestGateway::start(&config).await;

    // Hold one keep-alive connection (served once, so it is surely counted).
    let mut held = TcpStream::connect(gw.addr).await.unwrap();
    held.write_all(b"GET /held HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    let resp = tokio::time::timeout(WAIT, read_response(&mut held))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status, 200);

    // The second connection is refused with 503, whether the gateway answers at once or
    // after reading a request.
    let mut second = TcpStream::connect(gw.addr).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), second.readable()).await;
    if early.is_err() {
        let _ = second
            .write_all(b"GET /second HTTP/1.1\r\nHost: app.test\r\n\r\n")
            .await;
    }
    let resp = tokio::time::timeout(WAIT, read_response(&mut second))
        .await
        .expect("no answer on the connection over the cap")
        .expect("connection over the cap closed without a 503");
    assert_eq!(resp.status, 503);
    assert!(resp.header("retry-after").is_some(), "{:?}", resp.headers);
    let rest = tokio::time::timeout(WAIT, read_until_closed(&mut second)).await;
    assert!(rest.is_ok(), "connection over the cap was not closed");
    assert!(up.received().iter().all(|r| r.uri != "/second"));

    // Once the held connection goes, new ones are served again.
    drop(held);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let _ = s
            .write_all(raw::get("/again", "app.test", &[]).as_bytes())
            .await;
        let resp = tokio::time::timeout(WAIT, read_response(&mut s))
            .await
            .unwrap();
        if matches!(&resp, Ok(r) if r.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed: {resp:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let up = TestUpstream::start().await;
    let config = Config::new()
        .server("max_header_bytes = 8192")
        .route("/", &up.url())
        .build();
    let gw = TestGateway::start(&config).await;

    let big = format!("X-Big: {}", "a".repeat(16_384));
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let _ = stream
        .write_all(raw::get("/big", "app.test", &[&big]).as_bytes())
        .await;
    let resp = tokio::time::timeout(WAIT, read_response(&mut stream))
        .await
        .expect("no answer to an oversized request");
    if let Ok(resp) = resp {
        assert!(
            resp.status == 431 || resp.status == 400,
            "oversized headers got {}",
            resp.status
        );
    }
    assert!(up.received().is_empty());

    // Headers under the limit are fine.
    let small = format!("X-Small: {}", "a".repeat(2_000));
    let resp = raw::send(gw.addr, &raw::get("/small", "app.test", &[&small])).await;
    assert_eq!(resp.status, 200);
}

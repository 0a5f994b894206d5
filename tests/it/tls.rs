//! TLS with an rcgen certificate (HTTP/1.1 and HTTP/2 by ALPN), h2c prior knowledge on
//! plain TCP, and certificates swapped by a reload.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Version;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::harness::{Config, TestGateway, TestUpstream, WAIT, self_signed};

/// A gateway on TLS with `cert.pem` / `key.pem` (relative to the config file).
async fn tls_gateway(up: &TestUpstream, cert: &str, key: &str, server: &[&str]) -> TestGateway {
    let mut config = Config::new().tls("cert.pem", "key.pem");
    for line in server {
        config = config.server(line);
    }
    let config = config.route("/", &up.url()).build();
    TestGateway::start_with_files(&config, &[("cert.pem", cert), ("key.pem", key)]).await
}

/// A client that trusts only `cert_pem` and resolves `localhost` to `addr`.
fn tls_client(cert_pem: &str, addr: SocketAddr, http1_only: bool) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([root])
        .resolve("localhost", addr)
        .timeout(WAIT);
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn tls_http1() {
    let up = TestUpstream::start().await;
    let (cert, key) = self_signed();
    let gw = tls_gateway(&up, &cert, &key, &[]).await;

    let url = format!("https://localhost:{}/secure?x=1", gw.addr.port());
    let resp = tls_client(&cert, gw.addr, true)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), Version::HTTP_11);

    let got = up.last();
    assert_eq!(got.uri, "/secure?x=1");
    let host = format!("localhost:{}", gw.addr.port());
    assert_eq!(got.header("host"), Some(host.as_str()));
    assert_eq!(got.header("x-forwarded-proto"), Some("https"));
    assert_eq!(got.header("x-forwarded-host"), Some(host.as_str()));
}

#[tokio::test]
async fn tls_http2_by_alpn() {
    let up = TestUpstream::start().await;
    let (cert, key) = self_signed();
    let gw = tls_gateway(&up, &cert, &key, &[]).await;

    let client = tls_client(&cert, gw.addr, false);
    let url = format!("https://localhost:{}/h2", gw.addr.port());
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), Version::HTTP_2);

    // A streamed POST over h2 arrives whole.
    let resp = client
        .post(&url)
        .body("h2 body".repeat(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), Version::HTTP_2);

    let got = up.received();
    assert_eq!(got.len(), 2);
    let host = format!("localhost:{}", gw.addr.port());
    assert_eq!(got[0].header("host"), Some(host.as_str()));
    assert_eq!(got[0].header("x-forwarded-proto"), Some("https"));
    assert_eq!(got[1].body.len(), "h2 body".len() * 1000);
}

#[tokio::test]
async fn h2c_prior_knowledge_on_plain_tcp() {
    let up = TestUpstream::start().await;
    let gw = TestGateway::start(&Config::new().route("/", &up.url()).build()).await;

    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(WAIT)
        .build()
        .unwrap();
    let resp = client.get(gw.url("/h2c?q=1")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), Version::HTTP_2);

    let got = up.last();
    assert_eq!(got.uri, "/h2c?q=1");
    assert_eq!(got.header("host"), Some(gw.addr.to_string().as_str()));
    assert_eq!(got.header("x-forwarded-proto"), Some("http"));
}

#[tokio::test]
async fn reload_swaps_the_certificate() {
    let up = TestUpstream::start().await;
    let (cert1, key1) = self_signed();
    let (cert2, key2) = self_signed();
    let gw = tls_gateway(&up, &cert1, &key1, &[]).await;
    let url = format!("https://localhost:{}/", gw.addr.port());

    let resp = tls_client(&cert1, gw.addr, true)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        tls_client(&cert2, gw.addr, true)
            .get(&url)
            .send()
            .await
            .is_err(),
        "a client trusting only the second cert connected before the reload"
    );

    gw.write_file("cert.pem", &cert2);
    gw.write_file("key.pem", &key2);
    gw.reload().expect("reload with a new certificate");

    let resp = tls_client(&cert2, gw.addr, true)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A broken key file is refused and the second certificate stays in use.
    gw.write_file(
        "key.pem",
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    );
    assert!(gw.reload().is_err(), "reload accepted a broken key");
    let resp = tls_client(&cert2, gw.addr, true)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn silent_tls_client_is_disconnected_after_handshake_timeout() {
    let up = TestUpstream::start().await;
    let (cert, key) = self_signed();
    let gw = tls_gateway(&up, &cert, &key, &["tls_handshake_timeout = \"1s\""]).await;

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(4), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "connection still open 4 s after connecting without a handshake"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed after only {:?}",
        started.elapsed()
    );
}

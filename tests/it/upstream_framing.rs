//! How responses are read from upstreams on a client connection's own upstream
//! connection: every way HTTP/1.1 delimits a body arrives whole, interim responses are
//! skipped, a connection is kept only when its response ended cleanly, malformed or cut-off
//! responses never pass for complete ones, and only idempotent requests are repeated when a
//! kept connection dies under them.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::harness::raw::{RawResponse, RawUpstream, next_request_head, read_response_to};
use super::harness::{Config, TestGateway, WAIT};

/// What the scripted upstream does with one request.
enum Reply {
    /// Writes these bytes and keeps the connection.
    Send(&'static [u8]),
    /// Writes these bytes and closes.
    SendAndClose(&'static [u8]),
    /// Closes without answering.
    Close,
}

/// A raw upstream whose answer to each bodiless request is `script(path, n)`, where `n`
/// counts requests on that connection from 1. Counts the connections it accepts.
struct ScriptedUpstream {
    raw: RawUpstream,
}

impl ScriptedUpstream {
    async fn start(script: fn(&str, usize) -> Reply) -> ScriptedUpstream {
        let raw = RawUpstream::start(move |stream, _| serve(stream, script)).await;
        ScriptedUpstream { raw }
    }

    fn accepted(&self) -> usize {
        self.raw.accepted()
    }

    /// A gateway whose only route (public) goes to this upstream.
    async fn gateway(&self) -> TestGateway {
        let config = Config::new().route("/", &format!("http://{}", self.raw.addr));
        TestGateway::start(&config.build()).await
    }
}

async fn serve(mut stream: TcpStream, script: fn(&str, usize) -> Reply) {
    let mut buf = Vec::new();
    for n in 1.. {
        let Some(head) = next_request_head(&mut stream, &mut buf).await else {
            return;
        };
        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
        match script(&path, n) {
            Reply::Send(bytes) => {
                if stream.write_all(bytes).await.is_err() {
                    return;
                }
            }
            Reply::SendAndClose(bytes) => {
                let _ = stream.write_all(bytes).await;
                return;
            }
            Reply::Close => return,
        }
    }
}

/// One client connection to the gateway, sending requests one after another.
struct Client {
    stream: TcpStream,
}

impl Client {
    async fn connect(gw: &TestGateway) -> Client {
        Client {
            stream: TcpStream::connect(gw.addr).await.unwrap(),
        }
    }

    /// Sends `method path` and reads the response; an error is a cut-off response.
    async fn send(&mut self, method: &str, path: &str) -> std::io::Result<RawResponse> {
        let request = format!("{method} {path} HTTP/1.1\r\nHost: app.test\r\n\r\n");
        self.stream.write_all(request.as_bytes()).await?;
        tokio::time::timeout(WAIT, read_response_to(&mut self.stream, method))
            .await
            .expect("a response, or the connection ending, in time")
    }

    async fn ok(&mut self, method: &str, path: &str) -> RawResponse {
        let response = self.send(method, path).await.unwrap();
        assert_eq!(response.status, 200, "{method} {path}: {}", response.text());
        response
    }
}

/// A body of `len` bytes that shows where any byte went missing.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b"0123456789abcdef"[(i % 16) ^ ((i / 4096) % 16)])
        .collect()
}

/// Large responses: 300,000 bytes with a length, and three 100,000-byte chunks.
static LARGE: std::sync::LazyLock<(Vec<u8>, Vec<u8>)> = std::sync::LazyLock::new(|| {
    let body = pattern(300_000);
    let mut with_length =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    with_length.extend_from_slice(&body);
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(100_000) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    (with_length, chunked)
});

#[tokio::test]
async fn large_bodies_arrive_whole() {
    let up = ScriptedUpstream::start(|path, _| {
        Reply::Send(if path == "/length" {
            &LARGE.0
        } else {
            &LARGE.1
        })
    })
    .await;
    let gw = up.gateway().await;
    let mut client = Client::connect(&gw).await;
    let expected = pattern(300_000);
    for path in ["/length", "/chunked", "/length"] {
        let response = client.ok("GET", path).await;
        assert!(
            response.body == expected,
            "{path}: {} bytes",
            response.body.len()
        );
    }
    assert_eq!(up.accepted(), 1);
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n";

#[tokio::test]
async fn chunked_bodies_arrive_whole_and_keep_the_connection() {
    let up = ScriptedUpstream::start(|_, _| Reply::Send(CHUNKED)).await;
    let gw = up.gateway().await;
    let mut client = Client::connect(&gw).await;
    for _ in 0..3 {
        assert_eq!(client.ok("GET", "/c").await.text(), "hello world");
    }
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn head_204_and_304_responses_have_no_body_and_keep_the_connection() {
    let up = ScriptedUpstream::start(|path, _| {
        Reply::Send(match path {
            "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            "/204" => b"HTTP/1.1 204 No Content\r\n\r\n",
            "/304" => b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody",
        })
    })
    .await;
    let gw = up.gateway().await;
    let mut client = Client::connect(&gw).await;

    let head = client.ok("HEAD", "/head").await;
    assert_eq!(head.header("content-length"), Some("5"));
    assert_eq!(client.send("GET", "/204").await.unwrap().status, 204);
    let not_modified = client.send("GET", "/304").await.unwrap();
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some("\"x\""));
    // Had any of them been read as having a body, this response would be garbled.
    assert_eq!(client.ok("GET", "/other").await.text(), "body");
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn a_body_ended_by_the_upstream_closing_arrives_whole() {
    let up = ScriptedUpstream::start(|_, _| {
        Reply::SendAndClose(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
    })
    .await;
    let gw = up.gateway().await;
    let mut client = Client::connect(&gw).await;
    assert_eq!(client.ok("GET", "/a").await.text(), "until the end");
    assert_eq!(client.ok("GET", "/b").await.text(), "until the end");
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let up = ScriptedUpstream::start(|_, _| {
        Reply::Send(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        )
    })
    .await;
    let gw = up.gateway().await;
    let mut client = Client::connect(&gw).await;
    assert_eq!(client.ok("GET", "/").await.text(), "ok");
    assert_eq!(client.ok("GET", "/").await.text(), "ok");
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn transfer_encoding_overrides_content_length_and_the_connection_is_not_kept() {
    let up = ScriptedUpstream::start(|_, _| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n\
              2\r\nok\r\n0\r\n\r\n",
        )
    })
    .await;
    let gw = up.gateway().await;
    let mut client = Client::connect(&gw).await;
    let response = client.ok("GET", "/").await;
    assert_eq!(response.text(), "ok");
    assert_eq!(response.header("content-length"), None);
    client.ok("GET", "/").await;
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn connection_fields_decide_reuse_and_never_reach_the_client() {
    let up = ScriptedUpstream::start(|path, _| {
        Reply::Send(match path {
            "/keep" => {
                b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5\r\n\
                  Content-Length: 2\r\n\r\nok"
            }
            "/named" => {
                b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: X-Hop\r\n\
                  X-Hop: secret\r\nX-Stays: 1\r\nContent-Length: 2\r\n\r\nok"
            }
            "/old" => b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
            _ => b"HTTP/1.1 200 OK\r\nconnection: CLOSE\r\nContent-Length: 2\r\n\r\nok",
        })
    })
    .await;
    let gw = up.gateway().await;
    let mut client = Client::connect(&gw).await;
    for path in ["/keep", "/named", "/old", "/keep"] {
        let response = client.ok("GET", path).await;
        for hop in ["connection", "keep-alive", "x-hop"] {
            assert_eq!(response.header(hop), None, "{path}: {:?}", response.headers);
        }
    }
    assert_eq!(
        client.ok("GET", "/named").await.header("x-stays"),
        Some("1")
    );
    // All of the above kept the one connection; `close` ends it.
    assert_eq!(up.accepted(), 1);
    client.ok("GET", "/close").await;
    client.ok("GET", "/keep").await;
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn untouched_fields_arrive_as_they_came_and_the_rules_still_apply_on_either_server() {
    let up = ScriptedUpstream::start(|_, _| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nServer: scripted\r\nX-Multi: a\r\n\
              Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nGN-Access-Token: forged\r\n\
              x-multi: b\r\nSet-Cookie: __Host-tollgate-access=forged; Path=/; Secure\r\n\
              Set-Cookie: app=1\r\nCache-Control: no-cache\r\nContent-Length: 2\r\n\r\nok",
        )
    })
    .await;
    let gw = up.gateway().await;
    let mut client = Client::connect(&gw).await;
    let direct = client.ok("GET", "/").await;
    // A request with `Content-Length` hands the connection to hyper, which serves it and
    // every request after it.
    client
        .stream
        .write_all(b"GET /len HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let handed = read_response_to(&mut client.stream, "GET").await.unwrap();
    let by_hyper = client.ok("GET", "/").await;
    for (server, response) in [("direct", direct), ("hyper", handed), ("hyper", by_hyper)] {
        assert_eq!(response.status, 200, "{server}");
        let all = |name: &str| -> Vec<&str> {
            let found = response.headers.iter().filter(|(n, _)| n == name);
            found.map(|(_, v)| v.as_str()).collect()
        };
        assert_eq!(all("server"), ["scripted"], "{server}");
        assert_eq!(all("x-multi"), ["a", "b"], "{server}");
        assert_eq!(all("date"), ["Sun, 06 Nov 1994 08:49:37 GMT"], "{server}");
        assert_eq!(all("set-cookie"), ["app=1"], "{server}");
        assert_eq!(all("cache-control"), ["no-cache"], "{server}");
        assert_eq!(all("content-length"), ["2"], "{server}");
        assert!(all("gn-access-token").is_empty(), "{server}");
        assert_eq!(response.text(), "ok", "{server}");
    }
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn malformed_upstream_heads_are_bad_gateway() {
    let up = ScriptedUpstream::start(|path, _| {
        Reply::Send(match path {
            "/conflict" => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "/signed" => b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
            "/garbage" => b"NOT HTTP AT ALL\r\n\r\n",
            _ => b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        })
    })
    .await;
    let gw = up.gateway().await;
    for path in ["/conflict", "/signed", "/garbage", "/badname"] {
        let mut client = Client::connect(&gw).await;
        let response = client.send("GET", path).await.unwrap();
        assert_eq!(response.status, 502, "{path}");
        assert_eq!(response.json()["message"], "upstreamUnavailable", "{path}");
    }
}

#[tokio::test]
async fn a_cut_off_or_malformed_body_is_never_passed_off_as_complete() {
    let up = ScriptedUpstream::start(|path, _| match path {
        "/short" => Reply::SendAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
        "/badchunk" => Reply::Send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        _ => Reply::SendAndClose(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"),
    })
    .await;
    let gw = up.gateway().await;
    for path in ["/short", "/badchunk", "/cutchunk"] {
        let mut client = Client::connect(&gw).await;
        let outcome = client.send("GET", path).await;
        assert!(outcome.is_err(), "{path}: {outcome:?}");
    }
}

/// Answers the first request on each connection; closes on the second without answering,
/// as an upstream whose idle timeout fired just as the request arrived.
fn dies_on_second_request(_: &str, n: usize) -> Reply {
    match n {
        1 => Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        _ => Reply::Close,
    }
}

#[tokio::test]
async fn an_idempotent_request_is_repeated_when_a_kept_connection_dies_under_it() {
    let up = ScriptedUpstream::start(dies_on_second_request).await;
    let gw = up.gateway().await;
    let mut client = Client::connect(&gw).await;
    client.ok("GET", "/").await;
    assert_eq!(client.ok("GET", "/").await.text(), "ok");
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn a_non_idempotent_request_is_never_repeated() {
    let up = ScriptedUpstream::start(dies_on_second_request).await;
    let gw = up.gateway().await;
    let mut client = Client::connect(&gw).await;
    client.ok("POST", "/").await;
    let response = client.send("POST", "/").await.unwrap();
    assert_eq!(response.status, 502);
    assert_eq!(up.accepted(), 1);
}

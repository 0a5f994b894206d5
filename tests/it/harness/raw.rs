//! Raw HTTP/1.1 over a `TcpStream`: exact request bytes in, the whole response out.
//!
//! reqwest and `url` normalise paths (`/pub/../admin`, `//admin`, `/%61dmin`) and header
//! names, so tests about what the gateway does with such input write the bytes themselves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::WAIT;

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased, values as sent, in order, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// A minimal GET request for `target` with `Connection: close` and the given extra header
/// lines (each without the trailing CRLF).
pub fn get(target: &str, host: &str, extra: &[&str]) -> String {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n");
    for line in extra {
        req.push_str(line);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    req
}

/// Connects to `addr`, writes `request` as is and reads the whole response (bounded).
pub async fn send(addr: SocketAddr, request: &str) -> RawResponse {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        read_response(&mut stream).await
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no complete response to {request:?} in time"))
        .unwrap_or_else(|e| panic!("reading the response to {request:?} failed: {e}"))
}

/// Reads one response from `stream`: head, then a body delimited by `Content-Length`,
/// chunked encoding, or the end of the connection. Not bounded: wrap it in a timeout.
pub async fn read_response(stream: &mut TcpStream) -> std::io::Result<RawResponse> {
    read_response_to(stream, "GET").await
}

/// Like [`read_response`], for a request with `method`: the response to `HEAD` has no body
/// whatever its headers say.
pub async fn read_response_to(
    stream: &mut TcpStream,
    method: &str,
) -> std::io::Result<RawResponse> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        if read_more(stream, &mut buf).await? == 0 {
            return Err(eof(&buf));
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut resp = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if status < 200 || status == 204 || status == 304 || method == "HEAD" {
        return Ok(resp);
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        resp.body = read_chunked(stream, rest).await?;
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().unwrap();
        while rest.len() < len {
            if read_more(stream, &mut rest).await? == 0 {
                return Err(eof(&rest));
            }
        }
        rest.truncate(len);
        resp.body = rest;
    } else {
        while read_more(stream, &mut rest).await? > 0 {}
        resp.body = rest;
    }
    Ok(resp)
}

async fn read_chunked(stream: &mut TcpStream, mut buf: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(pos) = find(&buf, b"\r\n") {
                break pos;
            }
            if read_more(stream, &mut buf).await? == 0 {
                return Err(eof(&buf));
            }
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).unwrap();
        buf.drain(..line_end + 2);
        if size == 0 {
            return Ok(body);
        }
        while buf.len() < size + 2 {
            if read_more(stream, &mut buf).await? == 0 {
                return Err(eof(&buf));
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn eof(seen: &[u8]) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!(
            "connection closed mid-response after {:?}",
            String::from_utf8_lossy(seen)
        ),
    )
}

/// A bare TCP upstream on `127.0.0.1:0` for tests about how tollgate uses upstream
/// connections: each accepted connection, numbered from 1, goes to `serve`, and the
/// connections are counted.
pub struct RawUpstream {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl RawUpstream {
    pub async fn start<F, Fut>(serve: F) -> RawUpstream
    where
        F: Fn(TcpStream, usize) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(stream, n));
            }
        });
        RawUpstream { addr, accepted }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The next request head (bodiless requests only) from `stream`, as text, removed from
/// `buf`, which keeps whatever followed it; `None` when the connection ends first.
pub async fn next_request_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos + 4;
        }
        match read_more(stream, buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    Some(head)
}

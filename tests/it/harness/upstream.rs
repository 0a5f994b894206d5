//! `TestUpstream`: a small HTTP/1.1 app the gateway forwards to.
//!
//! It records every request it receives exactly as it arrived and answers by path:
//! `/slow?ms=N`, `/stream-response`, `/stream-request`, `/set-headers`, `/ws`, and a JSON
//! echo for everything else. Every response carries `X-Test-Upstream: <port>`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::WAIT;

type UpBody = BoxBody<Bytes, Infallible>;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    /// Path and query exactly as they appeared on the request line.
    pub uri: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// The path part of `uri`.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    /// The first value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }
}

struct State {
    received: Mutex<Vec<Received>>,
    count: watch::Sender<usize>,
    release: Notify,
    frames_tx: mpsc::UnboundedSender<Bytes>,
    frames_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Bytes>>,
}

/// A running upstream; stops accepting when dropped.
pub struct TestUpstream {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestUpstream {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frames_tx, frames_rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            received: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
            release: Notify::new(),
            frames_tx,
            frames_rx: tokio::sync::Mutex::new(frames_rx),
        });
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = accept_state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), addr, req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The most recent request; panics when there was none.
    pub fn last(&self) -> Received {
        self.received().pop().expect("upstream received no request")
    }

    /// Waits (bounded) until at least `n` requests have arrived.
    pub async fn wait_received(&self, n: usize) {
        let mut rx = self.state.count.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("upstream did not receive {n} request(s) in time"))
            .unwrap();
    }

    /// Lets a pending `/stream-response` send its last chunk.
    pub fn release_stream_response(&self) {
        self.state.release.notify_one();
    }

    /// Waits (bounded) until the `/stream-request` body frames seen so far contain `needle`;
    /// returns everything seen up to that point.
    pub async fn wait_request_data(&self, needle: &[u8]) -> Vec<u8> {
        let mut rx = self.state.frames_rx.lock().await;
        let mut seen = Vec::new();
        let wait = async {
            while !seen.windows(needle.len()).any(|w| w == needle) {
                match rx.recv().await {
                    Some(frame) => seen.extend_from_slice(&frame),
                    None => break,
                }
            }
        };
        tokio::time::timeout(WAIT, wait).await.unwrap_or_else(|_| {
            panic!(
                "upstream did not receive {:?} in time",
                String::from_utf8_lossy(needle)
            )
        });
        seen
    }
}

fn record(state: &State, r: Received) {
    state.received.lock().unwrap().push(r);
    state.count.send_modify(|c| *c += 1);
}

fn full(body: impl Into<Bytes>) -> UpBody {
    Full::new(body.into()).boxed()
}

async fn handle(
    state: Arc<State>,
    addr: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<UpBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let upgrade = (path == "/ws").then(|| hyper::upgrade::on(&mut req));
    let (parts, mut body) = req.into_parts();
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();

    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            if path == "/stream-request" {
                let _ = state.frames_tx.send(data.clone());
            }
            collected.extend_from_slice(&data);
        }
    }
    let received = Received {
        method: parts.method.clone(),
        uri: uri.clone(),
        version: parts.version,
        headers: parts.headers.clone(),
        body: Bytes::from(collected),
    };
    record(&state, received.clone());

    let mut resp = match path.as_str() {
        "/slow" => {
            let ms = query_param(&uri, "ms").unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::new(full("slow done"))
        }
        "/stream-response" => stream_response(state.clone()),
        "/stream-request" => Response::new(full(received.body.clone())),
        "/set-headers" => Response::builder()
            .header("Connection", "close, X-Upstream-Secret")
            .header("X-Upstream-Secret", "s")
            .header("Keep-Alive", "timeout=5")
            .header("X-Upstream-Normal", "kept")
            .body(full("headers set"))
            .unwrap(),
        "/ws" => websocket(&parts.headers, upgrade),
        _ => echo(&received),
    };
    resp.headers_mut()
        .insert("x-test-upstream", addr.port().to_string().parse().unwrap());
    Ok(resp)
}

fn query_param(uri: &str, name: &str) -> Option<u64> {
    let query = uri.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

fn stream_response(state: Arc<State>) -> Response<UpBody> {
    let chunks = futures_util::stream::unfold(0u8, move |step| {
        let state = state.clone();
        async move {
            match step {
                0 => Some((Ok(Frame::data(Bytes::from_static(b"first-chunk\n"))), 1)),
                1 => {
                    state.release.notified().await;
                    Some((Ok(Frame::data(Bytes::from_static(b"last-chunk\n"))), 2))
                }
                _ => None,
            }
        }
    });
    Response::new(BodyExt::boxed(StreamBody::new(chunks)))
}

fn echo(r: &Received) -> Response<UpBody> {
    let mut headers = serde_json::Map::new();
    for name in r.headers.keys() {
        headers.insert(name.to_string(), r.header_all(name.as_str()).into());
    }
    let body = serde_json::json!({
        "method": r.method.as_str(),
        "uri": r.uri,
        "version": format!("{:?}", r.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&r.body),
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .unwrap()
}

fn websocket(headers: &HeaderMap, upgrade: Option<hyper::upgrade::OnUpgrade>) -> Response<UpBody> {
    let key = headers.get("sec-websocket-key");
    let (Some(key), Some(upgrade)) = (key, upgrade) else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(full("not a websocket request"))
            .unwrap();
    };
    let accept = derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(full(Bytes::new()))
        .unwrap()
}

//! Upstream connections owned by one downstream HTTP/1.1 connection.
//!
//! An HTTP/1.1 client connection carries one request at a time, so it never needs more than
//! one upstream connection per upstream at once. Keeping that connection with the
//! downstream one, and driving both from the same task, takes the shared pool (its lock,
//! its bookkeeping, and two task switches per request) off the request path: the
//! downstream connection's task reads the request, writes it upstream, reads the response
//! and writes it back without handing anything to another task. The upstream connections
//! close when the downstream connection does. HTTP/2 clients and protocol upgrades use the
//! shared pool instead (`client.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Context;
use std::time::Duration;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::gateway::route::Upstream;
use crate::{Body, BoxError};

/// How long establishing an upstream TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle upstream connections one downstream connection keeps (one per upstream it used
/// most recently); more would only hold file descriptors.
const MAX_IDLE: usize = 4;

type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The upstream connections of one downstream connection. The downstream connection's task
/// must call [`UpstreamLink::poll_connections`] whenever it is polled.
#[derive(Default)]
pub struct UpstreamLink {
    state: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    /// Connections that finished their last exchange, most recently used last.
    idle: Vec<(Authority, http1::SendRequest<Body>)>,
    /// The connection futures: they do the reading and writing.
    drivers: Vec<Driver>,
}

impl std::fmt::Debug for UpstreamLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("UpstreamLink")
            .field("idle", &state.idle.len())
            .field("connections", &state.drivers.len())
            .finish()
    }
}

impl UpstreamLink {
    /// A link with no connections yet.
    pub fn new() -> UpstreamLink {
        UpstreamLink::default()
    }

    /// Lets every upstream connection make progress; finished ones are dropped.
    pub fn poll_connections(&self, cx: &mut Context<'_>) {
        let mut state = self.lock();
        state
            .drivers
            .retain_mut(|driver| driver.as_mut().poll(cx).is_pending());
    }

    /// Sends `request` (absolute URI, as the shared pool takes it) to `upstream` on this
    /// link's connection, opening one if there is none or the old one closed. A request
    /// that a kept-alive connection closed before taking is sent once more on a new one.
    pub async fn send(
        &self,
        upstream: &Upstream,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, BoxError> {
        let mut request = to_origin_form(request, &upstream.authority)?;
        let mut kept = self.take_idle(&upstream.authority);
        loop {
            // A kept connection that closed meanwhile fails `ready` and is dropped.
            let usable = match kept.take() {
                Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
                None => None,
            };
            let reused = usable.is_some();
            let mut sender = match usable {
                Some(sender) => sender,
                // Boxed: connecting is rare, and its future would otherwise enlarge (and be
                // moved with) every request's.
                None => Box::pin(self.connect(&upstream.authority)).await?,
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.put_idle(&upstream.authority, sender);
                    return Ok(response);
                }
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(failed.into_error().into()),
                },
            }
        }
    }

    /// Opens a new connection to `authority` and starts driving it on this link.
    async fn connect(&self, authority: &Authority) -> Result<http1::SendRequest<Body>, BoxError> {
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| format!("connecting to {authority} timed out"))??;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        let driver = async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        };
        self.lock().drivers.push(Box::pin(driver));
        Ok(sender)
    }

    fn take_idle(&self, authority: &Authority) -> Option<http1::SendRequest<Body>> {
        let mut state = self.lock();
        let at = state.idle.iter().rposition(|(a, _)| a == authority)?;
        Some(state.idle.remove(at).1)
    }

    fn put_idle(&self, authority: &Authority, sender: http1::SendRequest<Body>) {
        let mut state = self.lock();
        if state.idle.len() >= MAX_IDLE {
            // Dropping the sender closes that connection once it is idle.
            state.idle.remove(0);
        }
        state.idle.push((authority.clone(), sender));
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        // Nothing panics while holding the lock; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The request as a connection to the upstream sends it: origin-form target, and a `Host`
/// header (the client's, or the upstream's when the client sent none).
fn to_origin_form(
    request: Request<Body>,
    authority: &Authority,
) -> Result<Request<Body>, BoxError> {
    let (mut parts, body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::from(target);
    if !parts.headers.contains_key(HOST) {
        parts
            .headers
            .insert(HOST, HeaderValue::from_str(authority.as_str())?);
    }
    Ok(Request::from_parts(parts, body))
}

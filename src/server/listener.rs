//! The public listener: accept, enforce the connection cap, TLS handshake under a deadline,
//! detect the protocol, serve HTTP/1.1 or HTTP/2 with explicit limits, and drain gracefully
//! when asked to stop.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Shared;
use super::direct::{self, HeadLimits, Served};
use super::sniff::{Protocol, Sniffed};
use crate::config::Settings;
use crate::gateway::handle::ConnInfo;
use crate::proxy::link::UpstreamLink;

/// Concurrent streams one HTTP/2 connection may open.
const H2_MAX_CONCURRENT_STREAMS: u32 = 256;
/// Streams a client may reset before it is served, bounding rapid-reset floods.
const H2_MAX_PENDING_RESETS: usize = 64;
/// Streams tollgate may reset for protocol errors before closing the connection.
const H2_MAX_LOCAL_RESETS: usize = 256;
/// Ping interval that detects dead HTTP/2 peers.
const H2_KEEPALIVE: Duration = Duration::from_secs(30);

/// The 503 written to a plain-TCP client when the connection cap is reached.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 1\r\ncontent-length: 40\r\n\
connection: close\r\n\r\n{\"success\":false,\"message\":\"serverBusy\"}";

/// Accepts connections until `stop` fires; each connection runs on `tracker`.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                tracker.spawn(connection(stream, peer, shared.clone(), stop.clone()));
            }
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Counts open connections against the cap; the slot is released on drop.
struct ConnectionSlot {
    shared: Arc<Shared>,
}

impl ConnectionSlot {
    fn acquire(shared: &Arc<Shared>, cap: usize) -> Option<ConnectionSlot> {
        let open: &AtomicUsize = &shared.open_connections;
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < cap).then_some(n + 1)
        })
        .ok()?;
        shared.metrics.connection_opened();
        Some(ConnectionSlot {
            shared: shared.clone(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
        self.shared.metrics.connection_closed();
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    // One snapshot per connection: limits and the certificate in force when it opened.
    let settings = shared.settings.load_full();
    let Some(_slot) = ConnectionSlot::acquire(&shared, settings.server.max_connections) else {
        tracing::warn!(%peer, "connection limit reached; refusing connection");
        if settings.server.tls.is_none() {
            let refuse = async {
                stream.write_all(OVER_CAPACITY).await?;
                stream.shutdown().await
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), refuse).await;
        }
        return;
    };
    let _ = stream.set_nodelay(true);
    match &settings.server.tls {
        None => {
            serve(
                stream,
                ConnInfo::new(peer, false),
                &settings,
                shared.clone(),
                stop,
            )
            .await
        }
        Some(tls) => {
            let handshake = tls.acceptor.accept(stream);
            match tokio::time::timeout(settings.server.tls_handshake_timeout, handshake).await {
                Ok(Ok(tls_stream)) => {
                    let conn = ConnInfo::new(peer, true);
                    serve(tls_stream, conn, &settings, shared.clone(), stop).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve<IO>(
    io: IO,
    conn: ConnInfo,
    settings: &Settings,
    shared: Arc<Shared>,
    stop: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &settings.server;
    let mut io = Sniffed::new(io);
    let protocol = match tokio::time::timeout(limits.header_read_timeout, io.detect()).await {
        Ok(Ok(protocol)) => protocol,
        Ok(Err(_)) => return,
        Err(_) => {
            tracing::debug!(peer = %conn.peer, "client sent no request in time");
            return;
        }
    };
    let gateway = shared.gateway.clone();
    // HTTP/1.1 carries one request at a time, so the connection keeps its own upstream
    // connections; HTTP/2 uses the shared pool.
    let link = (protocol == Protocol::Http1).then(|| Arc::new(UpstreamLink::new()));
    if let Some(link) = &link {
        let head_limits = HeadLimits {
            read_timeout: limits.header_read_timeout,
            max_bytes: limits.max_header_bytes,
        };
        // Requests without a body are served directly; the first that is not, and every
        // request after it, goes to hyper below.
        io = match direct::serve(io, &conn, head_limits, &gateway, link, &stop).await {
            Served::Closed => return,
            Served::HandOver(io) => io,
        };
    }
    let service = {
        let link = link.clone();
        service_fn(move |request| {
            let (gateway, link, conn) = (gateway.clone(), link.clone(), conn.clone());
            async move {
                let request = request.map(boxed_body);
                Ok::<_, Infallible>(gateway.handle(request, conn, link.as_deref()).await)
            }
        })
    };
    let io = TokioIo::new(io);
    match protocol {
        Protocol::Http1 => {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes)
                .keep_alive(true)
                .serve_connection(io, service)
                .with_upgrades();
            drive(connection, stop).await;
        }
        Protocol::Http2 => {
            let connection = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
                .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
                .max_local_error_reset_streams(H2_MAX_LOCAL_RESETS)
                .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
                .keep_alive_interval(H2_KEEPALIVE)
                .keep_alive_timeout(H2_KEEPALIVE)
                .serve_connection(io, service);
            drive(connection, stop).await;
        }
    }
}

/// A request body from hyper in the form the gateway takes.
fn boxed_body(body: Incoming) -> crate::Body {
    body.map_err(|e| -> crate::BoxError { Box::new(e) }).boxed()
}

/// A served connection that can be asked to finish its requests and close.
pub(crate) trait Drainable: Future {
    /// Stop taking new requests; in-flight ones complete.
    fn drain(self: Pin<&mut Self>);
}

impl<I, S, B> Drainable for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<crate::BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<crate::BoxError>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B> Drainable for http2::Connection<I, S, TokioExecutor>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<crate::BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + Send + 'static,
    B::Error: Into<crate::BoxError>,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs a connection to its end, draining it if `stop` fires first.
pub(crate) async fn drive<C, E>(connection: C, stop: CancellationToken)
where
    C: Drainable<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        biased;
        result = connection.as_mut() => result,
        _ = stop.cancelled() => {
            connection.as_mut().drain();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

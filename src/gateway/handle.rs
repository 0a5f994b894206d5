//! The request path, read top to bottom: canonicalise → route → authenticate → prepare the
//! upstream request → forward → filter the response → log. `Gateway::handle` runs the phases
//! on one settings snapshot and turns any `GatewayError` into a response in exactly one place.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{CONNECTION, HOST, UPGRADE};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::error::{GatewayError, wants_html};
use super::path::{canonicalise, under_prefix};
use super::route::{Policy, Route};
use crate::Body;
use crate::config::Settings;
use crate::proxy::client::UpstreamClient;
use crate::proxy::headers;
use crate::server::metrics::Metrics;

/// Where the JWKS document lives, beside the native endpoints.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// What the listener knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// The gateway: settings, the upstream client and metrics, shared by all connections.
#[derive(Debug)]
pub struct Gateway {
    settings: Arc<ArcSwap<Settings>>,
    client: UpstreamClient,
    metrics: Arc<Metrics>,
}

/// Per-request state carried through the phases.
struct RequestContext {
    settings: Arc<Settings>,
    conn: ConnInfo,
    route: Option<Arc<Route>>,
    path: Option<String>,
}

impl Gateway {
    /// A gateway reading its settings through `settings`.
    pub fn new(settings: Arc<ArcSwap<Settings>>, metrics: Arc<Metrics>) -> Gateway {
        Gateway {
            settings,
            client: UpstreamClient::new(),
            metrics,
        }
    }

    /// Answers one request: the upstream's response or tollgate's own error.
    pub async fn handle(&self, request: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let started = Instant::now();
        let html = wants_html(request.headers());
        let method = request.method().clone();
        let host = request_host(&request).map(str::to_string);
        let raw_path = request.uri().path().to_string();
        let mut ctx = RequestContext {
            settings: self.settings.load_full(),
            conn,
            route: None,
            path: None,
        };
        let response = match self.phases(&mut ctx, request).await {
            Ok(response) => response,
            Err(error) => {
                let (status, code) = error.status_and_code();
                if status.is_server_error() {
                    tracing::warn!(%status, code, error = %ErrorChain(&error), "request failed");
                } else {
                    tracing::debug!(%status, code, error = %ErrorChain(&error), "request refused");
                }
                error.into_response(html)
            }
        };
        let status = response.status().as_u16();
        self.metrics
            .request(ctx.route.as_ref().map(|r| &r.name), status);
        tracing::info!(
            target: "tollgate::access",
            method = %method,
            host = host.as_deref().unwrap_or("-"),
            path = ctx.path.as_deref().unwrap_or(&raw_path),
            status,
            duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            upstream = %ctx.route.as_ref().map(|r| r.upstream.to_string()).unwrap_or_else(|| "-".into()),
            peer = %ctx.conn.peer.ip(),
        );
        response
    }

    async fn phases(
        &self,
        ctx: &mut RequestContext,
        mut request: Request<Incoming>,
    ) -> Result<Response<Body>, GatewayError> {
        let path = canonicalise(request.uri().path())?;
        ctx.path = Some(path.clone());
        if is_native(&path, &ctx.settings.auth_prefix) {
            // tollgate's own endpoints live here; nothing under them is ever forwarded.
            return Err(GatewayError::NotFound);
        }
        let route = ctx
            .settings
            .routes
            .find(request_host(&request), &path)
            .ok_or(GatewayError::NotFound)?
            .clone();
        ctx.route = Some(route.clone());
        authenticate(&route)?;
        let client_upgrade =
            headers_ask_upgrade(&request).then(|| hyper::upgrade::on(&mut request));
        let upstream_request = prepare_upstream_request(ctx, &route, &path, request)?;
        let sent = Instant::now();
        let mut response = tokio::time::timeout(route.timeout, self.client.send(upstream_request))
            .await
            .map_err(|_| GatewayError::UpstreamTimeout)?
            .map_err(GatewayError::UpstreamUnavailable)?;
        self.metrics.upstream_latency(&route.name, sent.elapsed());
        let upgrade = headers::strip_hop_by_hop(response.headers_mut());
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let (Some(client_upgrade), Some(protocol)) = (client_upgrade, upgrade) else {
                return Err(GatewayError::InvalidUpstreamResponse("unrequested 101"));
            };
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(splice(client_upgrade, upstream_upgrade));
            let headers = response.headers_mut();
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, protocol);
        }
        Ok(response.map(|body| body.map_err(Into::into).boxed()))
    }
}

/// The host the client addressed: the URI authority (HTTP/2, absolute form) or `Host`.
fn request_host<B>(request: &Request<B>) -> Option<&str> {
    host_of(request.uri(), request.headers())
}

fn host_of<'a>(uri: &'a Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok()))
}

/// Paths that belong to tollgate itself.
fn is_native(path: &str, auth_prefix: &str) -> bool {
    under_prefix(path, auth_prefix) || path == JWKS_PATH
}

/// Applies the route's policy. Only `public` routes can be configured until sign-in exists;
/// any other policy fails closed here rather than letting a request through.
fn authenticate(route: &Route) -> Result<(), GatewayError> {
    match route.policy {
        Policy::Public => Ok(()),
        Policy::Authenticated | Policy::Role(_) => Err(GatewayError::MissingToken),
    }
}

/// Whether an HTTP/1.1 request asks to switch protocols (WebSocket).
fn headers_ask_upgrade<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_11
        && request.headers().contains_key(UPGRADE)
        && request
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Builds what the upstream receives: canonical path, cleaned and rewritten headers.
fn prepare_upstream_request(
    ctx: &RequestContext,
    route: &Route,
    path: &str,
    request: Request<Incoming>,
) -> Result<Request<Body>, GatewayError> {
    let (mut parts, body) = request.into_parts();
    let host = host_of(&parts.uri, &parts.headers).map(str::to_string);
    // Order matters: the client's `Connection` list is honoured before tollgate adds its own
    // headers, so it can never name (and so remove) one of them.
    let upgrade = headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_named(&mut parts.headers, &ctx.settings.identity_headers.all());
    headers::join_cookies(&mut parts.headers);
    let forwarded = headers::forwarded(
        &parts.headers,
        ctx.conn.peer.ip(),
        &ctx.settings.server.trusted_proxies,
    );
    let proto = if ctx.conn.tls { "https" } else { "http" };
    headers::set_forwarded(
        &mut parts.headers,
        &forwarded,
        proto,
        host.as_deref().unwrap_or(""),
    );
    if let Some(host) = &host {
        let value =
            HeaderValue::from_str(host).map_err(|_| GatewayError::InvalidRequest("bad host"))?;
        parts.headers.insert(HOST, value);
    }
    if let Some(protocol) = upgrade {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, protocol);
    }
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let path_and_query = PathAndQuery::try_from(path_and_query)
        .map_err(|_| GatewayError::InvalidRequest("bad query"))?;
    parts.uri = Uri::builder()
        .scheme(route.upstream.scheme.clone())
        .authority(route.upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| GatewayError::InvalidRequest("bad uri"))?;
    parts.version = Version::HTTP_11;
    Ok(Request::from_parts(parts, body.map_err(Into::into).boxed()))
}

/// Joins the client's and the upstream's upgraded connections until either side closes.
async fn splice(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::join!(client, upstream) {
        (Ok(c), Ok(u)) => (c, u),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %e, "upgraded connection ended with an error");
    }
}

/// Displays an error with its sources, for one log line.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

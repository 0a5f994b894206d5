//! The request path, read top to bottom: canonicalise → route → authenticate → prepare the
//! upstream request → forward → filter the response → log. `Gateway::handle` runs the phases
//! on one settings snapshot and turns any `GatewayError` into a response in exactly one place.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, HOST, LOCATION};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};

use super::authenticate::{TokenFields, authenticate, authorise, current_token, presented_token};
use super::error::{GatewayError, full, wants_html};
use super::forward::{asks_upgrade, forward, prepare_upstream_request};
use super::path::{canonicalise, under_prefix};
use super::route::{Policy, Route};
use crate::Body;
use crate::auth::identity::Identity;
use crate::config::Settings;
use crate::endpoints::{self, Native};
use crate::proxy::client::UpstreamClient;
use crate::proxy::headers::{self, Forwarded};
use crate::proxy::link::UpstreamLink;
use crate::proxy::passed::PassedFields;
use crate::server::metrics::Metrics;

/// Where the JWKS document lives, beside the native endpoints.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// What the listener knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The peer's address as a header value (`X-Forwarded-For`), built once.
    pub peer_value: HeaderValue,
    /// Whether the connection is TLS.
    pub tls: bool,
}

impl ConnInfo {
    /// What is known of a connection from `peer`.
    pub fn new(peer: SocketAddr, tls: bool) -> ConnInfo {
        ConnInfo {
            peer,
            peer_value: headers::peer_value(peer.ip()),
            tls,
        }
    }
}

/// The gateway: settings, sign-in state, the upstream client and metrics, shared by all
/// connections.
#[derive(Debug)]
pub struct Gateway {
    settings: Arc<ArcSwap<Settings>>,
    identity: Arc<Identity>,
    client: UpstreamClient,
    metrics: Arc<Metrics>,
}

/// Per-request state carried through the phases.
pub(crate) struct RequestContext {
    /// The one settings snapshot this request runs on.
    pub settings: Arc<Settings>,
    /// The connection it came on.
    pub conn: ConnInfo,
    /// The client as far as trusted proxies let us know it.
    pub forwarded: Forwarded,
    /// The matched route.
    pub route: Option<Arc<Route>>,
    /// The canonical path.
    pub path: Option<String>,
    /// The client's `Authorization` value when it came beside the header map rather than
    /// in it (see [`Gateway::respond`]).
    pub authorization: Option<Bytes>,
    /// The current token's fields for the response, once an authenticated request has
    /// been answered (see [`Gateway::respond`]).
    pub token_fields: Option<TokenFields>,
}

impl Gateway {
    /// A gateway reading its settings through `settings`.
    pub fn new(
        settings: Arc<ArcSwap<Settings>>,
        identity: Arc<Identity>,
        metrics: Arc<Metrics>,
    ) -> Gateway {
        Gateway {
            settings,
            identity,
            client: UpstreamClient::new(),
            metrics,
        }
    }

    /// Sessions held by the session store.
    pub fn session_count(&self) -> usize {
        self.identity.sessions.len()
    }

    /// Answers one request: the upstream's response, a native endpoint's, or an error.
    /// `link` holds the downstream connection's own upstream connections (HTTP/1.1).
    pub async fn handle(
        &self,
        request: Request<Body>,
        conn: ConnInfo,
        link: Option<&UpstreamLink>,
    ) -> Response<Body> {
        let html = wants_html(request.headers());
        let (mut response, token_fields) = self.respond(request, None, conn, link).await;
        if let Some(fields) = token_fields {
            fields.merge_into(response.headers_mut());
        }
        if let Some(passed) = response.extensions_mut().remove::<PassedFields>()
            && let Err(e) = passed.merge_into(response.headers_mut())
        {
            tracing::warn!(error = %e, "request failed");
            return GatewayError::InvalidUpstreamResponse("invalid header field")
                .into_response(html);
        }
        response
    }

    /// [`handle`](Self::handle) for a writer of HTTP/1.1 that writes the fields a response
    /// may carry beside its map itself: the upstream's ([`PassedFields`], in its
    /// extensions) and the current token's ([`TokenFields`], returned beside it).
    /// `authorization` is the request's one `Authorization` field when the reader kept it
    /// beside the header map (it is then not in the map): it authenticates the request,
    /// and goes upstream only where one in the map would.
    pub(crate) async fn respond(
        &self,
        request: Request<Body>,
        authorization: Option<Bytes>,
        conn: ConnInfo,
        link: Option<&UpstreamLink>,
    ) -> (Response<Body>, Option<TokenFields>) {
        // The clock is read for the access log line only, and only when it is written.
        let started =
            tracing::enabled!(target: "tollgate::access", tracing::Level::INFO).then(Instant::now);
        let html = wants_html(request.headers());
        let method = request.method().clone();
        // Cheap clones (shared bytes) kept for the log line and the sign-in redirect.
        let uri = request.uri().clone();
        let host_header = request.headers().get(HOST).cloned();
        let settings = self.settings.load_full();
        let forwarded = headers::forwarded(
            request.headers(),
            conn.peer.ip(),
            &conn.peer_value,
            &settings.server.trusted_proxies,
        );
        let mut ctx = RequestContext {
            settings,
            conn,
            forwarded,
            route: None,
            path: None,
            authorization,
            token_fields: None,
        };
        let response = match self.phases(&mut ctx, request, html, link).await {
            Ok(response) => response,
            Err(error) => {
                // An error response never carries a token.
                ctx.token_fields = None;
                let (status, code) = error.status_and_code();
                if status.is_server_error() {
                    tracing::warn!(%status, code, error = %ErrorChain(&error), "request failed");
                } else {
                    tracing::debug!(%status, code, error = %ErrorChain(&error), "request refused");
                }
                let navigation = method == Method::GET || method == Method::HEAD;
                match &ctx.path {
                    Some(path) if html && navigation && error.wants_sign_in() => {
                        let rd = match uri.query() {
                            Some(q) => format!("{path}?{q}"),
                            None => path.clone(),
                        };
                        sign_in_redirect(&ctx.settings.auth_prefix, &rd)
                    }
                    _ => error.into_response(html),
                }
            }
        };
        let status = response.status().as_u16();
        self.metrics
            .request(ctx.route.as_ref().map(|r| &r.name), status);
        tracing::info!(
            target: "tollgate::access",
            method = %method,
            host = uri
                .authority()
                .map(|a| a.as_str())
                .or_else(|| host_header.as_ref().and_then(|h| h.to_str().ok()))
                .unwrap_or("-"),
            path = ctx.path.as_deref().unwrap_or(uri.path()),
            status,
            duration_us = started.map_or(0, |t| {
                u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
            }),
            upstream = %ctx.route.as_ref().map(|r| r.upstream.to_string()).unwrap_or_else(|| "-".into()),
            client = %ctx.forwarded.client_ip,
        );
        (response, ctx.token_fields)
    }

    async fn phases(
        &self,
        ctx: &mut RequestContext,
        mut request: Request<Body>,
        html: bool,
        link: Option<&UpstreamLink>,
    ) -> Result<Response<Body>, GatewayError> {
        let path = canonicalise(request.uri().path())?;
        ctx.path = Some(path.clone());
        if is_native(&path, &ctx.settings.auth_prefix) {
            // tollgate's own endpoints; nothing under them is ever forwarded. They read
            // every field from the map.
            if let Some(value) = ctx.authorization.take() {
                let value = HeaderValue::from_maybe_shared(value)
                    .map_err(|_| GatewayError::InvalidRequest("bad authorization"))?;
                request.headers_mut().append(AUTHORIZATION, value);
            }
            let native = Native {
                settings: &ctx.settings,
                identity: &self.identity,
                client_ip: ctx.forwarded.client_ip,
                html,
            };
            // Boxed: these futures are large and rare next to proxying, whose future would
            // otherwise carry (and move) their size on every request.
            return Box::pin(endpoints::serve(&native, &path, request)).await;
        }
        let route = ctx
            .settings
            .routes
            .find(request_host(&request), &path)
            .ok_or(GatewayError::NotFound)?
            .clone();
        ctx.route = Some(route.clone());
        let auth = match &route.policy {
            Policy::Public => None,
            policy => {
                let presented = presented_token(
                    request.headers(),
                    ctx.authorization.as_deref(),
                    &ctx.settings,
                );
                let auth = authenticate(&ctx.settings, &self.identity, presented).await?;
                authorise(policy, &auth.user)?;
                Some(auth)
            }
        };
        let client_upgrade = asks_upgrade(&request).then(|| hyper::upgrade::on(&mut request));
        let upstream_request =
            prepare_upstream_request(ctx, &route, &path, auth.as_ref(), request)?;
        let mut response = forward(
            ctx,
            &self.client,
            link,
            &self.metrics,
            &route,
            upstream_request,
            client_upgrade,
        )
        .await?;
        if let Some(auth) = &auth {
            let fields =
                current_token(&ctx.settings, &self.identity, auth, response.headers_mut()).await?;
            ctx.token_fields = Some(fields);
        }
        Ok(response)
    }
}

/// The host the client addressed: the URI authority (HTTP/2, absolute form) or `Host`.
fn request_host<B>(request: &Request<B>) -> Option<&str> {
    host_of(request.uri(), request.headers())
}

/// The host named by a request's URI or `Host` header.
pub(crate) fn host_of<'a>(uri: &'a Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok()))
}

/// Paths that belong to tollgate itself.
fn is_native(path: &str, auth_prefix: &str) -> bool {
    under_prefix(path, auth_prefix) || path == JWKS_PATH
}

/// Where a browser goes to sign in, coming back to `rd` afterwards.
fn sign_in_redirect(auth_prefix: &str, rd: &str) -> Response<Body> {
    let target = format!(
        "{auth_prefix}/login?{}",
        serde_urlencoded::to_string([("rd", rd)]).unwrap_or_default()
    );
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(location) = HeaderValue::from_str(&target) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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

//! The forwarding phases: build exactly what the upstream receives, send it on the pooled
//! client, and filter what comes back (including protocol upgrades such as WebSocket).

use std::time::Instant;

use http::header::{AUTHORIZATION, CONNECTION, HOST, UPGRADE};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use super::authenticate::{Authenticated, strip_upstream_credentials};
use super::error::GatewayError;
use super::handle::RequestContext;
use super::route::Route;
use crate::auth::cookies;
use crate::http1::{ADDED_HEADERS, lists_token};
use crate::proxy::added::AddedFields;
use crate::proxy::client::UpstreamClient;
use crate::proxy::headers;
use crate::proxy::link::UpstreamLink;
use crate::server::metrics::Metrics;
use crate::{Body, BoxError};

/// Whether an HTTP/1.1 request asks to switch protocols (WebSocket).
pub fn asks_upgrade<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_11
        && request.headers().contains_key(UPGRADE)
        && lists_token(
            request
                .headers()
                .get_all(CONNECTION)
                .iter()
                .filter(|v| v.to_str().is_ok())
                .map(HeaderValue::as_bytes),
            b"upgrade",
        )
}

/// Builds what the upstream receives: canonical path, the client's headers cleaned, and
/// beside them the fields tollgate adds (`Host`, forwarding, and the identity headers for
/// an authenticated user), none of whose names the cleaned map still holds.
pub(crate) fn prepare_upstream_request(
    ctx: &RequestContext,
    route: &Route,
    path: &str,
    auth: Option<&Authenticated>,
    request: Request<Body>,
) -> Result<(Request<Body>, AddedFields), GatewayError> {
    let (mut parts, body) = request.into_parts();
    let mut added = AddedFields::with_capacity(ADDED_HEADERS);
    let settings = &ctx.settings;
    // The host the client addressed goes upstream as it came: the URI's authority when
    // there is one (HTTP/2, absolute form), else the `Host` header itself (the first, if a
    // client sent several).
    let client_host = parts.headers.remove(HOST);
    let host = match parts.uri.authority() {
        Some(authority) => Some(
            HeaderValue::from_str(authority.as_str())
                .map_err(|_| GatewayError::InvalidRequest("bad host"))?,
        ),
        None => client_host,
    };
    // Order matters: the client's `Connection` list is honoured before tollgate adds its own
    // headers, so it can never name (and so remove) one of them.
    let upgrade = headers::strip_hop_by_hop(&mut parts.headers);
    let identity_names = settings.identity_headers.all();
    headers::strip_named(&mut parts.headers, &identity_names);
    headers::join_cookies(&mut parts.headers);
    cookies::strip(
        &mut parts.headers,
        &[
            &settings.cookies.access_name,
            &settings.cookies.refresh_name,
        ],
    );
    if auth.is_some_and(|a| !a.via_cookie) {
        // The bearer token was tollgate's; the upstream learns who the user is from the
        // identity headers instead.
        if ctx.authorization.is_none() {
            parts.headers.remove(AUTHORIZATION);
        }
    } else if let Some(value) = &ctx.authorization
        && !identity_names.contains(&&AUTHORIZATION)
    {
        // The client's own credentials for the upstream (a public route, or a browser
        // signed in by cookie) go on as they would from the map.
        let value = HeaderValue::from_maybe_shared(value.clone())
            .map_err(|_| GatewayError::InvalidRequest("bad authorization"))?;
        added.insert(AUTHORIZATION, value);
    }
    let proto = if ctx.conn.tls { "https" } else { "http" };
    // A `Host` that is not text is passed on as it came, but never echoed as a forwarded host.
    let host_text = host.as_ref().filter(|h| h.to_str().is_ok());
    headers::set_forwarded(
        &mut parts.headers,
        &mut added,
        &ctx.forwarded,
        proto,
        host_text,
    );
    if let Some(host) = host {
        added.insert(HOST, host);
    }
    if let Some(auth) = auth {
        let ids = &settings.identity_headers;
        let values = &auth.user.header_values;
        added.insert(ids.user_id.clone(), values.user_id.clone());
        if let Some(username) = &values.username {
            added.insert(ids.username.clone(), username.clone());
        }
        if let Some(roles) = &values.roles {
            added.insert(ids.roles.clone(), roles.clone());
        }
    }
    if let Some(protocol) = upgrade {
        // `Connection` and `Upgrade` were removed with the other hop-by-hop headers.
        added.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        added.insert(UPGRADE, protocol);
    }
    let path_and_query = match parts.uri.path_and_query() {
        // Already canonical (the usual case): forwarded as it came, without re-parsing.
        Some(original) if original.path() == path => original.clone(),
        _ => {
            let rebuilt = match parts.uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path.to_string(),
            };
            PathAndQuery::try_from(rebuilt)
                .map_err(|_| GatewayError::InvalidRequest("bad query"))?
        }
    };
    parts.uri = Uri::builder()
        .scheme(route.upstream.scheme.clone())
        .authority(route.upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| GatewayError::InvalidRequest("bad uri"))?;
    parts.version = Version::HTTP_11;
    Ok((Request::from_parts(parts, body), added))
}

/// Sends the request within the route's timeout (on the downstream connection's own
/// upstream `link` when it has one, else on the shared pool) and filters the response; an
/// accepted upgrade is spliced to the client in the background.
pub(crate) async fn forward(
    ctx: &RequestContext,
    pool: &UpstreamClient,
    link: Option<&UpstreamLink>,
    metrics: &Metrics,
    route: &Route,
    (mut upstream_request, added): (Request<Body>, AddedFields),
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<Body>, GatewayError> {
    let sent = Instant::now();
    let exchange = async {
        match link {
            // An upgrade goes through the pool, which hands over the upgraded connection.
            Some(link) if client_upgrade.is_none() && UpstreamLink::carries(&upstream_request) => {
                link.send(&route.upstream, upstream_request, &added).await
            }
            _ => match pool
                .send({
                    added.merge_into(upstream_request.headers_mut());
                    upstream_request
                })
                .await
            {
                Ok(response) => {
                    Ok(response.map(|body| body.map_err(|e| -> BoxError { Box::new(e) }).boxed()))
                }
                Err(e) => Err(e.into()),
            },
        }
    };
    let answered = match link {
        Some(link) => link.within(route.timeout, exchange).await,
        None => tokio::time::timeout(route.timeout, exchange).await.ok(),
    };
    let mut response = answered
        .ok_or(GatewayError::UpstreamTimeout)?
        .map_err(GatewayError::UpstreamUnavailable)?;
    metrics.upstream_latency(&route.name, sent.elapsed());
    let upgrade = headers::strip_hop_by_hop(response.headers_mut());
    strip_upstream_credentials(&ctx.settings, response.headers_mut());
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
    Ok(response)
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

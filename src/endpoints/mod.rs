//! tollgate's own endpoints under `auth_prefix`, and the JWKS document.

mod body;
mod jwks;
mod login;
mod me;
mod pages;
mod register;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};

use crate::Body;
use crate::auth::identity::Identity;
use crate::config::Settings;
use crate::gateway::error::{GatewayError, full};
use crate::gateway::handle::JWKS_PATH;

/// What a native endpoint may use.
pub struct Native<'a> {
    /// The settings snapshot of this request.
    pub settings: &'a Arc<Settings>,
    /// Users, sessions, clock.
    pub identity: &'a Identity,
    /// The client address (trusted proxies considered).
    pub client_ip: IpAddr,
    /// The client wants HTML.
    pub html: bool,
}

/// Dispatches a request whose canonical `path` is native.
pub async fn serve(
    native: &Native<'_>,
    path: &str,
    request: Request<Body>,
) -> Result<Response<Body>, GatewayError> {
    let method = request.method().clone();
    if path == JWKS_PATH {
        return match method {
            Method::GET | Method::HEAD => Ok(jwks::serve(native.settings)),
            _ => Err(GatewayError::MethodNotAllowed),
        };
    }
    let sub = path
        .strip_prefix(native.settings.auth_prefix.as_str())
        .unwrap_or(path);
    match (method, sub) {
        (Method::POST, "/register") => register::serve(native, request).await,
        (Method::GET | Method::HEAD, "/login") => {
            Ok(pages::login_page(native.settings, &request, None))
        }
        (Method::POST, "/login") => login::serve(native, request).await,
        (Method::GET | Method::HEAD, "/me") => me::serve(native, request).await,
        (_, "/register" | "/login" | "/me") => Err(GatewayError::MethodNotAllowed),
        _ => Err(GatewayError::NotFound),
    }
}

/// A JSON response that no cache keeps.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

//! `GET /.well-known/jwks.json`: the public keys that may verify a live token.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};

use crate::Body;
use crate::config::Settings;
use crate::gateway::error::full;

/// The JWKS document of the current keyring.
pub fn serve(settings: &Settings) -> Response<Body> {
    let mut response = Response::new(full(settings.tokens.keyring.jwks_json().clone()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Short enough that a rotated-in key is seen well before it signs anything.
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

//! Reading request bodies of native endpoints: size-limited, JSON or HTML form.

use http::Request;
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::gateway::error::GatewayError;

/// A decoded body and whether it came from an HTML form.
pub struct Decoded<T> {
    /// The fields.
    pub value: T,
    /// `application/x-www-form-urlencoded` (a browser form) rather than JSON.
    pub form: bool,
}

/// Reads at most `limit` bytes and decodes JSON, or a form when the content type says so.
pub async fn decode<T: DeserializeOwned>(
    request: Request<Incoming>,
    limit: usize,
) -> Result<Decoded<T>, GatewayError> {
    let form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .starts_with("application/x-www-form-urlencoded")
        });
    let bytes = Limited::new(request.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                GatewayError::PayloadTooLarge
            } else {
                GatewayError::InvalidRequest("unreadable body")
            }
        })?
        .to_bytes();
    let value = if form {
        serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| GatewayError::InvalidRequest("malformed form"))?
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|_| GatewayError::InvalidRequest("malformed JSON"))?
    };
    Ok(Decoded { value, form })
}

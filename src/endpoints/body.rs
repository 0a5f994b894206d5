//! Reading request bodies of native endpoints: size-limited, JSON or HTML form.

use bytes::BytesMut;
use http::Request;
use http::header::CONTENT_TYPE;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::Body;
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
    request: Request<Body>,
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
    let bytes = read_limited(request.into_body(), limit).await?;
    let value = if form {
        serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| GatewayError::InvalidRequest("malformed form"))?
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|_| GatewayError::InvalidRequest("malformed JSON"))?
    };
    Ok(Decoded { value, form })
}

/// The whole body, refused with 413 once it passes `limit` bytes (nothing more is read).
async fn read_limited(mut body: Body, limit: usize) -> Result<BytesMut, GatewayError> {
    let mut bytes = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| GatewayError::InvalidRequest("unreadable body"))?;
        if let Ok(data) = frame.into_data() {
            if data.len() > limit.saturating_sub(bytes.len()) {
                return Err(GatewayError::PayloadTooLarge);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

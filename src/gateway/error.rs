//! Every failure on the request path, and the one place that turns it into a response:
//! JSON `{"success": false, "message": "<code>"}` for API clients, an HTML page for browsers.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::path::PathError;
use crate::Body;
use crate::auth::token::TokenError;

/// Why a request was not answered by its upstream.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request path cannot be canonicalised safely.
    #[error("bad path: {0}")]
    BadPath(#[from] PathError),
    /// The request is malformed in some other way.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// No route matches, or nothing lives at this native path.
    #[error("no route")]
    NotFound,
    /// The route needs a signed-in user and the request carries no credentials.
    #[error("no token")]
    MissingToken,
    /// A token was sent and refused.
    #[error("token refused: {0}")]
    InvalidToken(#[from] TokenError),
    /// The token is valid but its session has ended.
    #[error("session ended")]
    SessionExpired,
    /// Sign-in failed (unknown user, wrong password or disabled account alike).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The user lacks the role the route demands.
    #[error("missing role")]
    Forbidden,
    /// The user's account is disabled.
    #[error("user disabled")]
    UserDisabled,
    /// Self-registration is turned off.
    #[error("registration closed")]
    RegistrationClosed,
    /// The username or email is taken.
    #[error("user exists ({0})")]
    UserExists(&'static str),
    /// A request body is larger than allowed.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The method is not served at this native path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The database or the session store failed or timed out: fail closed.
    #[error("storage unavailable: {0}")]
    StorageUnavailable(String),
    /// Every password-hashing slot stayed busy.
    #[error("hashing slots busy")]
    ServerBusy,
    /// Something inside tollgate failed (signing, randomness).
    #[error("internal error: {0}")]
    Internal(String),
    /// The upstream could not be reached.
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(#[source] crate::BoxError),
    /// The upstream answered with something tollgate cannot pass on.
    #[error("invalid upstream response: {0}")]
    InvalidUpstreamResponse(&'static str),
    /// The upstream did not answer within the route's timeout.
    #[error("upstream timed out")]
    UpstreamTimeout,
}

impl GatewayError {
    /// HTTP status and the camelCase message code of SPEC section 9.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            GatewayError::BadPath(_) | GatewayError::InvalidRequest(_) => {
                (StatusCode::BAD_REQUEST, "invalidRequest")
            }
            GatewayError::NotFound => (StatusCode::NOT_FOUND, "notFound"),
            GatewayError::MissingToken => (StatusCode::UNAUTHORIZED, "missingToken"),
            GatewayError::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalidToken"),
            GatewayError::SessionExpired => (StatusCode::UNAUTHORIZED, "sessionExpired"),
            GatewayError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalidCredentials"),
            GatewayError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            GatewayError::UserDisabled => (StatusCode::FORBIDDEN, "userDisabled"),
            GatewayError::RegistrationClosed => (StatusCode::FORBIDDEN, "registrationClosed"),
            GatewayError::UserExists(_) => (StatusCode::CONFLICT, "userExists"),
            GatewayError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payloadTooLarge"),
            GatewayError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "invalidRequest"),
            GatewayError::StorageUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "storageUnavailable")
            }
            GatewayError::ServerBusy => (StatusCode::SERVICE_UNAVAILABLE, "serverBusy"),
            GatewayError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internalError"),
            GatewayError::UpstreamUnavailable(_) | GatewayError::InvalidUpstreamResponse(_) => {
                (StatusCode::BAD_GATEWAY, "upstreamUnavailable")
            }
            GatewayError::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstreamTimeout"),
        }
    }

    /// Whether this refusal means "sign in first" (a browser is sent to the login page).
    pub fn wants_sign_in(&self) -> bool {
        matches!(
            self,
            GatewayError::MissingToken
                | GatewayError::InvalidToken(_)
                | GatewayError::SessionExpired
        )
    }

    /// The response a client sees; `html` when the client asked for a page.
    pub fn into_response(self, html: bool) -> Response<Body> {
        let (status, code) = self.status_and_code();
        let mut response = error_response(status, code, html);
        match self {
            GatewayError::MissingToken => {
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tollgate\""),
                );
            }
            GatewayError::InvalidToken(_) | GatewayError::SessionExpired => {
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tollgate\", error=\"invalid_token\""),
                );
            }
            GatewayError::ServerBusy | GatewayError::StorageUnavailable(_) => {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// Whether the client prefers an HTML page (a browser) to JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// An error response with a fixed code; `code` is always one of tollgate's own constants.
pub fn error_response(status: StatusCode, code: &'static str, html: bool) -> Response<Body> {
    let (content_type, body) = if html {
        let reason = status.canonical_reason().unwrap_or("Error");
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>{status} {reason}</title></head>\n<body><h1>{} {reason}</h1>\n\
             <p>{code}</p></body></html>\n",
            status.as_u16(),
        );
        ("text/html; charset=utf-8", Bytes::from(page))
    } else {
        let json = format!("{{\"success\":false,\"message\":\"{code}\"}}");
        ("application/json", Bytes::from(json))
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A complete in-memory body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_text(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn json_and_html_forms() {
        let json = GatewayError::NotFound.into_response(false);
        assert_eq!(json.status(), StatusCode::NOT_FOUND);
        assert_eq!(json.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            body_text(json).await,
            r#"{"success":false,"message":"notFound"}"#
        );

        let page = GatewayError::UpstreamTimeout.into_response(true);
        assert_eq!(page.status(), StatusCode::GATEWAY_TIMEOUT);
        let text = body_text(page).await;
        assert!(
            text.contains("504") && text.contains("upstreamTimeout"),
            "{text}"
        );
    }

    #[test]
    fn missing_token_challenges() {
        let r = GatewayError::MissingToken.into_response(false);
        assert_eq!(
            r.headers()[http::header::WWW_AUTHENTICATE],
            "Bearer realm=\"tollgate\""
        );
    }

    #[test]
    fn accept_detection() {
        let mut h = HeaderMap::new();
        assert!(!wants_html(&h));
        h.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("text/html,*/*;q=0.8"),
        );
        assert!(wants_html(&h));
    }
}

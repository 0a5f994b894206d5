//! `GET P/me`: who the caller is and the state of their session.

use http::{Request, Response, StatusCode};
use serde_json::json;

use super::{Native, json};
use crate::Body;
use crate::gateway::authenticate::{add_current_token, authenticate, presented_token};
use crate::gateway::error::GatewayError;

/// The caller's user and session, with the current token attached.
pub async fn serve(
    native: &Native<'_>,
    request: Request<Body>,
) -> Result<Response<Body>, GatewayError> {
    let presented = presented_token(request.headers(), None, native.settings);
    let auth = authenticate(native.settings, native.identity, presented).await?;
    let idle = native.settings.sessions.idle_timeout.as_secs();
    let user = &auth.user;
    let session = &auth.session;
    let body = json!({
        "success": true,
        "user": { "id": user.id, "username": user.username, "email": user.email, "roles": user.roles },
        "session": {
            "created_at": session.created_at,
            "last_seen": session.last_seen(),
            "expires_at": session.expires_at(idle),
        },
    });
    let mut response = json(StatusCode::OK, &body);
    add_current_token(
        native.settings,
        native.identity,
        &auth,
        response.headers_mut(),
    )
    .await?;
    Ok(response)
}

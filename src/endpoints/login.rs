//! `POST P/login`: check the password, start a new session, hand out its first token.
//! Unknown user, wrong password and disabled account give the same status, body and
//! (through the dummy hash) the same time.

use std::sync::Arc;

use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE, USER_AGENT};
use http::{HeaderValue, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::body::decode;
use super::{Native, json, pages};
use crate::Body;
use crate::auth::cookies;
use crate::auth::password::{MAX_PASSWORD_BYTES, PasswordError};
use crate::auth::redirect::safe_redirect;
use crate::auth::session::{Session, SessionKey};
use crate::gateway::authenticate::{GN_ACCESS_TOKEN, session_signer};
use crate::gateway::error::{GatewayError, full};
use crate::store::User;

#[derive(Deserialize)]
struct Credentials {
    #[serde(alias = "email", alias = "username")]
    login: String,
    password: String,
    #[serde(default)]
    rd: Option<String>,
}

/// Signs in: JSON gets the token in the body; a browser form gets a cookie and a redirect.
pub async fn serve(
    native: &Native<'_>,
    request: Request<Body>,
) -> Result<Response<Body>, GatewayError> {
    let user_agent = request
        .headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let decoded = decode::<Credentials>(request, native.settings.server.max_body_bytes).await?;
    let credentials = decoded.value;
    match check(native, &credentials).await {
        Ok(user) => {
            respond(
                native,
                &user,
                &user_agent,
                decoded.form,
                credentials.rd.as_deref(),
            )
            .await
        }
        Err(GatewayError::InvalidCredentials) if decoded.form => {
            tracing::info!(client = %native.client_ip, "sign-in failed");
            let mut page = pages::login_page_for(
                native.settings,
                credentials.rd.as_deref(),
                Some("invalidCredentials"),
            );
            *page.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(page)
        }
        Err(e) => {
            if matches!(e, GatewayError::InvalidCredentials) {
                tracing::info!(client = %native.client_ip, "sign-in failed");
            }
            Err(e)
        }
    }
}

/// The user whose password this is, or `InvalidCredentials`.
async fn check(native: &Native<'_>, credentials: &Credentials) -> Result<User, GatewayError> {
    if credentials.password.len() > MAX_PASSWORD_BYTES || credentials.login.len() > 254 {
        // Refused before any hashing: no one gets to make the server hash megabytes.
        return Err(GatewayError::InvalidCredentials);
    }
    let identity = native.identity;
    let user = identity
        .store
        .user_by_login(&credentials.login)
        .await
        .map_err(|e| GatewayError::StorageUnavailable(e.to_string()))?;
    let hasher = &native.settings.login.hasher;
    let verified = hasher
        .verify(
            &credentials.password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await
        .map_err(|e| match e {
            PasswordError::Busy => GatewayError::ServerBusy,
            PasswordError::TooLong => GatewayError::InvalidCredentials,
            PasswordError::Internal(msg) => GatewayError::Internal(msg),
        })?;
    let Some(user) = user.filter(|u| verified.matches && !u.disabled) else {
        return Err(GatewayError::InvalidCredentials);
    };
    // The database just said this account is enabled: a cached "disabled" record from
    // before a re-enable must not end the session about to be created.
    identity.forget_user(user.id);
    if verified.needs_rehash {
        // Bring the stored hash up to the configured cost, off the response path.
        let hasher = hasher.clone();
        let store = identity.store.clone();
        let password = credentials.password.clone();
        let id = user.id;
        tokio::spawn(async move {
            let rehashed = match hasher.hash(&password).await {
                Ok(hash) => store
                    .set_password_hash(id, &hash)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = rehashed {
                tracing::warn!(user_id = id, error = %e, "password rehash failed");
            }
        });
    }
    Ok(user)
}

async fn respond(
    native: &Native<'_>,
    user: &User,
    user_agent: &str,
    form: bool,
    rd: Option<&str>,
) -> Result<Response<Body>, GatewayError> {
    let settings = native.settings;
    let identity = native.identity;
    let now = identity.clock.now_secs();
    let key = SessionKey::generate().map_err(|e| GatewayError::Internal(e.to_string()))?;
    let end = now.saturating_add(settings.sessions.absolute_timeout.as_secs());
    let session = Arc::new(Session::new(
        key,
        user.id,
        now,
        end,
        native.client_ip,
        user_agent,
    ));
    let token = identity
        .issued
        .issue(&session, session_signer(settings, &session, now))
        .await
        .map_err(|e| GatewayError::Internal(e.to_string()))?;
    identity
        .sessions
        .insert(session)
        .await
        .map_err(|e| GatewayError::StorageUnavailable(e.to_string()))?;
    tracing::info!(user_id = user.id, client = %native.client_ip, "signed in");
    let expires_in = token.exp.saturating_sub(now);
    let mut response = if form {
        let target = rd
            .and_then(|rd| safe_redirect(rd, &settings.login.allowed_redirect_hosts))
            .unwrap_or_else(|| "/".to_string());
        let mut response = Response::new(full(bytes::Bytes::new()));
        *response.status_mut() = StatusCode::SEE_OTHER;
        let location =
            HeaderValue::from_str(&target).map_err(|e| GatewayError::Internal(e.to_string()))?;
        response.headers_mut().insert(LOCATION, location);
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    } else {
        let body = json!({
            "success": true,
            "access_token": token.jwt(),
            "token_type": "Bearer",
            "expires_in": expires_in,
        });
        json(StatusCode::OK, &body)
    };
    let headers = response.headers_mut();
    headers.insert(GN_ACCESS_TOKEN.clone(), token.header.clone());
    if form && let Some(cookie) = cookies::access_cookie(&settings.cookies, token.jwt(), expires_in)
    {
        headers.append(SET_COOKIE, cookie);
    }
    Ok(response)
}

//! `POST P/register`: create an account with a username, an email and a password.

use std::collections::BTreeSet;

use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::body::decode;
use super::{Native, json};
use crate::Body;
use crate::auth::account::{valid_email, valid_password, valid_username};
use crate::auth::password::PasswordError;
use crate::gateway::error::GatewayError;
use crate::store::{NewUser, StoreError};

#[derive(Deserialize)]
struct Registration {
    username: String,
    email: String,
    password: String,
}

/// Creates the user: 201, or 400 / 403 / 409 / 503 as SPEC section 3 lists.
pub async fn serve(
    native: &Native<'_>,
    request: Request<Body>,
) -> Result<Response<Body>, GatewayError> {
    let settings = native.settings;
    if !settings.login.registration {
        return Err(GatewayError::RegistrationClosed);
    }
    let form = decode::<Registration>(request, settings.server.max_body_bytes)
        .await?
        .value;
    valid_username(&form.username).map_err(GatewayError::InvalidRequest)?;
    valid_email(&form.email).map_err(GatewayError::InvalidRequest)?;
    valid_password(&form.password, settings.login.min_password_length)
        .map_err(GatewayError::InvalidRequest)?;
    let password_hash = settings
        .login
        .hasher
        .hash(&form.password)
        .await
        .map_err(|e| match e {
            PasswordError::Busy => GatewayError::ServerBusy,
            PasswordError::TooLong => GatewayError::InvalidRequest("password too long"),
            PasswordError::Internal(msg) => GatewayError::Internal(msg),
        })?;
    let user = native
        .identity
        .store
        .create_user(NewUser {
            username: form.username,
            email: form.email,
            password_hash,
            roles: BTreeSet::new(),
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(field) => GatewayError::UserExists(field),
            other => GatewayError::StorageUnavailable(other.to_string()),
        })?;
    tracing::info!(user_id = user.id, "user registered");
    let body = json!({
        "success": true,
        "user": { "id": user.id, "username": user.username, "email": user.email },
    });
    Ok(json(StatusCode::CREATED, &body))
}

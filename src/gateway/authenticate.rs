//! The authenticate and authorise phases, and the sliding re-issue of the access token on
//! the way back: a request passes only if its token verifies AND its session is live AND
//! the session belongs to the token's `sub` AND that user is not disabled.

use std::sync::Arc;

use http::header::{
    ACCESS_CONTROL_EXPOSE_HEADERS, AUTHORIZATION, CACHE_CONTROL, Entry, SET_COOKIE,
};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::error::GatewayError;
use super::route::Policy;
use crate::auth::cookies;
use crate::auth::identity::{Identity, UserView};
use crate::auth::session::{IssuedToken, Session};
use crate::auth::token::{AccessClaims, TokenError, new_token_id};
use crate::auth::verified::VerifiedToken;
use crate::config::Settings;

/// The response header that carries the current access token.
pub static GN_ACCESS_TOKEN: HeaderName = HeaderName::from_static("gn-access-token");

/// A request whose token and session checked out.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The signed-in user.
    pub user: Arc<UserView>,
    /// Their live session.
    pub session: Arc<Session>,
    /// The token the request presented, as verified.
    pub token: Arc<VerifiedToken>,
    /// The token came from the access cookie (a browser), not `Authorization`.
    pub via_cookie: bool,
}

/// The token a request presents: `Authorization: Bearer` first (`beside` is the field's
/// value when it came beside the map), else the access cookie; never the query string.
/// The bytes are as sent: whether they are even text is only checked when the token is not
/// one already verified. `true` marks a token from the cookie.
pub fn presented_token<'a>(
    headers: &'a HeaderMap,
    beside: Option<&'a [u8]>,
    settings: &Settings,
) -> Option<(&'a [u8], bool)> {
    let bearer = beside
        .or_else(|| headers.get(AUTHORIZATION).map(HeaderValue::as_bytes))
        .and_then(|v| {
            let space = v.iter().position(|&b| b == b' ')?;
            let (scheme, token) = (&v[..space], &v[space + 1..]);
            scheme
                .eq_ignore_ascii_case(b"bearer")
                .then(|| token.trim_ascii())
        });
    match bearer {
        Some(token) => Some((token, false)),
        None => cookies::find(headers, &settings.cookies.access_name).map(|t| (t.as_bytes(), true)),
    }
}

/// Checks the `presented` token ([`presented_token`]), its session and user; touches the
/// session on success.
pub async fn authenticate(
    settings: &Settings,
    identity: &Identity,
    presented: Option<(&[u8], bool)>,
) -> Result<Authenticated, GatewayError> {
    let (token, via_cookie) = presented.ok_or(GatewayError::MissingToken)?;
    let read_at = identity.clock.now();
    let now = read_at.as_secs();
    // Seen before: a lookup; new: a full signature check whose success is kept.
    let tokens = &settings.tokens;
    let verified = tokens
        .verified
        .verify(&tokens.keyring, token, &tokens.rules, now)?;
    let idle = settings.sessions.idle_timeout.as_secs();
    let held = verified.held_session();
    let session = identity
        .sessions
        .get_held(
            held.as_ref(),
            &verified.session_id,
            &verified.claims.sid,
            now,
            idle,
        )
        .await
        .map_err(|e| GatewayError::StorageUnavailable(e.to_string()))?
        .ok_or(GatewayError::SessionExpired)?;
    if verified.user_id != session.user_id {
        return Err(GatewayError::InvalidToken(TokenError::BadClaims));
    }
    if !held.is_some_and(|h| Arc::ptr_eq(&h, &session)) {
        verified.hold_session(&session);
    }
    let user = identity
        .user(session.user_id, read_at)
        .await
        .map_err(|e| GatewayError::StorageUnavailable(e.to_string()))?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        // A disabled or deleted account ends every one of its sessions at once.
        let ended = identity.sessions.remove_user(session.user_id).await;
        if let Err(e) = ended {
            tracing::warn!(error = %e, "could not end the sessions of a disabled user");
        }
        return Err(GatewayError::UserDisabled);
    };
    identity
        .sessions
        .touch(&session, now)
        .await
        .map_err(|e| GatewayError::StorageUnavailable(e.to_string()))?;
    Ok(Authenticated {
        user,
        session,
        token: verified,
        via_cookie,
    })
}

/// Applies a route's role requirement to an authenticated user.
pub fn authorise(policy: &Policy, user: &UserView) -> Result<(), GatewayError> {
    match policy {
        Policy::Role(role) if !user.roles.contains(role) => Err(GatewayError::Forbidden),
        _ => Ok(()),
    }
}

/// The job that signs a fresh access token for `session` at `now`, never outliving the
/// session; it owns what it needs, so it can run on a signing thread.
pub fn session_signer(
    settings: &Arc<Settings>,
    session: &Arc<Session>,
    now: u64,
) -> impl FnOnce() -> Result<IssuedToken, TokenError> + Send + 'static {
    let (settings, session) = (settings.clone(), session.clone());
    move || sign_for_session(&settings, &session, now)
}

fn sign_for_session(
    settings: &Settings,
    session: &Session,
    now: u64,
) -> Result<IssuedToken, TokenError> {
    let tokens = &settings.tokens;
    let exp = now
        .saturating_add(tokens.access_ttl.as_secs())
        .min(session.absolute_end);
    let claims = AccessClaims {
        iss: tokens.rules.issuer.clone(),
        sub: session.user_id.to_string(),
        aud: tokens.rules.audience.clone(),
        iat: now,
        nbf: now,
        exp,
        jti: new_token_id()?,
        sid: session.key.as_str().to_string(),
    };
    let jwt = tokens.keyring.sign(&claims)?;
    IssuedToken::new(jwt, now, exp).map_err(|e| TokenError::Signing(e.to_string()))
}

/// The fields the current token puts on a successful authenticated response, other than a
/// cookie: `GN-Access-Token`, its CORS exposure, and `Cache-Control: private` when the
/// response had no cache policy of its own. The direct HTTP/1.1 writer writes them after
/// the map's fields, which saves putting three fields into the map on every request;
/// everything else merges them into the map ([`TokenFields::merge_into`]).
#[derive(Debug, Clone)]
pub struct TokenFields {
    /// The current access token.
    token: HeaderValue,
    /// Whether `Cache-Control: private` is still to be added (a policy the response had
    /// was made private in its map already).
    add_private: bool,
}

/// The value of `Access-Control-Expose-Headers` that exposes the token header.
const EXPOSE_TOKEN: &str = "GN-Access-Token";
/// The cache policy of a response that had none.
const PRIVATE: &str = "private";

impl TokenFields {
    /// Puts the fields into `headers`: the token replaces any token field there, the
    /// exposure joins any there, and the cache policy is set if it is still to be added.
    pub fn merge_into(self, headers: &mut HeaderMap) {
        headers.insert(GN_ACCESS_TOKEN.clone(), self.token);
        headers.append(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_TOKEN),
        );
        if self.add_private {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static(PRIVATE));
        }
    }

    /// Appends the fields to `out` as HTTP/1.1 field lines, for a response whose map holds
    /// no token field of its own (the upstream's was removed) and, when the cache policy is
    /// still to be added, no `Cache-Control`.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"gn-access-token: ");
        out.extend_from_slice(self.token.as_bytes());
        out.extend_from_slice(b"\r\naccess-control-expose-headers: GN-Access-Token\r\n");
        if self.add_private {
            out.extend_from_slice(b"cache-control: private\r\n");
        }
    }
}

/// The current token for a successful authenticated response whose fields are `headers`
/// (re-signed at most once per `reissue_interval`, on a signing thread): the fields it puts
/// on the response ([`TokenFields`]) are returned, the rest is done to `headers` (a cookie
/// for browsers when the token is new, a cache policy the response had made private).
pub async fn current_token(
    settings: &Arc<Settings>,
    identity: &Identity,
    auth: &Authenticated,
    headers: &mut HeaderMap,
) -> Result<TokenFields, GatewayError> {
    let now = identity.clock.now_secs();
    let reissue = settings.tokens.reissue_interval.as_secs();
    let (token, new) = match auth.token.handed_out(now, reissue) {
        Some(again) => (again, false),
        None => {
            let (token, new) = match identity.issued.kept(&auth.session, now, reissue) {
                Some(kept) => (kept, false),
                None => {
                    let sign = session_signer(settings, &auth.session, now);
                    // Boxed: rare next to reusing the kept token, and a large future.
                    Box::pin(identity.issued.renew(&auth.session, now, reissue, sign))
                        .await
                        .map_err(|e| GatewayError::Internal(format!("signing failed: {e}")))?
                }
            };
            auth.token.hand_out(&token);
            (token, new)
        }
    };
    // The usual response has no cache policy of its own; one it has is made private here.
    let add_private = !headers.contains_key(CACHE_CONTROL);
    if !add_private {
        make_private(headers);
    }
    let max_age = token.exp.saturating_sub(now);
    if auth.via_cookie
        && new
        && let Some(cookie) = cookies::access_cookie(&settings.cookies, token.jwt(), max_age)
    {
        headers.append(SET_COOKIE, cookie);
    }
    Ok(TokenFields {
        token: token.header,
        add_private,
    })
}

/// Adds the current token to a successful authenticated response ([`current_token`], its
/// fields merged into `headers`).
pub async fn add_current_token(
    settings: &Arc<Settings>,
    identity: &Identity,
    auth: &Authenticated,
    headers: &mut HeaderMap,
) -> Result<(), GatewayError> {
    current_token(settings, identity, auth, headers)
        .await?
        .merge_into(headers);
    Ok(())
}

/// Marks a response as cacheable by the browser alone.
fn make_private(headers: &mut HeaderMap) {
    // `current_token` only calls this for a response with a policy of its own (one with
    // none gets `private` beside the map); a map without one still gets `private` here.
    let mut policy = match headers.entry(CACHE_CONTROL) {
        Entry::Vacant(none) => {
            none.insert(HeaderValue::from_static(PRIVATE));
            return;
        }
        Entry::Occupied(policy) => policy,
    };
    let existing: Vec<String> = policy
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_string())
        .filter(|d| {
            let name = d
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            !d.is_empty() && name != "public" && name != "s-maxage" && name != "private"
        })
        .collect();
    let mut directives = vec![PRIVATE.to_string()];
    directives.extend(existing);
    if let Ok(value) = HeaderValue::from_str(&directives.join(", ")) {
        policy.insert(value);
    }
}

/// Removes what an upstream must not set: the token header and tollgate's cookies.
pub fn strip_upstream_credentials(settings: &Settings, headers: &mut HeaderMap) {
    headers.remove(&GN_ACCESS_TOKEN);
    let names = [
        settings.cookies.access_name.as_str(),
        settings.cookies.refresh_name.as_str(),
    ];
    if headers.contains_key(SET_COOKIE) {
        let kept: Vec<HeaderValue> = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter(|v| !cookies::sets_one_of(v, &names))
            .cloned()
            .collect();
        headers.remove(SET_COOKIE);
        for value in kept {
            headers.append(SET_COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_rules_know_the_token_header() {
        let name = GN_ACCESS_TOKEN.as_str().as_bytes();
        assert!(crate::proxy::headers::response_rules_touch(name));
    }

    #[test]
    fn the_token_fields_say_the_same_beside_the_map_as_in_it() {
        let fields = TokenFields {
            token: HeaderValue::from_static("a.b.c"),
            add_private: true,
        };
        let mut written = Vec::new();
        fields.write_to(&mut written);
        assert_eq!(
            written,
            b"gn-access-token: a.b.c\r\n\
              access-control-expose-headers: GN-Access-Token\r\n\
              cache-control: private\r\n"
        );
        let mut map = HeaderMap::new();
        map.append(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("X-Request-Id"),
        );
        fields.clone().merge_into(&mut map);
        assert_eq!(map[&GN_ACCESS_TOKEN], "a.b.c");
        let exposed: Vec<_> = map.get_all(ACCESS_CONTROL_EXPOSE_HEADERS).iter().collect();
        assert_eq!(exposed, ["X-Request-Id", "GN-Access-Token"]);
        assert_eq!(map[CACHE_CONTROL], "private");

        // A policy the response had was made private in its map; none is added beside it.
        let made_private = TokenFields {
            add_private: false,
            ..fields
        };
        let mut written = Vec::new();
        made_private.write_to(&mut written);
        assert!(
            !String::from_utf8(written)
                .unwrap()
                .contains("cache-control")
        );
        let mut map = HeaderMap::new();
        map.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=5"),
        );
        made_private.merge_into(&mut map);
        assert_eq!(map[CACHE_CONTROL], "private, max-age=5");
    }

    #[test]
    fn private_replaces_public_and_keeps_the_rest() {
        let mut h = HeaderMap::new();
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60, s-maxage=600"),
        );
        make_private(&mut h);
        assert_eq!(h[CACHE_CONTROL], "private, max-age=60");
        let mut empty = HeaderMap::new();
        make_private(&mut empty);
        assert_eq!(empty[CACHE_CONTROL], "private");
    }
}

//! Signing in (SPEC.md sections 2, 3, 4.1–4.3 and 9): registration, login, `/auth/me`,
//! protected routes, token refusals, sessions, the sliding `GN-Access-Token`, JWKS, the
//! user commands and failing closed when storage fails.
//!
//! Everything that touches the database runs once per backend (`each_backend()`), each with
//! a gateway of its own on that backend's database. Time moves only through a
//! `ManualClock`, never by sleeping.

mod cli;
mod jwks;
mod login;
mod register;
mod routes;
mod sessions;
mod sliding;
mod storage;
mod tokens;
mod upstream_headers;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Response;
use serde_json::{Value, json};
use tollgate::clock::{Clock as _, ManualClock};

use super::harness::{Config, TestGateway, TestUpstream, WAIT};
use super::store::backends::{Backend, each_backend};

/// The password every test user has.
const PASSWORD: &str = "correct horse battery";

/// What an HTTP client sees on every refused sign-in, byte for byte.
const INVALID_CREDENTIALS: &str = r#"{"success":false,"message":"invalidCredentials"}"#;

/// A browser's `Accept` header.
const BROWSER: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

/// A gateway and the clock it reads.
struct Gate {
    gw: TestGateway,
    clock: Arc<ManualClock>,
}

impl Gate {
    /// Starts a gateway on `config` with a fresh `ManualClock`.
    async fn start(config: &Config) -> Gate {
        let clock = Arc::new(ManualClock::new());
        let gw = TestGateway::start_with_clock(&config.build(), clock.clone()).await;
        Gate { gw, clock }
    }

    fn url(&self, path: &str) -> String {
        self.gw.url(path)
    }

    /// Moves the gateway's clock forward.
    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// The gateway's time in whole seconds.
    fn now(&self) -> u64 {
        self.clock.now_secs()
    }
}

/// A config whose `[database]` is `backend`'s, with extra `[database]` lines.
fn on_db(backend: &Backend, extra: &str) -> Config {
    Config::new().section(&format!("[database]\nurl = {:?}\n{extra}", backend.url))
}

/// `on_db` with an authenticated `/app` route and a `role:admin` `/admin` route to `up`.
fn protected(backend: &Backend, up: &TestUpstream) -> Config {
    on_db(backend, "")
        .route_with("/app", &up.url(), "policy = \"authenticated\"")
        .route_with("/admin", &up.url(), "policy = \"role:admin\"")
}

/// A client that neither follows redirects nor keeps cookies.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .timeout(WAIT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `POST /auth/register` with a JSON body.
async fn register_as(gate: &Gate, body: &Value) -> Response {
    http()
        .post(gate.url("/auth/register"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Registers `username` (email `username@example.test`, [`PASSWORD`]); returns its id.
async fn register(gate: &Gate, username: &str) -> u64 {
    let body = json!({
        "username": username,
        "email": format!("{username}@example.test"),
        "password": PASSWORD,
    });
    let resp = register_as(gate, &body).await;
    assert_eq!(resp.status(), 201, "register {username}");
    let body: Value = resp.json().await.unwrap();
    body["user"]["id"].as_u64().expect("user.id is a number")
}

/// `POST /auth/login` with a JSON body.
async fn login_as(gate: &Gate, body: &Value) -> Response {
    http()
        .post(gate.url("/auth/login"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Logs `login` in with `password`; returns the access token.
async fn login_with(gate: &Gate, login: &str, password: &str) -> String {
    let resp = login_as(gate, &json!({ "username": login, "password": password })).await;
    assert_eq!(resp.status(), 200, "login {login}");
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Logs `login` in with [`PASSWORD`]; returns the access token.
async fn login(gate: &Gate, login: &str) -> String {
    login_with(gate, login, PASSWORD).await
}

/// `GET path` with `Authorization: Bearer token`.
async fn get_bearer(gate: &Gate, path: &str, token: &str) -> Response {
    http()
        .get(gate.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Asserts an error response `{"success":false,"message":code}` with `status`; returns
/// its `WWW-Authenticate` (empty when absent).
async fn expect_error(resp: Response, status: u16, code: &str, what: &str) -> String {
    let got = resp.status().as_u16();
    let challenge = header(&resp, "www-authenticate").unwrap_or_default();
    let body = resp.text().await.unwrap();
    assert_eq!(
        (got, body.as_str()),
        (
            status,
            format!(r#"{{"success":false,"message":"{code}"}}"#).as_str()
        ),
        "{what}"
    );
    challenge
}

/// Asserts a 200 from the upstream and returns the `GN-Access-Token` it carries.
fn expect_passed(resp: &Response, what: &str) -> String {
    assert_eq!(resp.status(), 200, "{what}");
    header(resp, "gn-access-token").unwrap_or_else(|| panic!("{what}: no GN-Access-Token"))
}

/// The first value of header `name`, as text.
fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Every value of header `name`, as text.
fn header_all(resp: &Response, name: &str) -> Vec<String> {
    resp.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Part `index` (0 header, 1 payload) of a compact JWT, decoded as JSON.
fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a compact JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A token's claims.
fn claims(token: &str) -> Value {
    jwt_part(token, 1)
}

/// A token's `exp`.
fn exp_of(token: &str) -> u64 {
    claims(token)["exp"].as_u64().expect("numeric exp")
}

/// base64url without padding.
fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Posts `fields` as `application/x-www-form-urlencoded`, as the sign-in page does.
async fn post_form(gate: &Gate, fields: &[(&str, &str)]) -> reqwest::Response {
    http()
        .post(gate.url("/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", BROWSER)
        .body(serde_urlencoded::to_string(fields).unwrap())
        .send()
        .await
        .unwrap()
}

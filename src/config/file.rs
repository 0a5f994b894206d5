//! The configuration file exactly as written: serde types with `deny_unknown_fields` and the
//! documented defaults. Nothing outside `config` reads these; `settings` validates them.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

use super::duration::serde_duration;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Path prefix of tollgate's own endpoints; never forwarded upstream.
    #[serde(default = "default_auth_prefix")]
    pub auth_prefix: Spanned<String>,
    /// `[server]`: the public listener.
    #[serde(default)]
    pub server: ServerSection,
    /// `[admin]`: metrics and health listener.
    #[serde(default)]
    pub admin: AdminSection,
    /// `[log]`: log format and level.
    #[serde(default)]
    pub log: LogSection,
    /// `[identity_headers]`: header names upstreams receive.
    #[serde(default)]
    pub identity_headers: IdentityHeadersSection,
    /// `[[routes]]`: at least one.
    #[serde(default)]
    pub routes: Vec<RouteSection>,
}

fn default_auth_prefix() -> Spanned<String> {
    Spanned::new(0..0, "/auth".to_string())
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address of the public listener.
    pub listen: SocketAddr,
    /// CIDRs (or single addresses) whose `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long in-flight requests may run after SIGTERM.
    #[serde(with = "serde_duration")]
    pub shutdown_timeout: Duration,
    /// How long a client may take to send a request's headers.
    #[serde(with = "serde_duration")]
    pub header_read_timeout: Duration,
    /// How long a TLS handshake may take.
    #[serde(with = "serde_duration")]
    pub tls_handshake_timeout: Duration,
    /// Largest request head (request line plus headers) accepted.
    pub max_header_bytes: Spanned<usize>,
    /// Open client connections allowed at once.
    pub max_connections: Spanned<usize>,
    /// `[server.tls]`: serve HTTPS when present.
    pub tls: Option<TlsSection>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trusted_proxies: Vec::new(),
            shutdown_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            max_header_bytes: Spanned::new(0..0, 32 * 1024),
            max_connections: Spanned::new(0..0, 10_000),
            tls: None,
        }
    }
}

/// `[server.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain, leaf first.
    pub cert: Spanned<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Spanned<PathBuf>,
}

/// `[admin]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub listen: SocketAddr,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 9900)),
        }
    }
}

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `tollgate=debug,info`.
    pub level: Spanned<String>,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            level: Spanned::new(0..0, "info".to_string()),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[identity_headers]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityHeadersSection {
    /// Carries the user id.
    pub user_id: Spanned<String>,
    /// Carries the username.
    pub username: Spanned<String>,
    /// Carries the comma-separated roles.
    pub roles: Spanned<String>,
}

impl Default for IdentityHeadersSection {
    fn default() -> Self {
        let named = |n: &str| Spanned::new(0..0, n.to_string());
        IdentityHeadersSection {
            user_id: named("X-User-Id"),
            username: named("X-User-Name"),
            roles: named("X-User-Roles"),
        }
    }
}

/// One `[[routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Label in metrics and logs; defaults to host and path.
    pub name: Option<String>,
    /// Host to match (case-insensitive, port ignored); any host when absent.
    pub host: Option<Spanned<String>>,
    /// Path prefix, matched on segment boundaries.
    pub path: Spanned<String>,
    /// `http://host:port` of the app behind this route.
    pub upstream: Spanned<String>,
    /// `public`, `authenticated` or `role:<name>`.
    #[serde(default = "default_policy")]
    pub policy: Spanned<String>,
    /// Time allowed for the upstream's response headers.
    #[serde(default = "default_route_timeout", with = "serde_duration")]
    pub timeout: Duration,
}

fn default_policy() -> Spanned<String> {
    Spanned::new(0..0, "authenticated".to_string())
}

fn default_route_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Reads a list of CIDRs, taking a bare address as a single-host network.
fn networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    let entries = Vec::<String>::deserialize(d)?;
    entries
        .iter()
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("`{entry}` is not a CIDR or IP address"))
                })
        })
        .collect()
}

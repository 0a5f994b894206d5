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
    /// `[database]`: where users live.
    #[serde(default)]
    pub database: DatabaseSection,
    /// `[sessions]`: session store and timeouts.
    #[serde(default)]
    pub sessions: SessionsSection,
    /// `[tokens]`: access-token keys and lifetimes (required).
    pub tokens: Option<Spanned<TokensSection>>,
    /// `[cookies]`: browser cookie attributes.
    #[serde(default)]
    pub cookies: CookiesSection,
    /// `[login]`: registration and password rules.
    #[serde(default)]
    pub login: LoginSection,
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
    /// Largest request body tollgate's own endpoints read.
    pub max_body_bytes: usize,
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
            max_body_bytes: 64 * 1024,
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

/// `[database]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    /// `sqlite://PATH` or `mysql://user@host:port/db`.
    pub url: Spanned<String>,
    /// File holding the database password (else credential `db-password`, else
    /// `$TOLLGATE_DB_PASSWORD`, else the URL's own).
    pub password_file: Option<Spanned<PathBuf>>,
    /// Longest any database call may take before the request gets 503.
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            url: Spanned::new(0..0, "sqlite://var/tollgate.db".to_string()),
            password_file: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// `[sessions]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsSection {
    /// `memory`.
    pub store: Spanned<String>,
    /// A session unused this long ends.
    #[serde(with = "serde_duration")]
    pub idle_timeout: Duration,
    /// A session ends this long after login whatever happens.
    #[serde(with = "serde_duration")]
    pub absolute_timeout: Duration,
    /// Most sessions the memory store holds.
    pub max_sessions: Spanned<usize>,
}

impl Default for SessionsSection {
    fn default() -> Self {
        SessionsSection {
            store: Spanned::new(0..0, "memory".to_string()),
            idle_timeout: Duration::from_secs(300),
            absolute_timeout: Duration::from_secs(86_400),
            max_sessions: Spanned::new(0..0, 1_000_000),
        }
    }
}

/// `[tokens]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensSection {
    /// `iss` of every token.
    pub issuer: Spanned<String>,
    /// `aud` of gateway tokens.
    #[serde(default = "default_audience")]
    pub audience: Spanned<String>,
    /// `RS256`, `ES256` or `EdDSA`.
    #[serde(default = "default_algorithm")]
    pub algorithm: Spanned<String>,
    /// PKCS#8 PEM private key (else credential `signing-key`, else `$TOLLGATE_SIGNING_KEY`).
    pub signing_key_file: Option<Spanned<PathBuf>>,
    /// Explicit key id; default the RFC 7638 thumbprint.
    pub kid: Option<String>,
    /// Older public keys that still verify (rotation).
    #[serde(default)]
    pub verify_key_files: Vec<Spanned<PathBuf>>,
    /// Lifetime of an access token.
    #[serde(default = "default_access_ttl", with = "serde_duration")]
    pub access_ttl: Duration,
    /// A session's token is re-signed at most this often.
    #[serde(default = "default_reissue", with = "serde_duration")]
    pub reissue_interval: Duration,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "serde_duration")]
    pub leeway: Duration,
}

fn default_audience() -> Spanned<String> {
    Spanned::new(0..0, "tollgate".to_string())
}

fn default_algorithm() -> Spanned<String> {
    Spanned::new(0..0, "RS256".to_string())
}

fn default_access_ttl() -> Duration {
    Duration::from_secs(3600)
}

fn default_reissue() -> Duration {
    Duration::from_secs(60)
}

fn default_leeway() -> Duration {
    Duration::from_secs(10)
}

/// `[cookies]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookiesSection {
    /// `false` only for plain-http local use.
    pub secure: bool,
    /// Name of the access-token cookie.
    pub access_name: Option<Spanned<String>>,
    /// Name of the refresh-token cookie.
    pub refresh_name: Option<Spanned<String>>,
}

impl Default for CookiesSection {
    fn default() -> Self {
        CookiesSection {
            secure: true,
            access_name: None,
            refresh_name: None,
        }
    }
}

/// `[login]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginSection {
    /// Whether `POST P/register` is open.
    pub registration: bool,
    /// Shortest password accepted, in characters.
    pub min_password_length: Spanned<usize>,
    /// Password hashes computed at once; default the CPU count.
    pub max_concurrent_hashes: Option<Spanned<usize>>,
    /// CPUs the hashing threads may run on; default every CPU tollgate may run on.
    pub hash_cpus: Option<Spanned<Vec<usize>>>,
    /// How long a login waits for a hashing slot before 503 `serverBusy`.
    #[serde(with = "serde_duration")]
    pub hash_wait: Duration,
    /// Hosts `rd` may point at besides relative paths.
    pub allowed_redirect_hosts: Vec<String>,
    /// `[login.argon2]`.
    pub argon2: Argon2Section,
}

impl Default for LoginSection {
    fn default() -> Self {
        LoginSection {
            registration: true,
            min_password_length: Spanned::new(0..0, 8),
            max_concurrent_hashes: None,
            hash_cpus: None,
            hash_wait: Duration::from_secs(2),
            allowed_redirect_hosts: Vec::new(),
            argon2: Argon2Section::default(),
        }
    }
}

/// `[login.argon2]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Section {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Section {
    fn default() -> Self {
        Argon2Section {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
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

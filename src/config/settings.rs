//! Validated settings: what the gateway runs on. Built from the file in one go (TLS files
//! read, upstream URLs and routes compiled), so a reload either yields a complete `Settings`
//! or an error and the running one stays.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use toml::Spanned;

use super::error::ConfigError;
use super::file::{
    CookiesSection, FileConfig, LogFormat, LoginSection, RouteSection, TokensSection,
};
use crate::auth::CpuList;
use crate::auth::keys::{Algorithm, Keyring};
use crate::auth::password::{Argon2Cost, PasswordHasher};
use crate::auth::token::TokenRules;
use crate::auth::verified::VerifiedTokens;
use crate::gateway::path::canonicalise;
use crate::gateway::route::{Policy, Route, RouteTable, Upstream};
use crate::server::tls::{TlsFile, load_server_config};
use crate::store::DatabaseTarget;

/// The smallest header buffer the HTTP/1 parser accepts.
const MIN_HEADER_BYTES: usize = 8192;

/// Everything the running gateway reads, published as one snapshot.
#[derive(Debug)]
pub struct Settings {
    /// The file these settings came from.
    pub source: PathBuf,
    /// Prefix of tollgate's own endpoints (no trailing slash).
    pub auth_prefix: String,
    /// The public listener.
    pub server: ServerSettings,
    /// The admin listener.
    pub admin_listen: SocketAddr,
    /// Log output.
    pub log: LogSettings,
    /// Where users live (changes need a restart).
    pub database: DatabaseSettings,
    /// Session store and timeouts.
    pub sessions: SessionSettings,
    /// Access-token keys and lifetimes.
    pub tokens: TokenSettings,
    /// Browser cookies.
    pub cookies: CookieSettings,
    /// Registration and password rules.
    pub login: LoginSettings,
    /// Header names upstreams receive, lower-case.
    pub identity_headers: IdentityHeaders,
    /// The compiled routes.
    pub routes: RouteTable,
}

/// `[server]`, validated.
#[derive(Debug)]
pub struct ServerSettings {
    /// Address of the public listener (changes need a restart).
    pub listen: SocketAddr,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Drain deadline after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Deadline for a request's headers.
    pub header_read_timeout: Duration,
    /// Deadline for a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Largest request head accepted.
    pub max_header_bytes: usize,
    /// Open client connections allowed.
    pub max_connections: usize,
    /// Largest body a native endpoint reads.
    pub max_body_bytes: usize,
    /// HTTPS when set.
    pub tls: Option<TlsSettings>,
}

/// A loaded certificate and key.
#[derive(Clone)]
pub struct TlsSettings {
    /// The acceptor built from them.
    pub acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSettings { .. }")
    }
}

/// `[database]`, validated.
#[derive(Debug)]
pub struct DatabaseSettings {
    /// The backend and its address.
    pub target: DatabaseTarget,
    /// Longest any call may take.
    pub timeout: Duration,
}

/// `[sessions]`, validated.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login.
    pub absolute_timeout: Duration,
    /// Most sessions held in memory (changes need a restart).
    pub max_sessions: usize,
}

/// `[tokens]`, validated: keys loaded.
#[derive(Debug)]
pub struct TokenSettings {
    /// Signing key and every verifying key.
    pub keyring: Keyring,
    /// Issuer, audience and leeway checked on every token.
    pub rules: TokenRules,
    /// Lifetime of an access token.
    pub access_ttl: Duration,
    /// A session's token is re-signed at most this often.
    pub reissue_interval: Duration,
    /// Tokens this keyring already verified.
    pub verified: VerifiedTokens,
}

/// `[cookies]`, validated.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// Cookies carry `Secure` (and may use the `__Host-` prefix).
    pub secure: bool,
    /// Access-token cookie name.
    pub access_name: String,
    /// Refresh-token cookie name.
    pub refresh_name: String,
}

/// `[login]`, validated.
#[derive(Debug)]
pub struct LoginSettings {
    /// Whether self-registration is open.
    pub registration: bool,
    /// Shortest password, in characters.
    pub min_password_length: usize,
    /// argon2id hashing behind its slots.
    pub hasher: PasswordHasher,
    /// Hosts `rd` may name, lower-case.
    pub allowed_redirect_hosts: Vec<String>,
}

/// `[log]`, validated.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Text or JSON lines.
    pub format: LogFormat,
    /// A tracing filter directive.
    pub level: String,
}

/// The identity header names, lower-case.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// Carries the user id.
    pub user_id: HeaderName,
    /// Carries the username.
    pub username: HeaderName,
    /// Carries the roles.
    pub roles: HeaderName,
}

impl IdentityHeaders {
    /// All configured names, for stripping client copies.
    pub fn all(&self) -> [&HeaderName; 3] {
        [&self.user_id, &self.username, &self.roles]
    }
}

impl Settings {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read: {e}")))?;
        Settings::from_toml(path, &text)
    }

    /// Validates `text` as if it had been read from `path`.
    pub fn from_toml(path: &Path, text: &str) -> Result<Settings, ConfigError> {
        let file = parse(path, text)?;
        Validator { path, text }.settings(file)
    }
}

fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|e| ConfigError::at(path, text, e.span().map(|s| s.start), "", e.message()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let mut error = ConfigError::at(
            path,
            text,
            inner.span().map(|s| s.start),
            key,
            inner.message().trim_end(),
        );
        if error
            .key
            .as_deref()
            .is_some_and(|k| k.is_empty() || k == ".")
        {
            error.key = None;
        }
        error
    })
}

/// Turns file values into settings, locating each error in the text.
struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Validator<'_> {
    fn error<T>(&self, spanned: &Spanned<T>, key: &str, message: impl Into<String>) -> ConfigError {
        let offset = Some(spanned.span().start).filter(|_| !spanned.span().is_empty());
        ConfigError::at(self.path, self.text, offset, key, message)
    }

    fn settings(&self, file: FileConfig) -> Result<Settings, ConfigError> {
        let server = &file.server;
        if *server.max_header_bytes.get_ref() < MIN_HEADER_BYTES {
            let msg = format!("must be at least {MIN_HEADER_BYTES}");
            return Err(self.error(&server.max_header_bytes, "server.max_header_bytes", msg));
        }
        if *server.max_connections.get_ref() == 0 {
            let msg = "must be at least 1";
            return Err(self.error(&server.max_connections, "server.max_connections", msg));
        }
        let tls = match &server.tls {
            None => None,
            Some(section) => {
                let cert = self.relative(section.cert.get_ref());
                let key = self.relative(section.key.get_ref());
                let config =
                    load_server_config(&cert, &key).map_err(|(which, msg)| match which {
                        TlsFile::Cert => self.error(&section.cert, "server.tls.cert", msg),
                        TlsFile::Key => self.error(&section.key, "server.tls.key", msg),
                    })?;
                Some(TlsSettings {
                    acceptor: tokio_rustls::TlsAcceptor::from(config),
                })
            }
        };
        let level = file.log.level.get_ref().clone();
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
            return Err(self.error(&file.log.level, "log.level", e.to_string()));
        }
        let routes = file
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| self.route(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        if routes.is_empty() {
            return Err(ConfigError::file(
                self.path,
                "at least one [[routes]] entry is required",
            ));
        }
        let Some(tokens) = &file.tokens else {
            return Err(ConfigError::file(
                self.path,
                "the [tokens] section is required",
            ));
        };
        let sessions = &file.sessions;
        if sessions.store.get_ref() != "memory" {
            let msg = format!(
                "`{}` is not a session store this build has; use \"memory\"",
                sessions.store.get_ref()
            );
            return Err(self.error(&sessions.store, "sessions.store", msg));
        }
        if *sessions.max_sessions.get_ref() == 0 {
            return Err(self.error(
                &sessions.max_sessions,
                "sessions.max_sessions",
                "must be at least 1",
            ));
        }
        Ok(Settings {
            source: self.path.to_path_buf(),
            database: DatabaseSettings {
                target: self.database(&file.database)?,
                timeout: file.database.timeout,
            },
            sessions: SessionSettings {
                idle_timeout: sessions.idle_timeout,
                absolute_timeout: sessions.absolute_timeout,
                max_sessions: *sessions.max_sessions.get_ref(),
            },
            tokens: self.tokens(tokens)?,
            cookies: self.cookies(&file.cookies)?,
            login: self.login(&file.login)?,
            auth_prefix: self.auth_prefix(&file.auth_prefix)?,
            server: ServerSettings {
                listen: server.listen,
                trusted_proxies: server.trusted_proxies.clone(),
                shutdown_timeout: server.shutdown_timeout,
                header_read_timeout: server.header_read_timeout,
                tls_handshake_timeout: server.tls_handshake_timeout,
                max_header_bytes: *server.max_header_bytes.get_ref(),
                max_connections: *server.max_connections.get_ref(),
                max_body_bytes: server.max_body_bytes,
                tls,
            },
            admin_listen: file.admin.listen,
            log: LogSettings {
                format: file.log.format,
                level,
            },
            identity_headers: IdentityHeaders {
                user_id: self.header(&file.identity_headers.user_id, "identity_headers.user_id")?,
                username: self
                    .header(&file.identity_headers.username, "identity_headers.username")?,
                roles: self.header(&file.identity_headers.roles, "identity_headers.roles")?,
            },
            routes: RouteTable::new(routes),
        })
    }

    fn database(
        &self,
        section: &super::file::DatabaseSection,
    ) -> Result<DatabaseTarget, ConfigError> {
        let url = section.url.get_ref();
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(self.error(
                    &section.url,
                    "database.url",
                    "sqlite:// needs a file path",
                ));
            }
            return Ok(DatabaseTarget::Sqlite(self.relative(Path::new(path))));
        }
        if url.starts_with("mysql://") {
            let password = self
                .secret(
                    section.password_file.as_ref(),
                    "database.password_file",
                    "db-password",
                    "TOLLGATE_DB_PASSWORD",
                )?
                .map(|text| text.trim_end_matches(['\r', '\n']).to_string());
            return Ok(DatabaseTarget::Mysql {
                url: url.clone(),
                password,
            });
        }
        let msg = format!("`{url}` is not a sqlite:// or mysql:// URL");
        Err(self.error(&section.url, "database.url", msg))
    }

    /// A secret from its `*_file` key, else the systemd credential `credential`, else the
    /// environment variable `env`; `None` when none is set.
    fn secret(
        &self,
        file: Option<&Spanned<PathBuf>>,
        key: &str,
        credential: &str,
        env: &str,
    ) -> Result<Option<String>, ConfigError> {
        if let Some(file) = file {
            let path = self.relative(file.get_ref());
            return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                self.error(file, key, format!("cannot read {}: {e}", path.display()))
            });
        }
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let path = Path::new(&dir).join(credential);
            if path.exists() {
                return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                    ConfigError::at(
                        self.path,
                        self.text,
                        None,
                        key,
                        format!("cannot read credential {}: {e}", path.display()),
                    )
                });
            }
        }
        Ok(std::env::var(env).ok())
    }

    fn tokens(&self, spanned: &Spanned<TokensSection>) -> Result<TokenSettings, ConfigError> {
        let section = spanned.get_ref();
        let algorithm = Algorithm::parse(section.algorithm.get_ref()).ok_or_else(|| {
            let msg = format!(
                "`{}` is not RS256, ES256 or EdDSA",
                section.algorithm.get_ref()
            );
            self.error(&section.algorithm, "tokens.algorithm", msg)
        })?;
        let signing_pem = self
            .secret(section.signing_key_file.as_ref(), "tokens.signing_key_file", "signing-key", "TOLLGATE_SIGNING_KEY")?
            .ok_or_else(|| {
                self.error(
                    spanned,
                    "tokens.signing_key_file",
                    "no signing key: set signing_key_file, load the systemd credential `signing-key`, or set TOLLGATE_SIGNING_KEY (create one with `tollgate keygen`)",
                )
            })?;
        let mut verify_pems = Vec::with_capacity(section.verify_key_files.len());
        for (i, file) in section.verify_key_files.iter().enumerate() {
            let path = self.relative(file.get_ref());
            let pem = std::fs::read_to_string(&path).map_err(|e| {
                self.error(
                    file,
                    &format!("tokens.verify_key_files[{i}]"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            verify_pems.push((path.display().to_string(), pem));
        }
        let key_span = section
            .signing_key_file
            .as_ref()
            .map(|f| f.span())
            .unwrap_or(spanned.span());
        let keyring = Keyring::new(algorithm, &signing_pem, section.kid.clone(), &verify_pems)
            .map_err(|e| {
                ConfigError::at(
                    self.path,
                    self.text,
                    Some(key_span.start),
                    "tokens.signing_key_file",
                    e.to_string(),
                )
            })?;
        if section.reissue_interval >= section.access_ttl {
            return Err(self.error(
                spanned,
                "tokens.reissue_interval",
                "must be shorter than access_ttl",
            ));
        }
        for (value, key) in [
            (&section.issuer, "tokens.issuer"),
            (&section.audience, "tokens.audience"),
        ] {
            if value.get_ref().trim().is_empty() {
                return Err(self.error(value, key, "must not be empty"));
            }
        }
        Ok(TokenSettings {
            keyring,
            rules: TokenRules {
                issuer: section.issuer.get_ref().clone(),
                audience: section.audience.get_ref().clone(),
                leeway: section.leeway,
            },
            access_ttl: section.access_ttl,
            reissue_interval: section.reissue_interval,
            verified: VerifiedTokens::new(),
        })
    }

    fn cookies(&self, section: &CookiesSection) -> Result<CookieSettings, ConfigError> {
        let prefix = if section.secure { "__Host-" } else { "" };
        let name = |value: Option<&Spanned<String>>,
                    key: &str,
                    default: &str|
         -> Result<String, ConfigError> {
            let Some(value) = value else {
                return Ok(format!("{prefix}{default}"));
            };
            let text = value.get_ref();
            let token = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !token {
                return Err(self.error(value, key, format!("`{text}` is not a cookie name")));
            }
            if !section.secure && (text.starts_with("__Host-") || text.starts_with("__Secure-")) {
                return Err(self.error(
                    value,
                    key,
                    "the __Host- and __Secure- prefixes need secure = true",
                ));
            }
            Ok(text.clone())
        };
        Ok(CookieSettings {
            secure: section.secure,
            access_name: name(
                section.access_name.as_ref(),
                "cookies.access_name",
                "tollgate-access",
            )?,
            refresh_name: name(
                section.refresh_name.as_ref(),
                "cookies.refresh_name",
                "tollgate-refresh",
            )?,
        })
    }

    fn login(&self, section: &LoginSection) -> Result<LoginSettings, ConfigError> {
        let min = *section.min_password_length.get_ref();
        if !(1..=1024).contains(&min) {
            return Err(self.error(
                &section.min_password_length,
                "login.min_password_length",
                "must be between 1 and 1024",
            ));
        }
        let slots = match &section.max_concurrent_hashes {
            Some(n) if *n.get_ref() == 0 => {
                return Err(self.error(n, "login.max_concurrent_hashes", "must be at least 1"));
            }
            Some(n) => *n.get_ref(),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let cost = Argon2Cost {
            memory_kib: section.argon2.memory_kib,
            iterations: section.argon2.iterations,
            parallelism: section.argon2.parallelism,
        };
        let cpus = match &section.hash_cpus {
            Some(list) => Some(
                CpuList::allowed(list.get_ref())
                    .map_err(|msg| self.error(list, "login.hash_cpus", msg))?,
            ),
            None => None,
        };
        let hasher = PasswordHasher::new(cost, slots, cpus, section.hash_wait)
            .map_err(|msg| ConfigError::at(self.path, self.text, None, "login.argon2", msg))?;
        Ok(LoginSettings {
            registration: section.registration,
            min_password_length: min,
            hasher,
            allowed_redirect_hosts: section
                .allowed_redirect_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        })
    }

    /// Resolves a path from the file relative to the file's own folder.
    fn relative(&self, path: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    fn auth_prefix(&self, prefix: &Spanned<String>) -> Result<String, ConfigError> {
        let canonical = self.prefix(prefix, "auth_prefix")?;
        if canonical == "/" {
            return Err(self.error(prefix, "auth_prefix", "must not be `/`"));
        }
        Ok(canonical)
    }

    /// A canonical path prefix without trailing slash.
    fn prefix(&self, value: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
        let raw = value.get_ref();
        let canonical =
            canonicalise(raw).map_err(|e| self.error(value, key, format!("`{raw}`: {e}")))?;
        let trimmed = canonical.trim_end_matches('/');
        if trimmed != raw.trim_end_matches('/') {
            let msg = format!("`{raw}` is not canonical; write `{canonical}`");
            return Err(self.error(value, key, msg));
        }
        Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_string())
    }

    fn header(&self, name: &Spanned<String>, key: &str) -> Result<HeaderName, ConfigError> {
        HeaderName::from_bytes(name.get_ref().as_bytes()).map_err(|_| {
            self.error(
                name,
                key,
                format!("`{}` is not a header name", name.get_ref()),
            )
        })
    }

    fn route(&self, index: usize, route: &RouteSection) -> Result<Route, ConfigError> {
        let key = |field: &str| format!("routes[{index}].{field}");
        let prefix = self.prefix(&route.path, &key("path"))?;
        let upstream = Upstream::parse(route.upstream.get_ref())
            .map_err(|msg| self.error(&route.upstream, &key("upstream"), msg))?;
        let policy = Policy::parse(route.policy.get_ref())
            .map_err(|msg| self.error(&route.policy, &key("policy"), msg))?;
        let host = match &route.host {
            None => None,
            Some(h) if valid_host(h.get_ref()) => {
                Some(h.get_ref().trim_end_matches('.').to_ascii_lowercase())
            }
            Some(h) => {
                let msg = format!(
                    "`{}` is not a host name (no port, scheme or path)",
                    h.get_ref()
                );
                return Err(self.error(h, &key("host"), msg));
            }
        };
        let name = route
            .name
            .clone()
            .unwrap_or_else(|| format!("{}{}", host.as_deref().unwrap_or(""), prefix));
        Ok(Route {
            name: Arc::new(name),
            host,
            prefix,
            upstream,
            policy,
            timeout: route.timeout,
        })
    }
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
        })
        && crate::gateway::route::host_without_port(host) == host.trim_end_matches('.')
}

/// The shared handle the gateway reads settings through.
pub type SharedSettings = Arc<arc_swap::ArcSwap<Settings>>;

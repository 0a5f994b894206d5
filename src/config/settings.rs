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
use super::file::{FileConfig, LogFormat, RouteSection};
use crate::gateway::path::canonicalise;
use crate::gateway::route::{Policy, Route, RouteTable, Upstream};
use crate::server::tls::{TlsFile, load_server_config};

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
    pub fn all(&self) -> [HeaderName; 3] {
        [
            self.user_id.clone(),
            self.username.clone(),
            self.roles.clone(),
        ]
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
        Ok(Settings {
            source: self.path.to_path_buf(),
            auth_prefix: self.auth_prefix(&file.auth_prefix)?,
            server: ServerSettings {
                listen: server.listen,
                trusted_proxies: server.trusted_proxies.clone(),
                shutdown_timeout: server.shutdown_timeout,
                header_read_timeout: server.header_read_timeout,
                tls_handshake_timeout: server.tls_handshake_timeout,
                max_header_bytes: *server.max_header_bytes.get_ref(),
                max_connections: *server.max_connections.get_ref(),
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
        if policy != Policy::Public {
            let msg = format!(
                "`{}` needs authentication, which this build cannot do yet; use \"public\"",
                route.policy.get_ref()
            );
            return Err(self.error(&route.policy, &key("policy"), msg));
        }
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

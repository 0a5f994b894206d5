//! Routes compiled from the configuration, and the lookup that picks one per request:
//! routes naming the request's host win over host-less ones, then the longest path prefix
//! on a segment boundary.

use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};

use super::path::under_prefix;

/// What a route demands of a request before it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Anyone may pass.
    Public,
    /// A signed-in user may pass.
    Authenticated,
    /// A signed-in user holding this role may pass.
    Role(String),
}

impl Policy {
    /// Parses `public`, `authenticated` or `role:<name>`.
    pub fn parse(text: &str) -> Result<Policy, String> {
        match text {
            "public" => Ok(Policy::Public),
            "authenticated" => Ok(Policy::Authenticated),
            _ => match text.strip_prefix("role:") {
                Some(role) if is_role_name(role) => Ok(Policy::Role(role.to_string())),
                Some(_) => Err(format!(
                    "`{text}` has an invalid role name (letters, digits, `_`, `-`, `.`)"
                )),
                None => Err(format!(
                    "`{text}` is not a policy (public, authenticated or role:<name>)"
                )),
            },
        }
    }
}

fn is_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Where a route's requests go: scheme and authority; the request path is appended as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Always `http` for now.
    pub scheme: Scheme,
    /// `host:port` of the upstream.
    pub authority: Authority,
}

impl Upstream {
    /// Parses `http://host[:port]` (an optional trailing `/` is allowed, nothing else).
    pub fn parse(text: &str) -> Result<Upstream, String> {
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| format!("`{text}` needs a scheme, e.g. http://127.0.0.1:3000"))?;
        if scheme != Scheme::HTTP {
            return Err(format!("`{text}`: only http:// upstreams are supported"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("`{text}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("`{text}` must not carry credentials"));
        }
        let path_ok = matches!(uri.path(), "" | "/");
        if !path_ok || uri.query().is_some() {
            return Err(format!(
                "`{text}` must be scheme://host[:port] without a path or query"
            ));
        }
        Ok(Upstream { scheme, authority })
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// One compiled `[[routes]]` entry.
#[derive(Debug, Clone)]
pub struct Route {
    /// Label in metrics and logs.
    pub name: Arc<String>,
    /// Lower-case host without port; any host when `None`.
    pub host: Option<String>,
    /// Canonical path prefix without trailing slash (`/` for everything).
    pub prefix: String,
    /// Where matching requests go.
    pub upstream: Upstream,
    /// What a request must satisfy.
    pub policy: Policy,
    /// Time allowed for the upstream's response headers.
    pub timeout: Duration,
}

/// All routes, ordered for lookup.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Routes with a host, longest prefix first.
    with_host: Vec<Arc<Route>>,
    /// Routes for any host, longest prefix first.
    any_host: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Orders `routes` for lookup.
    pub fn new(routes: Vec<Route>) -> RouteTable {
        let (mut with_host, mut any_host): (Vec<_>, Vec<_>) = routes
            .into_iter()
            .map(Arc::new)
            .partition(|r| r.host.is_some());
        // Stable sort: among equal prefixes the earlier route in the file wins.
        with_host.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        any_host.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        RouteTable {
            with_host,
            any_host,
        }
    }

    /// The route for a request to `host` (as sent, maybe with port) and canonical `path`.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let host = host.map(host_without_port);
        let by_host = host.and_then(|h| {
            self.with_host.iter().find(|r| {
                r.host
                    .as_deref()
                    .is_some_and(|rh| rh.eq_ignore_ascii_case(h))
                    && under_prefix(path, &r.prefix)
            })
        });
        by_host.or_else(|| self.any_host.iter().find(|r| under_prefix(path, &r.prefix)))
    }

    /// Every route, for listing.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.with_host.iter().chain(self.any_host.iter())
    }
}

/// `Host` value without its port and trailing dot; IPv6 literals keep their brackets.
pub fn host_without_port(host: &str) -> &str {
    let host = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, host: Option<&str>, prefix: &str) -> Route {
        Route {
            name: Arc::new(name.into()),
            host: host.map(str::to_string),
            prefix: prefix.into(),
            upstream: Upstream::parse("http://127.0.0.1:1").unwrap(),
            policy: Policy::Public,
            timeout: Duration::from_secs(1),
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            route("root", None, "/"),
            route("admin", None, "/admin"),
            route("api", None, "/api/v1"),
            route("app-root", Some("app.example.com"), "/"),
            route("app-admin", Some("app.example.com"), "/admin"),
        ])
    }

    #[test]
    fn longest_prefix_on_segment_boundary() {
        let t = table();
        let name = |host, path| t.find(host, path).map(|r| r.name.as_str());
        assert_eq!(name(None, "/admin"), Some("admin"));
        assert_eq!(name(None, "/admin/users"), Some("admin"));
        assert_eq!(name(None, "/administrator"), Some("root"));
        assert_eq!(name(None, "/api/v1/x"), Some("api"));
        assert_eq!(name(None, "/api/v10"), Some("root"));
        assert_eq!(name(Some("other.test"), "/admin"), Some("admin"));
    }

    #[test]
    fn host_routes_win_case_insensitive_port_ignored() {
        let t = table();
        let name = |host, path| t.find(Some(host), path).map(|r| r.name.as_str());
        assert_eq!(name("APP.example.com:8443", "/admin/x"), Some("app-admin"));
        assert_eq!(name("app.example.com.", "/api/v1"), Some("app-root"));
        assert_eq!(name("app.example.com", "/"), Some("app-root"));
    }

    #[test]
    fn no_route() {
        let t = RouteTable::new(vec![route("admin", None, "/admin")]);
        assert!(t.find(None, "/").is_none());
        assert!(t.find(None, "/adminx").is_none());
    }

    #[test]
    fn host_port_stripping() {
        assert_eq!(host_without_port("a.test:80"), "a.test");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
        assert_eq!(host_without_port("a.test"), "a.test");
    }

    #[test]
    fn policies() {
        assert_eq!(Policy::parse("public"), Ok(Policy::Public));
        assert_eq!(
            Policy::parse("role:admin"),
            Ok(Policy::Role("admin".into()))
        );
        assert!(Policy::parse("role:").is_err());
        assert!(Policy::parse("role:a b").is_err());
        assert!(Policy::parse("Public").is_err());
    }

    #[test]
    fn upstreams() {
        assert!(Upstream::parse("http://127.0.0.1:3000").is_ok());
        assert!(Upstream::parse("http://app.internal/").is_ok());
        for bad in [
            "127.0.0.1:3000",
            "ftp://x",
            "http://x/base",
            "http://u:p@x",
            "http://x/?a",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }
}

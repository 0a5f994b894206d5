//! Validation of `rd`, where a browser goes after signing in: a relative path on this site,
//! or an absolute http(s) URL on an allowed host. Anything else is dropped, so a login link
//! can never bounce a user to an attacker's site.

/// `rd` when it is safe to redirect to, else `None`.
pub fn safe_redirect(rd: &str, allowed_hosts: &[String]) -> Option<String> {
    if rd.is_empty()
        || rd.len() > 2048
        || rd
            .bytes()
            .any(|b| b.is_ascii_control() || b == b'\\' || b == b' ')
    {
        return None;
    }
    if let Some(rest) = rd.strip_prefix('/') {
        // `//host` and `/\host` are network-path references that browsers follow off-site.
        return (!rest.starts_with('/')).then(|| rd.to_string());
    }
    let uri: http::Uri = rd.parse().ok()?;
    let scheme = uri.scheme_str()?;
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    allowed_hosts.contains(&host).then(|| rd.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_pass() {
        for ok in ["/", "/app", "/app/x?y=1#z", "/a/../b"] {
            assert_eq!(safe_redirect(ok, &[]).as_deref(), Some(ok), "{ok}");
        }
    }

    #[test]
    fn off_site_and_odd_targets_are_refused() {
        let allowed = vec!["app.example.com".to_string()];
        for bad in [
            "",
            "//evil.test",
            "///evil.test",
            "/\\evil.test",
            "\\\\evil.test",
            "https://evil.test/",
            "https://app.example.com@evil.test/",
            "javascript:alert(1)",
            "data:text/html,x",
            "/app\r\nSet-Cookie: x=1",
            "/a\tb",
            "evil.test",
            "https:/\\evil.test",
            "https://evil.test\\@app.example.com/",
            "ftp://app.example.com/",
        ] {
            assert_eq!(safe_redirect(bad, &allowed), None, "{bad:?}");
        }
    }

    #[test]
    fn allowed_hosts_match_exactly_ignoring_port_and_case() {
        let allowed = vec!["app.example.com".to_string()];
        assert!(safe_redirect("https://APP.example.com:8443/x", &allowed).is_some());
        assert!(safe_redirect("https://app.example.com.evil.test/", &allowed).is_none());
        assert!(safe_redirect("https://sub.app.example.com/", &allowed).is_none());
    }
}

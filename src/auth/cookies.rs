//! tollgate's own cookies: finding one in a request, writing `Set-Cookie`, and keeping them
//! out of what upstreams receive.

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::config::settings::CookieSettings;

/// The value of cookie `name` in the request (the first, if sent twice).
pub fn find<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim_matches('"'))
}

/// Removes the named cookies from every `Cookie` header, dropping headers left empty.
pub fn strip(headers: &mut HeaderMap, names: &[&str]) {
    if !headers.contains_key(COOKIE) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(';')
                .map(str::trim)
                .filter(|pair| {
                    let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
                    !pair.is_empty() && !names.contains(&name)
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|v| !v.is_empty())
        .collect();
    headers.remove(COOKIE);
    for value in kept {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(COOKIE, value);
        }
    }
}

/// `Set-Cookie` for the access cookie, alive for `max_age` seconds.
pub fn access_cookie(cookies: &CookieSettings, token: &str, max_age: u64) -> Option<HeaderValue> {
    // Lax, not Strict: following a link into a protected app should arrive signed in.
    let secure = if cookies.secure { "; Secure" } else { "" };
    let value = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        cookies.access_name
    );
    HeaderValue::from_str(&value).ok()
}

/// Whether a `Set-Cookie` value sets one of `names`.
pub fn sets_one_of(set_cookie: &HeaderValue, names: &[&str]) -> bool {
    let text = String::from_utf8_lossy(set_cookie.as_bytes());
    let name = text.split(['=', ';']).next().unwrap_or("").trim();
    names.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_strip() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; tollgate-access=tok; b=2"),
        );
        h.append(COOKIE, HeaderValue::from_static("tollgate-refresh=r"));
        assert_eq!(find(&h, "tollgate-access"), Some("tok"));
        assert_eq!(find(&h, "tollgate"), None);
        strip(&mut h, &["tollgate-access", "tollgate-refresh"]);
        let left: Vec<_> = h.get_all(COOKIE).iter().collect();
        assert_eq!(left, vec!["a=1; b=2"]);
    }

    #[test]
    fn set_cookie_attributes() {
        let settings = CookieSettings {
            secure: true,
            access_name: "__Host-tollgate-access".into(),
            refresh_name: "__Host-tollgate-refresh".into(),
        };
        let v = access_cookie(&settings, "jwt", 60).unwrap();
        assert_eq!(
            v,
            "__Host-tollgate-access=jwt; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        assert!(sets_one_of(&v, &["__Host-tollgate-access"]));
        assert!(!sets_one_of(
            &HeaderValue::from_static("other=1"),
            &["__Host-tollgate-access"]
        ));
    }
}

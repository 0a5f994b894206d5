//! The sign-in page: a plain HTML form that posts to `P/login` and carries `rd` along.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, X_FRAME_OPTIONS};
use http::{HeaderName, HeaderValue, Request, Response};

use crate::Body;
use crate::config::Settings;
use crate::gateway::error::full;

/// `GET P/login`: the form, keeping the query's `rd`.
pub fn login_page<B>(
    settings: &Settings,
    request: &Request<B>,
    error: Option<&str>,
) -> Response<Body> {
    let rd = request
        .uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "rd").map(|(_, v)| v));
    login_page_for(settings, rd.as_deref(), error)
}

/// The form with `rd` and an optional error code shown above it.
pub fn login_page_for(
    settings: &Settings,
    rd: Option<&str>,
    error: Option<&str>,
) -> Response<Body> {
    let action = escape(&format!("{}/login", settings.auth_prefix));
    let rd = escape(rd.unwrap_or("/"));
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign in</title></head>\n<body>\n<h1>Sign in</h1>\n{error}\
         <form method=\"post\" action=\"{action}\">\n\
         <label>Email or username <input name=\"login\" autocomplete=\"username\" required></label>\n\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\n\
         <input type=\"hidden\" name=\"rd\" value=\"{rd}\">\n\
         <button type=\"submit\">Sign in</button>\n</form>\n</body></html>\n"
    );
    let mut response = Response::new(full(page));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    );
    response
}

/// Escapes text for HTML element content and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("\"><script>&'"),
            "&quot;&gt;&lt;script&gt;&amp;&#39;"
        );
    }
}

//! Header rules applied to requests going upstream and responses coming back.
//!
//! These decide what a client can make the upstream believe: hop-by-hop headers must not
//! leak across the proxy, identity headers tollgate sets must not be spoofable, and the
//! forwarding chain is only believed when it arrives through a trusted proxy.

use http::header::{CONNECTION, COOKIE, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use std::borrow::Borrow;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::added::AddedFields;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers about one connection that must never cross the proxy (RFC 9110 §7.6.1, RFC 2616).
/// Names, not strings, so removing them needs no parsing per request. Their lengths (2, 7,
/// 10, 16 to 19) are relied on by `strip_hop_by_hop`; a test checks them.
static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    UPGRADE,
];

/// Every response field that some response rule reads or changes: the hop-by-hop names
/// (`strip_hop_by_hop`), the framing (`Content-Length`; `Transfer-Encoding` is hop-by-hop),
/// tollgate's own token and cookies (`strip_upstream_credentials`, `add_current_token`) and
/// the cache policy (`make_private`). A rule that comes to look at another field must name
/// it here: fields not named may reach the client without passing through the rules
/// (`passed.rs`). `Connection` listing other names sends every field through the rules.
static RESPONSE_RULE_NAMES: [&str; 13] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "gn-access-token",
    "set-cookie",
    "cache-control",
];

/// Whether some response rule reads or changes fields named `name` (in any case).
pub fn response_rules_touch(name: &[u8]) -> bool {
    RESPONSE_RULE_NAMES
        .iter()
        .any(|rule| rule.len() == name.len() && name.eq_ignore_ascii_case(rule.as_bytes()))
}

/// Forwarding headers a client may send; all are replaced by tollgate's own.
static CLIENT_FORWARDING: [HeaderName; 5] = [
    HeaderName::from_static("forwarded"),
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    HeaderName::from_static("x-real-ip"),
];

/// Removes hop-by-hop and `Connection`-named headers; returns `Upgrade` if an upgrade was asked.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) -> Option<HeaderValue> {
    // One pass over the names finds which of these are present (usually none, or only
    // `Connection`), so only those are removed: removing each name in turn would hash and
    // probe for all nine on every message.
    let mut present = 0u16;
    for name in headers.keys() {
        // Their lengths rule out most names without comparing them.
        if !matches!(name.as_str().len(), 2 | 7 | 10 | 16..=19) {
            continue;
        }
        if let Some(i) = HOP_BY_HOP.iter().position(|hop| hop == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return None;
    }
    let mut named = Vec::new();
    let mut wants_upgrade = false;
    for value in headers.get_all(CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"upgrade") {
                wants_upgrade = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                // Names `Keep-Alive`, which is hop-by-hop and so already in `present`.
            } else if let Ok(name) = HeaderName::from_bytes(token) {
                named.push(name);
            }
        }
    }

    let upgrade = if wants_upgrade {
        join_values(headers, &UPGRADE, b", ")
    } else {
        None
    };
    for name in named {
        headers.remove(name);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    upgrade
}

/// Removes every header whose name, lower-cased and with `_` read as `-`, equals one of `names`.
pub fn strip_named<N: Borrow<HeaderName>>(headers: &mut HeaderMap, names: &[N]) {
    // Some upstream frameworks (CGI-style environments) read `X_User_Id` as `X-User-Id`, so
    // both spellings are removed. Names are collected first because the map cannot be
    // changed while its keys are borrowed.
    let doomed = |key: &&HeaderName| names.iter().any(|name| same_name(key, name.borrow()));
    // Usually there is nothing to remove; finding that out allocates nothing.
    if !headers.keys().any(|key| doomed(&key)) {
        return;
    }
    let doomed: Vec<HeaderName> = headers.keys().filter(doomed).cloned().collect();
    for key in doomed {
        headers.remove(key);
    }
}

/// The client address and the `X-Forwarded-For` value to send upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The address tollgate believes the request came from.
    pub client_ip: IpAddr,
    /// The `X-Forwarded-For` value to send upstream, ending with the TCP peer.
    pub x_forwarded_for: HeaderValue,
    /// The scheme a trusted proxy saw, when it told us one worth believing.
    pub proto: Option<String>,
    /// The host a trusted proxy saw, when it told us one worth believing.
    pub host: Option<String>,
}

/// `peer` as a header value, in canonical form: a dual-stack listener reports IPv4 clients
/// as `::ffff:a.b.c.d`. Built once per connection.
pub fn peer_value(peer: IpAddr) -> HeaderValue {
    // The text of an address is always a valid header value.
    HeaderValue::from_str(&peer.to_canonical().to_string())
        .unwrap_or(HeaderValue::from_static("unknown"))
}

/// Works out the client from the TCP peer and, if the peer is trusted, the forwarding
/// headers. `peer_value` is [`peer_value`] of `peer`, built once per connection.
pub fn forwarded(
    headers: &HeaderMap,
    peer: IpAddr,
    peer_value: &HeaderValue,
    trusted: &[IpNet],
) -> Forwarded {
    // A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`, which IPv4 nets in
    // `trusted` would otherwise never contain.
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    if !is_trusted(peer) {
        return Forwarded {
            client_ip: peer,
            x_forwarded_for: peer_value.clone(),
            proto: None,
            host: None,
        };
    }

    let mut entries: Vec<&str> = Vec::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        match value.to_str() {
            Ok(list) => entries.extend(list.split(',').map(str::trim).filter(|e| !e.is_empty())),
            // Opaque bytes cannot be copied into a header we build from a string; they stay
            // in the chain as an unparseable hop so the walk still stops there.
            Err(_) => entries.push("unknown"),
        }
    }

    // Walking from the right, each trusted hop vouches for the entry to its left; the first
    // entry not vouched for by a trusted hop is the client. Garbage ends the walk, and the
    // last trusted hop is then the best we can say, never the garbage itself.
    let mut last_trusted = peer;
    let mut client = None;
    for entry in entries.iter().rev() {
        match parse_hop(entry) {
            Some(ip) if is_trusted(ip) => last_trusted = ip,
            Some(ip) => {
                client = Some(ip);
                break;
            }
            None => break,
        }
    }

    let mut chain = entries.join(", ");
    if !chain.is_empty() {
        chain.push_str(", ");
    }
    chain.push_str(&peer.to_string());

    Forwarded {
        client_ip: client.unwrap_or(last_trusted),
        // Entries came from valid header text; should that ever fail, the chain degrades to
        // the peer rather than disappearing.
        x_forwarded_for: HeaderValue::from_str(&chain).unwrap_or_else(|_| peer_value.clone()),
        proto: first_value(headers, &X_FORWARDED_PROTO)
            .map(str::to_ascii_lowercase)
            .filter(|p| p == "http" || p == "https"),
        host: first_value(headers, &X_FORWARDED_HOST)
            .filter(|h| is_safe_host(h))
            .map(str::to_owned),
    }
}

/// Removes the client's forwarding headers from `headers` and adds tollgate's own
/// `X-Forwarded-*` to `added`.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    added: &mut AddedFields,
    fwd: &Forwarded,
    proto: &'static str,
    host: Option<&HeaderValue>,
) {
    strip_named(headers, &CLIENT_FORWARDING);

    added.insert(X_FORWARDED_FOR, fwd.x_forwarded_for.clone());
    let proto = match &fwd.proto {
        Some(trusted) => HeaderValue::from_str(trusted).ok(),
        None => Some(HeaderValue::from_static(proto)),
    };
    let host = match &fwd.host {
        Some(trusted) => HeaderValue::from_str(trusted).ok(),
        None => host.cloned(),
    };
    // An empty or unsendable value (say, a request without a Host) is left out rather than
    // sent as a blank header that upstreams would have to second-guess.
    for (name, value) in [(X_FORWARDED_PROTO, proto), (X_FORWARDED_HOST, host)] {
        if let Some(value) = value
            && !value.is_empty()
        {
            added.insert(name, value);
        }
    }
}

/// Joins several `Cookie` headers into one, as HTTP/1.1 upstreams expect a single one.
pub fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(COOKIE).iter().nth(1).is_none() {
        return;
    }
    if let Some(joined) = join_values(headers, &COOKIE, b"; ") {
        headers.insert(COOKIE, joined);
    }
}

/// All non-empty values of `name` joined by `separator`, or `None` when there are none.
fn join_values(headers: &HeaderMap, name: &HeaderName, separator: &[u8]) -> Option<HeaderValue> {
    let mut joined = Vec::new();
    for value in headers.get_all(name) {
        let value = value.as_bytes().trim_ascii();
        if value.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(separator);
        }
        joined.extend_from_slice(value);
    }
    if joined.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&joined).ok()
}

/// Whether header names `a` and `b` are equal ignoring case and treating `_` as `-`.
fn same_name(a: &HeaderName, b: &HeaderName) -> bool {
    let (a, b) = (a.as_str(), b.as_str());
    let fold = |c: u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// One `X-Forwarded-For` entry as an address: `ip`, `[v6]`, `v4:port` or `[v6]:port`.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

fn first_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A forwarded host is echoed into upstream URLs, so only host-and-port characters pass.
fn is_safe_host(host: &str) -> bool {
    !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'[' | b']')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(headers: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> Forwarded {
        super::forwarded(headers, peer, &peer_value(peer), trusted)
    }

    /// Builds a map from `Name: value` entries split by `|`, keeping order and duplicates.
    fn map(text: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in text.split('|') {
            let (name, value) = line.split_once(':').unwrap();
            let name = name.trim();
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value.trim()).unwrap(),
            );
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ten() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut headers = map(concat!(
            "Connection: keep-alive, X-Secret | connection: x-other | Keep-Alive: timeout=5 |",
            "Proxy-Connection: keep-alive | Proxy-Authenticate: Basic | TE: trailers |",
            "Proxy-Authorization: Basic abc | Trailer: X-Sum | Transfer-Encoding: chunked |",
            "Upgrade: h2c | X-Secret: 1 | X-Other: 2 | Accept: */*",
        ));
        assert_eq!(strip_hop_by_hop(&mut headers), None);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["accept"], "*/*");

        // Each one alone is found too, and nothing else is touched.
        for alone in [
            "Keep-Alive: timeout=5",
            "TE: trailers",
            "Upgrade: h2c",
            "Trailer: X",
        ] {
            let mut headers = map(&format!("{alone} | Accept: */* | X-Keep: 1"));
            assert_eq!(strip_hop_by_hop(&mut headers), None);
            assert_eq!(headers.len(), 2, "{alone}");
        }
        let mut plain = map("Accept: */* | Accept: text/html | X-Keep: 1");
        assert_eq!(strip_hop_by_hop(&mut plain), None);
        assert_eq!(plain.len(), 3);
        let mut keep_alive = map("Connection: Keep-Alive | Keep-Alive: timeout=5 | X-Keep: 1");
        assert_eq!(strip_hop_by_hop(&mut keep_alive), None);
        assert_eq!(keep_alive.len(), 1);
    }

    #[test]
    fn hop_by_hop_names_have_the_lengths_relied_on() {
        for name in &HOP_BY_HOP {
            assert!(
                matches!(name.as_str().len(), 2 | 7 | 10 | 16..=19),
                "{name}"
            );
        }
    }

    #[test]
    fn upgrade_is_reported_and_removed() {
        let mut headers = map("Connection: Upgrade | Upgrade: websocket | Sec-WebSocket-Key: abc");
        assert_eq!(strip_hop_by_hop(&mut headers).unwrap(), "websocket");
        assert!(headers.get(CONNECTION).is_none());
        assert!(headers.get(UPGRADE).is_none());
        assert_eq!(headers["sec-websocket-key"], "abc");

        let mut several = map("Connection: close, UPGRADE|Upgrade: websocket");
        assert_eq!(strip_hop_by_hop(&mut several).unwrap(), "websocket");

        // An upgrade needs both the `Connection` token and the `Upgrade` header.
        let mut no_token = map("Connection: keep-alive|Upgrade: websocket");
        assert_eq!(strip_hop_by_hop(&mut no_token), None);
        assert!(no_token.is_empty());
        let mut no_header = map("Connection: upgrade");
        assert_eq!(strip_hop_by_hop(&mut no_header), None);
    }

    #[test]
    fn identity_headers_are_stripped_in_every_spelling() {
        let mut headers = map(concat!(
            "X-User-Id: a | x-user-id: b | x-user-id: c | X_User_Id: d | x_user-id: e |",
            "X-User-Idx: kept | X-User-Email: f",
        ));
        let names = ["x-user-id", "x-user-email"].map(HeaderName::from_static);
        strip_named(&mut headers, &names);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["x-user-idx"], "kept");
    }

    #[test]
    fn client_is_found_by_walking_trusted_hops_from_the_right() {
        // X-Forwarded-For values (split by `|`) ; TCP peer ; client ; chain sent upstream
        let cases = [
            "6.6.6.6 ; 203.0.113.9 ; 203.0.113.9 ; 203.0.113.9",
            "1.2.3.4, 10.0.0.2 ; 10.0.0.1 ; 1.2.3.4 ; 1.2.3.4, 10.0.0.2, 10.0.0.1",
            "6.6.6.6,1.2.3.4|10.0.0.2, ; 10.0.0.1 ; 1.2.3.4 ; 6.6.6.6, 1.2.3.4, 10.0.0.2, 10.0.0.1",
            "1.2.3.4, bad, 10.0.0.2 ; 10.0.0.1 ; 10.0.0.2 ; 1.2.3.4, bad, 10.0.0.2, 10.0.0.1",
            "1.2.3.4, unknown ; 10.0.0.1 ; 10.0.0.1 ; 1.2.3.4, unknown, 10.0.0.1",
            "10.0.0.3, 10.0.0.2 ; 10.0.0.1 ; 10.0.0.3 ; 10.0.0.3, 10.0.0.2, 10.0.0.1",
            " ; 10.0.0.1 ; 10.0.0.1 ; 10.0.0.1",
            "1.2.3.4:5678 ; 10.0.0.1 ; 1.2.3.4 ; 1.2.3.4:5678, 10.0.0.1",
            "[2001:db8::1] ; fd00::1 ; 2001:db8::1 ; [2001:db8::1], fd00::1",
            "[2001:db8::1]:443 ; fd00::1 ; 2001:db8::1 ; [2001:db8::1]:443, fd00::1",
            "2001:db8::1, fd00::2 ; fd00::1 ; 2001:db8::1 ; 2001:db8::1, fd00::2, fd00::1",
            "::ffff:1.2.3.4 ; fd00::1 ; 1.2.3.4 ; ::ffff:1.2.3.4, fd00::1",
            // A dual-stack listener's view of an IPv4 proxy still matches an IPv4 trusted net.
            "1.2.3.4 ; ::ffff:10.0.0.1 ; 1.2.3.4 ; 1.2.3.4, 10.0.0.1",
        ];
        for case in cases {
            let [xff, peer, client, chain] = case.split(" ; ").collect::<Vec<_>>()[..] else {
                panic!("malformed case {case:?}");
            };
            let headers: HeaderMap = (xff.split('|').filter(|v| !v.trim().is_empty()))
                .map(|v| (X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap()))
                .collect();
            let fwd = forwarded(&headers, ip(peer), &ten());
            let got = (fwd.client_ip, fwd.x_forwarded_for.to_str().unwrap());
            assert_eq!(got, (ip(client), chain), "{case:?}");
        }
    }

    #[test]
    fn unreadable_chain_entries_stop_the_walk() {
        let mut headers = HeaderMap::new();
        let opaque = HeaderValue::from_bytes(b"1.2.3.4, \xff").unwrap();
        headers.insert(X_FORWARDED_FOR, opaque);
        let fwd = forwarded(&headers, ip("10.0.0.1"), &ten());
        assert_eq!(fwd.client_ip, ip("10.0.0.1"));
        assert_eq!(fwd.x_forwarded_for, "unknown, 10.0.0.1");
    }

    #[test]
    fn proto_and_host_come_only_from_trusted_peers_and_only_when_safe() {
        let text = "X-Forwarded-Proto: HTTPS | X-Forwarded-Host: app.example:8443";
        let fwd = forwarded(&map(text), ip("10.0.0.1"), &ten());
        assert_eq!(fwd.proto.as_deref(), Some("https"));
        assert_eq!(fwd.host.as_deref(), Some("app.example:8443"));
        let fwd = forwarded(&map(text), ip("203.0.113.9"), &ten());
        assert_eq!((fwd.proto, fwd.host), (None, None));

        for text in [
            "X-Forwarded-Proto: javascript|X-Forwarded-Host: a.example, b.example",
            "X-Forwarded-Proto: https, http|X-Forwarded-Host: a.example/evil",
            "X-Forwarded-Proto: ftp|X-Forwarded-Host: a example",
        ] {
            let fwd = forwarded(&map(text), ip("10.0.0.1"), &ten());
            assert_eq!((fwd.proto, fwd.host), (None, None), "{text:?}");
        }
    }

    #[test]
    fn set_forwarded_replaces_client_headers() {
        let mut headers = map(concat!(
            "Forwarded: for=6.6.6.6 | X-Forwarded-For: 6.6.6.6 | X_Forwarded_For: 6.6.6.6 |",
            "x-forwarded-proto: http | X_Forwarded-Host: evil | X-Real-IP: 6.6.6.6 |",
            "x_real_ip: 6.6.6.6 | Accept: */*",
        ));
        let fwd = forwarded(&HeaderMap::new(), ip("203.0.113.9"), &[]);
        let set = |headers: &mut HeaderMap, fwd: &Forwarded, host: Option<&HeaderValue>| {
            let mut added = AddedFields::default();
            set_forwarded(headers, &mut added, fwd, "https", host);
            added.merge_into(headers);
        };
        set(
            &mut headers,
            &fwd,
            Some(&HeaderValue::from_static("app.example")),
        );
        assert_eq!(headers.len(), 4);
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "app.example");

        let fwd = Forwarded {
            proto: Some("http".to_owned()),
            host: Some("outer.example".to_owned()),
            ..fwd
        };
        set(
            &mut headers,
            &fwd,
            Some(&HeaderValue::from_static("app.example")),
        );
        assert_eq!(headers.len(), 4);
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "outer.example");

        let mut headers = map("X-Forwarded-Host: evil");
        set(&mut headers, &Forwarded { host: None, ..fwd }, None);
        assert!(headers.get(X_FORWARDED_HOST).is_none());
    }

    #[test]
    fn response_rules_name_every_field_they_touch() {
        let touched = HOP_BY_HOP.iter().chain([
            &http::header::CONTENT_LENGTH,
            &http::header::SET_COOKIE,
            &http::header::CACHE_CONTROL,
        ]);
        for name in touched {
            assert!(response_rules_touch(name.as_str().as_bytes()), "{name}");
        }
        assert!(response_rules_touch(b"Set-Cookie"));
        assert!(response_rules_touch(b"TRANSFER-ENCODING"));
        for name in ["date", "server", "content-type", "x-set-cookie", "t"] {
            assert!(!response_rules_touch(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn cookies_are_joined() {
        let mut headers = map("Cookie: a=1|Cookie: b=2; c=3|cookie: d=4");
        join_cookies(&mut headers);
        let all: Vec<_> = headers.get_all(COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3; d=4"]);

        let mut single = map("Cookie: a=1");
        join_cookies(&mut single);
        assert_eq!(single["cookie"], "a=1");
    }
}

//! Request path canonicalisation.
//!
//! The path is canonicalised once, and that single form is both matched against routes and
//! forwarded upstream, so the gateway and the upstream cannot disagree about which resource a
//! request names. Anything that different servers are known to read differently (encoded
//! slashes, backslashes, `..;`) is refused rather than guessed at.

/// Why a request path was refused (each maps to HTTP 400 `invalidRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not begin with `/` (this includes `*` and the empty path).
    #[error("path must begin with '/'")]
    NotAbsolute,
    /// A `%` is not followed by two hexadecimal digits.
    #[error("path contains an invalid percent-encoding")]
    InvalidPercentEncoding,
    /// The path contains `%2F`.
    #[error("path contains an encoded slash")]
    EncodedSlash,
    /// The path contains `%5C`.
    #[error("path contains an encoded backslash")]
    EncodedBackslash,
    /// The path contains `%00`.
    #[error("path contains an encoded NUL")]
    EncodedNul,
    /// The path contains a literal `\`.
    #[error("path contains a backslash")]
    Backslash,
    /// The path contains a control character, literal or percent-encoded.
    #[error("path contains a control character")]
    ControlCharacter,
    /// A `.` or `..` segment carries a `;` parameter, such as `..;`.
    #[error("path contains a dot segment with a parameter")]
    DotSegmentParameter,
}

/// Canonical form of `raw` (the path part of a request URI, no query).
pub fn canonicalise(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(bytes) {
        return Ok(raw.to_owned());
    }

    // Each segment is written straight into `out`, then inspected in its decoded form, so
    // `%2e%2e` is recognised as `..` and no per-segment buffer is needed.
    let mut out = String::with_capacity(raw.len());
    let mut trailing_slash = false;
    for segment in raw[1..].split('/') {
        let start = out.len();
        out.push('/');
        push_segment(&mut out, segment.as_bytes())?;
        let kind = classify(&out[start + 1..]);
        trailing_slash = kind != Segment::Name;
        match kind {
            Segment::Empty | Segment::Dot => out.truncate(start),
            Segment::DotDot => {
                out.truncate(start);
                // Above the root there is nothing to remove, so `..` stays at the root.
                let parent = out.rfind('/').unwrap_or(0);
                out.truncate(parent);
            }
            Segment::DotParameter => return Err(PathError::DotSegmentParameter),
            Segment::Name => {}
        }
    }
    // A path ending in an empty or dot segment names a directory, so it keeps its slash.
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// True when `path` (canonical) lies under `prefix` (canonical) on a segment boundary.
pub fn under_prefix(path: &str, prefix: &str) -> bool {
    // Callers should pass `/admin`, but `/admin/` must not silently stop covering `/admin`.
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What a decoded segment means for dot-segment removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Empty,
    Dot,
    DotDot,
    DotParameter,
    Name,
}

fn classify(segment: &str) -> Segment {
    match segment {
        "" => Segment::Empty,
        "." => Segment::Dot,
        ".." => Segment::DotDot,
        _ => {
            let rest = segment
                .strip_prefix("..")
                .or_else(|| segment.strip_prefix('.'));
            // `%3B` is included because an upstream that decodes before splitting off path
            // parameters would see `..;` all the same.
            match rest {
                Some(rest) if rest.starts_with(';') || rest.starts_with("%3B") => {
                    Segment::DotParameter
                }
                _ => Segment::Name,
            }
        }
    }
}

/// Conservative check that `raw` needs no rewriting; anything doubtful takes the slow path.
fn is_canonical(raw: &[u8]) -> bool {
    let mut prev = b'/';
    for &b in raw.iter().skip(1) {
        if prev == b'/' && (b == b'/' || b == b'.') {
            return false;
        }
        if b != b'/' && !is_literal(b) {
            return false;
        }
        prev = b;
    }
    true
}

/// Appends one segment in canonical spelling, refusing anything ambiguous.
fn push_segment(out: &mut String, segment: &[u8]) -> Result<(), PathError> {
    let mut i = 0;
    while i < segment.len() {
        let b = segment[i];
        if b == b'%' {
            let high = segment.get(i + 1).and_then(|&c| hex_value(c));
            let low = segment.get(i + 2).and_then(|&c| hex_value(c));
            let (Some(high), Some(low)) = (high, low) else {
                return Err(PathError::InvalidPercentEncoding);
            };
            match (high << 4) | low {
                b'/' => return Err(PathError::EncodedSlash),
                b'\\' => return Err(PathError::EncodedBackslash),
                0 => return Err(PathError::EncodedNul),
                c if is_control(c) => return Err(PathError::ControlCharacter),
                c if is_unreserved(c) => out.push(char::from(c)),
                c => push_encoded(out, c),
            }
            i += 3;
        } else {
            match b {
                b'\\' => return Err(PathError::Backslash),
                c if is_control(c) => return Err(PathError::ControlCharacter),
                c if is_literal(c) => out.push(char::from(c)),
                // Encoding the rest (spaces, quotes, non-ASCII) makes the literal and encoded
                // spellings of the same byte canonicalise alike.
                c => push_encoded(out, c),
            }
            i += 1;
        }
    }
    Ok(())
}

fn push_encoded(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0x0F)]));
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7F
}

/// RFC 3986 unreserved characters: encoding them never changes meaning, so they are decoded.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters a path segment may carry unencoded (RFC 3986 `pchar` minus `%`).
fn is_literal(b: u8) -> bool {
    is_unreserved(b) || b"!$&'()*+,;=:@".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cases: &[(&str, Result<&str, PathError>)]) {
        for (input, expected) in cases {
            let got = canonicalise(input);
            assert_eq!(got.as_deref(), expected.as_deref(), "input {input:?}");
        }
    }

    #[test]
    fn already_canonical_paths_are_unchanged() {
        check(&[
            ("/", Ok("/")),
            ("/admin", Ok("/admin")),
            ("/admin/", Ok("/admin/")),
            ("/a/b/c", Ok("/a/b/c")),
            ("/a;b=c/d:e@f", Ok("/a;b=c/d:e@f")),
            ("/a.b/c..d/...", Ok("/a.b/c..d/...")),
            ("/a%3Fb", Ok("/a%3Fb")),
        ]);
    }

    #[test]
    fn must_be_absolute() {
        check(&[
            ("", Err(PathError::NotAbsolute)),
            ("*", Err(PathError::NotAbsolute)),
            ("admin", Err(PathError::NotAbsolute)),
            ("%2Fadmin", Err(PathError::NotAbsolute)),
        ]);
    }

    #[test]
    fn slashes_collapse() {
        check(&[
            ("//", Ok("/")),
            ("//admin", Ok("/admin")),
            ("/a//b", Ok("/a/b")),
            ("/a///b//", Ok("/a/b/")),
        ]);
    }

    #[test]
    fn dot_segments_resolve() {
        check(&[
            ("/pub/../admin", Ok("/admin")),
            ("/a/./b", Ok("/a/b")),
            ("/a/b/..", Ok("/a/")),
            ("/a/b/.", Ok("/a/b/")),
            ("/a/b/../../..", Ok("/")),
            ("/../a", Ok("/a")),
            ("/..", Ok("/")),
            ("/.", Ok("/")),
            ("/a/b/../c/./d/", Ok("/a/c/d/")),
            ("/.well-known/x", Ok("/.well-known/x")),
            ("/a/.../b", Ok("/a/.../b")),
            ("/%2e%2E/admin", Ok("/admin")),
            ("/pub/%2e%2e/admin", Ok("/admin")),
            ("/pub/.%2e/admin", Ok("/admin")),
            ("/a/%2e/b", Ok("/a/b")),
        ]);
    }

    #[test]
    fn dot_segments_with_parameters_are_refused() {
        check(&[
            ("/x/..;/admin", Err(PathError::DotSegmentParameter)),
            (
                "/x/..;jsessionid=x/admin",
                Err(PathError::DotSegmentParameter),
            ),
            ("/x/.;x", Err(PathError::DotSegmentParameter)),
            ("/x/%2e%2e;/admin", Err(PathError::DotSegmentParameter)),
            ("/x/..%3b/admin", Err(PathError::DotSegmentParameter)),
            ("/x/a..;b", Ok("/x/a..;b")),
            ("/x/...;b", Ok("/x/...;b")),
        ]);
    }

    #[test]
    fn percent_encoding_is_normalised() {
        check(&[
            ("/%61dmin", Ok("/admin")),
            ("/%7e", Ok("/~")),
            ("/%7E%2D%5f%30", Ok("/~-_0")),
            ("/a%3fb", Ok("/a%3Fb")),
            ("/caf%c3%a9", Ok("/caf%C3%A9")),
            ("/a%20b", Ok("/a%20b")),
            ("/a%25b", Ok("/a%25b")),
            ("/a%3Bb", Ok("/a%3Bb")),
        ]);
    }

    #[test]
    fn characters_outside_pchar_are_encoded() {
        check(&[
            ("/café", Ok("/caf%C3%A9")),
            ("/a b", Ok("/a%20b")),
            ("/a\"b", Ok("/a%22b")),
            ("/a?b", Ok("/a%3Fb")),
            ("/a#b", Ok("/a%23b")),
            ("/a{b}", Ok("/a%7Bb%7D")),
        ]);
    }

    #[test]
    fn invalid_percent_encodings_are_refused() {
        check(&[
            ("/%zz", Err(PathError::InvalidPercentEncoding)),
            ("/a%", Err(PathError::InvalidPercentEncoding)),
            ("/a%4", Err(PathError::InvalidPercentEncoding)),
            ("/a%4/b", Err(PathError::InvalidPercentEncoding)),
            ("/a%g1", Err(PathError::InvalidPercentEncoding)),
        ]);
    }

    #[test]
    fn ambiguous_bytes_are_refused() {
        check(&[
            ("/admin%2f", Err(PathError::EncodedSlash)),
            ("/admin%2F", Err(PathError::EncodedSlash)),
            ("/a%5cb", Err(PathError::EncodedBackslash)),
            ("/a%5Cb", Err(PathError::EncodedBackslash)),
            ("/a%00", Err(PathError::EncodedNul)),
            ("/a\\b", Err(PathError::Backslash)),
            ("/a\0b", Err(PathError::ControlCharacter)),
            ("/a\tb", Err(PathError::ControlCharacter)),
            ("/a\x7fb", Err(PathError::ControlCharacter)),
            ("/a%0a", Err(PathError::ControlCharacter)),
            ("/a%1F", Err(PathError::ControlCharacter)),
            ("/a%7f", Err(PathError::ControlCharacter)),
        ]);
    }

    #[test]
    fn canonical_output_is_a_fixed_point() {
        for input in [
            "/pub/../admin",
            "//a//b/",
            "/%61/%3f/caf%c3%a9",
            "/a/b/..",
            "/a b",
        ] {
            let once = canonicalise(input).unwrap();
            assert_eq!(canonicalise(&once).unwrap(), once, "input {input:?}");
        }
    }

    #[test]
    fn prefix_matching_respects_segment_boundaries() {
        let cases = [
            ("/admin", "/admin", true),
            ("/admin/", "/admin", true),
            ("/admin/x", "/admin", true),
            ("/administrator", "/admin", false),
            ("/adm", "/admin", false),
            ("/", "/admin", false),
            ("/anything", "/", true),
            ("/", "/", true),
            ("/admin", "/admin/", true),
            ("/admin/x", "/admin/", true),
            ("/administrator", "/admin/", false),
            ("/a/b/c", "/a/b", true),
            ("/a/bc", "/a/b", false),
        ];
        for (path, prefix, expected) in cases {
            assert_eq!(
                under_prefix(path, prefix),
                expected,
                "{path:?} under {prefix:?}"
            );
        }
    }
}

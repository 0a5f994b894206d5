//! Pieces of HTTP/1.1 shared by the server's direct path and the upstream client: header
//! fields parsed by httparse turned into a `HeaderMap` without copying their values, and
//! the `Date` header.

use std::cell::RefCell;
use std::ops::Range;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::clock::{Clock, SystemClock};

/// The most header fields accepted in one message head, as hyper accepts.
pub const MAX_HEADERS: usize = 100;

/// Header fields tollgate may add to a message it forwards; maps get room for them up
/// front so that adding them never grows the map.
pub const ADDED_HEADERS: usize = 8;

/// Where `part`, a slice of the buffer that starts at address `base`, lies in that buffer
/// (httparse hands out slices; the frozen head is sliced by these ranges).
pub(crate) fn span_at(base: usize, part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - base;
    start..start + part.len()
}

/// Where the header fields of one message head lie: names checked, values located in the
/// bytes httparse parsed, so that they can later share the frozen head. A connection keeps
/// one from message to message, so its room is allocated once.
#[derive(Debug, Default)]
pub struct LocatedFields {
    fields: Vec<(HeaderName, Range<usize>)>,
}

impl LocatedFields {
    /// Locates each parsed field that `keep` accepts (forgetting what was located before);
    /// `buf` is what httparse parsed.
    pub fn locate(
        &mut self,
        buf: &[u8],
        fields: &[httparse::Header<'_>],
        mut keep: impl FnMut(&httparse::Header<'_>) -> bool,
    ) -> Result<(), http::header::InvalidHeaderName> {
        let base = buf.as_ptr() as usize;
        self.fields.clear();
        for field in fields.iter().filter(|f| keep(f)) {
            let name = header_name(field.name.as_bytes())?;
            self.fields.push((name, span_at(base, field.value)));
        }
        Ok(())
    }

    /// The located fields in `map` (emptied first; its allocation is reused), with values
    /// that are slices of `head` (the parsed bytes, frozen); none stay located.
    pub fn fill(
        &mut self,
        map: &mut HeaderMap,
        head: &Bytes,
    ) -> Result<(), http::header::InvalidHeaderValue> {
        map.clear();
        map.reserve(self.fields.len() + ADDED_HEADERS);
        for (name, span) in self.fields.drain(..) {
            map.append(name, HeaderValue::from_maybe_shared(head.slice(span))?);
        }
        Ok(())
    }

    /// The names located, in order.
    #[cfg(test)]
    fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|(name, _)| name.as_str()).collect()
    }
}

/// Slots in the per-thread memo of header names.
const NAME_MEMO_SLOTS: usize = 64;
/// Names longer than this are parsed every time (they are rare, and the memo holds copies).
const NAME_MEMO_MAX_LEN: usize = 32;

thread_local! {
    /// Recently parsed header names, keyed by their bytes exactly as sent (case included),
    /// one per slot: the same few names arrive on nearly every message, and parsing one
    /// (lower-casing it, then telling standard names from the rest) costs several times
    /// more than finding it here.
    static NAME_MEMO: RefCell<Vec<Option<RememberedName>>> =
        RefCell::new(vec![None; NAME_MEMO_SLOTS]);
}

/// A header name's bytes as they were sent, and their parse.
type RememberedName = (Box<[u8]>, HeaderName);

/// The header name `raw` (as a field name was sent), parsed once per thread and slot.
pub(crate) fn header_name(raw: &[u8]) -> Result<HeaderName, http::header::InvalidHeaderName> {
    if raw.is_empty() || raw.len() > NAME_MEMO_MAX_LEN {
        return HeaderName::from_bytes(raw);
    }
    let slot = (raw.len() * 7 + usize::from(raw[0]) * 3 + usize::from(raw[raw.len() - 1]))
        % NAME_MEMO_SLOTS;
    NAME_MEMO.with_borrow_mut(|memo| {
        if let Some((key, name)) = &memo[slot]
            && **key == *raw
        {
            return Ok(name.clone());
        }
        let name = HeaderName::from_bytes(raw)?;
        memo[slot] = Some((raw.into(), name.clone()));
        Ok(name)
    })
}

/// Whether the comma-separated list in `values` (every field line of one header, such as
/// `Connection`) names `token`, in any case, with optional whitespace around list items.
pub fn lists_token<'a>(values: impl IntoIterator<Item = &'a [u8]>, token: &[u8]) -> bool {
    values
        .into_iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

thread_local! {
    /// The `Date` value of the current second, formatted once per second per thread.
    static DATE: RefCell<(u64, HeaderValue)> =
        const { RefCell::new((0, HeaderValue::from_static(""))) };
}

/// The current time as an HTTP `Date` value (RFC 9110 §5.6.7).
pub fn date() -> HeaderValue {
    // The clock every expiry reads: cheap, and exact to the second a `Date` shows.
    let since_epoch = SystemClock.now();
    let second = since_epoch.as_secs();
    DATE.with_borrow_mut(|(cached_second, value)| {
        if *cached_second != second {
            let text = httpdate::fmt_http_date(UNIX_EPOCH + since_epoch);
            if let Ok(fresh) = HeaderValue::from_str(&text) {
                *value = fresh;
                *cached_second = second;
            }
        }
        value.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_a_map_sharing_the_head() {
        let text = b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Two: 1\r\nx-two: 2\r\n\r\n";
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut request = httparse::Request::new(&mut slots);
        assert!(request.parse(text).unwrap().is_complete());
        let mut located = LocatedFields::default();
        located.locate(text, request.headers, |_| true).unwrap();
        let mut map = HeaderMap::new();
        map.insert("x-old", HeaderValue::from_static("gone"));
        located.fill(&mut map, &Bytes::from_static(text)).unwrap();
        assert!(located.names().is_empty(), "filling empties it");
        assert!(!map.contains_key("x-old"));
        assert_eq!(map["host"], "a.test");
        let twos: Vec<_> = map.get_all("x-two").iter().collect();
        assert_eq!(twos, ["1", "2"]);
    }

    #[test]
    fn fields_left_out_are_not_located() {
        let text = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut slots);
        assert!(response.parse(text).unwrap().is_complete());
        let mut located = LocatedFields::default();
        // What an earlier message left is forgotten.
        located.locate(text, response.headers, |_| true).unwrap();
        located
            .locate(text, response.headers, |f| f.name != "A")
            .unwrap();
        assert_eq!(located.names(), ["b"]);
        assert_eq!(&text[located.fields[0].1.clone()], b"2");
    }

    #[test]
    fn remembered_names_are_the_names_parsed() {
        let names: [&[u8]; 7] = [
            b"Content-Type",
            b"content-type",
            b"X-Custom-Thing",
            b"x-custom-thing",
            b"Set-Cookie",
            b"a",
            b"An-Unusually-Long-Header-Name-Beyond-The-Memo",
        ];
        // Twice, so the second round is answered from the memo.
        for _ in 0..2 {
            for raw in names {
                assert_eq!(
                    header_name(raw).unwrap(),
                    HeaderName::from_bytes(raw).unwrap()
                );
            }
        }
        // Names colliding on a slot replace each other and stay right.
        for raw in [b"ab".as_slice(), b"ba", b"ab", b"ba"] {
            assert_eq!(header_name(raw).unwrap().as_str().as_bytes(), raw);
        }
        assert!(header_name(b"bad name").is_err());
        assert!(header_name(b"bad name").is_err());
        assert!(header_name(b"").is_err());
    }

    #[test]
    fn list_tokens_are_found_in_any_line_and_case() {
        let lines: [&[u8]; 2] = [b"keep-alive", b" Foo ,\tUpGrade "];
        assert!(lists_token(lines, b"upgrade"));
        assert!(lists_token(lines, b"foo"));
        assert!(!lists_token(lines, b"close"));
        assert!(!lists_token([b"upgraded".as_slice()], b"upgrade"));
        assert!(!lists_token(std::iter::empty(), b"close"));
    }

    #[test]
    fn the_date_is_an_http_date() {
        use std::time::{Duration, SystemTime};
        let date = date();
        let parsed = httpdate::parse_http_date(date.to_str().unwrap()).unwrap();
        let off = SystemTime::now().duration_since(parsed).unwrap_or_default();
        assert!(off < Duration::from_secs(5));
    }
}

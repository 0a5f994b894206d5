//! Fields of an upstream's response that no response rule reads or changes, passed to the
//! client exactly as they came instead of going through a `HeaderMap`.
//!
//! The rules (hop-by-hop removal, framing, tollgate's own token and cookies, the cache
//! policy) work on the response's map; `headers::response_rules_touch` names every field
//! they look at, and only fields it does not name are passed this way. They travel in the
//! response's extensions. The direct HTTP/1.1 writer writes them after the map's fields;
//! everything else merges them into the map first (`Gateway::handle` does so).
//!
//! httparse accepts exactly the bytes `http` does (names: RFC 9110 tokens; values: HTAB,
//! SP to `~`, obs-text; never CR, LF or NUL), so a passed field can neither split the
//! response nor carry what the map would have refused.

use std::ops::Range;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use crate::http1;

/// Fields of one response head, each a name and a value within `head`.
#[derive(Debug, Clone)]
pub struct PassedFields {
    head: Bytes,
    fields: Vec<(Range<usize>, Range<usize>)>,
    has_date: bool,
}

/// A passed field could not be turned into a map entry (it cannot happen for fields that
/// httparse accepted: both accept the same bytes).
#[derive(Debug, thiserror::Error)]
#[error("an upstream header field is not valid")]
pub struct InvalidField;

impl PassedFields {
    /// Fields whose names and values lie at `fields` in `head`.
    pub(crate) fn new(head: Bytes, fields: Vec<(Range<usize>, Range<usize>)>) -> PassedFields {
        let has_date = fields
            .iter()
            .any(|(name, _)| head[name.clone()].eq_ignore_ascii_case(b"date"));
        PassedFields {
            head,
            fields,
            has_date,
        }
    }

    /// Whether a `Date` field is among them.
    pub fn has_date(&self) -> bool {
        self.has_date
    }

    /// Appends the fields to `out` as HTTP/1.1 field lines.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for (name, value) in &self.fields {
            out.extend_from_slice(&self.head[name.clone()]);
            out.extend_from_slice(b": ");
            out.extend_from_slice(&self.head[value.clone()]);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Appends the fields to `headers`, after any of the same name already there.
    pub fn merge_into(self, headers: &mut HeaderMap) -> Result<(), InvalidField> {
        headers.reserve(self.fields.len());
        for (name, value) in self.fields {
            let name = http1::header_name(&self.head[name]).map_err(|_| InvalidField)?;
            let value =
                HeaderValue::from_maybe_shared(self.head.slice(value)).map_err(|_| InvalidField)?;
            headers.append(name, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed(head: &'static [u8], fields: &[(&str, &str)]) -> PassedFields {
        let at = |part: &str| crate::http1::span_at(head.as_ptr() as usize, part.as_bytes());
        let text = std::str::from_utf8(head).unwrap();
        let spans = fields
            .iter()
            .map(|(n, v)| {
                let name = &text[text.find(n).unwrap()..][..n.len()];
                let value = &text[text.find(v).unwrap()..][..v.len()];
                (at(name), at(value))
            })
            .collect();
        PassedFields::new(Bytes::from_static(head), spans)
    }

    #[test]
    fn fields_are_written_and_merged_as_they_came() {
        let head = b"HTTP/1.1 200 OK\r\nX-App: 1\r\nDATE: Sun\r\nx-multi: b\r\n\r\n";
        let fields = passed(head, &[("X-App", "1"), ("DATE", "Sun"), ("x-multi", "b")]);
        assert!(fields.has_date());
        let mut out = Vec::new();
        fields.write_to(&mut out);
        assert_eq!(out, b"X-App: 1\r\nDATE: Sun\r\nx-multi: b\r\n");

        let mut map = HeaderMap::new();
        map.append("x-multi", HeaderValue::from_static("a"));
        fields.merge_into(&mut map).unwrap();
        assert_eq!(map["x-app"], "1");
        assert_eq!(map["date"], "Sun");
        let multi: Vec<_> = map.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["a", "b"]);

        let none = passed(
            b"HTTP/1.1 200 OK\r\nX-Datelike: 1\r\n\r\n",
            &[("X-Datelike", "1")],
        );
        assert!(!none.has_date());
    }

    #[test]
    fn an_invalid_field_fails_the_merge() {
        let head = b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n";
        let fields = passed(head, &[("Bad Name", "1")]);
        assert!(fields.merge_into(&mut HeaderMap::new()).is_err());
    }
}

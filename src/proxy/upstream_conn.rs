//! One HTTP/1.1 connection to an upstream, spoken directly: the request head goes out in
//! one write, the response head is parsed in place with httparse, and the body is read off
//! the same connection while the client is sent it (`upstream_body.rs`).
//!
//! Only requests without a body travel this way (see `link.rs`), so an exchange is: write
//! the head, read the response head, then hand the connection to the response body.

use std::io;
use std::mem::MaybeUninit;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::Authority;
use http::{HeaderMap, Method, StatusCode, request, response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::added::AddedFields;
use super::client::CONNECT_TIMEOUT;
use super::headers;
use super::passed::PassedFields;
use crate::BoxError;
use crate::http1::{LocatedFields, MAX_HEADERS};
use crate::write_buffer::WriteBuffer;

/// The largest response head (status line and headers) accepted from an upstream.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How much is read from the upstream at once.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// An open connection to an upstream, with what was read from it and not yet used.
#[derive(Debug)]
pub(crate) struct UpstreamConn {
    stream: TcpStream,
    /// Bytes received and not yet consumed.
    pub(crate) buf: BytesMut,
    /// Where the fields of the response head being read lie; kept between responses, so
    /// its room is allocated once.
    located: LocatedFields,
}

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body at all (a `HEAD` request, `204`, `304`, `101`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A response head read from an upstream, and what follows it.
#[derive(Debug)]
pub(crate) struct Head {
    /// Status and headers, as the client will be sent them.
    pub parts: response::Parts,
    /// How its body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request after this body.
    pub reusable: bool,
}

/// Why an exchange failed, and whether the upstream can have seen the request.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// The connection closed or failed before any byte of a response arrived: a kept
    /// connection the upstream had given up on. Safe to repeat an idempotent request.
    Closed(io::Error),
    /// Anything else: a malformed or cut-off response, or an I/O error mid-response.
    Failed(BoxError),
}

impl From<ExchangeError> for BoxError {
    fn from(error: ExchangeError) -> BoxError {
        match error {
            ExchangeError::Closed(e) => format!("upstream closed the connection: {e}").into(),
            ExchangeError::Failed(e) => e,
        }
    }
}

impl UpstreamConn {
    /// Opens a connection to `authority` (`TCP_NODELAY`, within `CONNECT_TIMEOUT`).
    pub async fn connect(authority: &Authority) -> Result<UpstreamConn, BoxError> {
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| format!("connecting to {authority} timed out"))??;
        stream.set_nodelay(true)?;
        Ok(UpstreamConn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            located: LocatedFields::default(),
        })
    }

    /// Whether a kept connection is still worth using: the upstream has sent nothing since
    /// the last response (a close or stray bytes would show as readable). Checking costs
    /// no system call unless something did arrive.
    pub fn still_open(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        match self.stream.poll_read_ready(cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readiness can be stale: only a read tells a close from nothing.
            Poll::Ready(Ok(())) => matches!(
                self.stream.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Sends a request without a body and reads the response head, skipping interim
    /// (1xx) responses other than `101`. Once a response head has arrived (and the request
    /// can no longer be repeated), the request's header map is reused for it.
    pub async fn exchange(
        &mut self,
        request: &mut request::Parts,
        added: &AddedFields,
        authority: &Authority,
    ) -> Result<Head, ExchangeError> {
        // Written from the thread's buffer, which goes back before the response is awaited.
        let mut head = WriteBuffer::lend();
        encode_head(request, added, authority, &mut head);
        let sent = self.stream.write_all(&head).await;
        drop(head);
        sent.map_err(ExchangeError::Closed)?;
        let mut received = false;
        loop {
            // Nothing to parse before the first read (the buffer is empty between responses).
            if (received || !self.buf.is_empty())
                && let Some(head) = self.parse_head(request)?
            {
                return Ok(head);
            }
            if self.buf.len() >= MAX_HEAD_BYTES {
                return Err(ExchangeError::Failed(
                    "upstream response head too large".into(),
                ));
            }
            self.buf.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) if !received => {
                    return Err(ExchangeError::Closed(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(0) => {
                    return Err(ExchangeError::Failed(
                        "upstream closed the connection mid-head".into(),
                    ));
                }
                Ok(_) => received = true,
                Err(e) if !received => return Err(ExchangeError::Closed(e)),
                Err(e) => return Err(ExchangeError::Failed(e.into())),
            }
        }
    }

    /// Reads more of the response into `buf`; `Ok(0)` is the upstream closing.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ_CHUNK);
        tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.stream), cx, &mut self.buf)
    }

    /// A complete final response head at the front of `buf`, consumed; `None` when more
    /// bytes are needed. The response takes over the request's header map and extensions
    /// (emptied), keeping the room they have.
    fn parse_head(&mut self, request: &mut request::Parts) -> Result<Option<Head>, ExchangeError> {
        loop {
            // Uninitialised: httparse writes only the slots it fills.
            let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut []);
            let config = httparse::ParserConfig::default();
            let len =
                match config.parse_response_with_uninit_headers(&mut parsed, &self.buf, &mut slots)
                {
                    Ok(httparse::Status::Complete(len)) => len,
                    Ok(httparse::Status::Partial) => return Ok(None),
                    Err(e) => {
                        return Err(ExchangeError::Failed(
                            format!("malformed upstream response head: {e}").into(),
                        ));
                    }
                };
            let code = parsed.code.unwrap_or_default();
            let http10 = parsed.version == Some(0);
            let status = StatusCode::from_u16(code)
                .map_err(|_| ExchangeError::Failed("bad upstream status code".into()))?;
            if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                // `100 Continue`, `103 Early Hints`: the final response follows.
                let _ = self.buf.split_to(len);
                continue;
            }
            let connection = ConnectionTokens::of(parsed.headers);
            // `Connection` and `Keep-Alive` are about this hop only, and the client never
            // sees them: unless `Connection` names other headers (which the response
            // filter must then remove too), they are left out of the map from the start.
            // So, then, are the fields no response rule looks at: they are passed to the
            // client as they came (`passed.rs`).
            let base = self.buf.as_ptr() as usize;
            let span = |part: &[u8]| crate::http1::span_at(base, part);
            let mut passed = Vec::with_capacity(parsed.headers.len());
            let keep = |field: &httparse::Header<'_>| {
                if !connection.only_persistence {
                    return true;
                }
                let name = field.name.as_bytes();
                if name.eq_ignore_ascii_case(b"connection")
                    || name.eq_ignore_ascii_case(b"keep-alive")
                {
                    return false;
                }
                if headers::response_rules_touch(name) {
                    return true;
                }
                passed.push((span(name), span(field.value)));
                false
            };
            self.located
                .locate(&self.buf, parsed.headers, keep)
                .map_err(|_| ExchangeError::Failed("bad upstream header name".into()))?;
            let head_bytes: Bytes = self.buf.split_to(len).freeze();
            let passed =
                (!passed.is_empty()).then(|| PassedFields::new(head_bytes.clone(), passed));
            let mut headers = std::mem::take(&mut request.headers);
            self.located
                .fill(&mut headers, &head_bytes)
                .map_err(|_| ExchangeError::Failed("bad upstream header value".into()))?;
            let (framing, reusable) =
                framing(&request.method, status, http10, connection, &mut headers)
                    .map_err(|e| ExchangeError::Failed(e.into()))?;
            let mut parts = http::Response::new(()).into_parts().0;
            parts.status = status;
            parts.headers = headers;
            if let Some(passed) = passed {
                parts.extensions = std::mem::take(&mut request.extensions);
                parts.extensions.clear();
                parts.extensions.insert(passed);
            }
            return Ok(Some(Head {
                parts,
                framing,
                reusable,
            }));
        }
    }
}

/// Writes the head of a bodiless request in origin form: `Host` first (RFC 9112 §3.2) if
/// tollgate set one, then the request's own fields, then the rest of the ones tollgate
/// `added` (which share no name with them). With no `Host` in either, the upstream's
/// authority is sent as `Host`. Header names and values are valid by construction (`http`
/// refuses CR, LF and NUL), so nothing here can split the message.
pub(crate) fn encode_head(
    request: &request::Parts,
    added: &AddedFields,
    authority: &Authority,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(request.method.as_str().as_bytes());
    out.push(b' ');
    let target = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    match added.get(&HOST) {
        Some(host) => {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        None if !request.headers.contains_key(HOST) => {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(authority.as_str().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        None => {}
    }
    let added_rest = added.iter().filter(|(name, _)| *name != HOST);
    for (name, value) in request.headers.iter().chain(added_rest) {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How the response body is delimited and whether the connection can be kept afterwards
/// (RFC 9112 §6.3, §9.3). A `Content-Length` next to `Transfer-Encoding` is removed (the
/// latter wins) and the connection is not reused; conflicting lengths are an error.
pub(crate) fn framing(
    method: &Method,
    status: StatusCode,
    http10: bool,
    connection: ConnectionTokens,
    headers: &mut HeaderMap,
) -> Result<(Framing, bool), &'static str> {
    let mut reusable = if http10 {
        connection.keep_alive
    } else {
        !connection.close
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Ok((Framing::Empty, false));
    }
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, reusable));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        let chunked_last = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .rfind(|t| !t.is_empty())
            .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        if headers.remove(CONTENT_LENGTH).is_some() {
            reusable = false;
        }
        return Ok(if chunked_last && !http10 {
            (Framing::Chunked, reusable)
        } else {
            (Framing::UntilClose, false)
        });
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let n = parse_length(item.trim_ascii()).ok_or("invalid upstream Content-Length")?;
            if length.is_some_and(|seen| seen != n) {
                return Err("conflicting upstream Content-Length values");
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(n) => (Framing::Length(n), reusable),
        None => (Framing::UntilClose, false),
    })
}

/// What a response's `Connection` fields (every line of them) say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionTokens {
    /// `close` is listed.
    pub close: bool,
    /// `keep-alive` is listed.
    pub keep_alive: bool,
    /// Nothing but `close` and `keep-alive` is listed (or there is no `Connection` at
    /// all), so the fields name no other header to remove.
    pub only_persistence: bool,
}

impl ConnectionTokens {
    /// The tokens of every `Connection` field in `fields`, in any case.
    pub fn of(fields: &[httparse::Header<'_>]) -> ConnectionTokens {
        let mut tokens = ConnectionTokens {
            close: false,
            keep_alive: false,
            only_persistence: true,
        };
        let values = fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("connection"))
            .flat_map(|f| f.value.split(|&b| b == b','));
        for token in values.map(<[u8]>::trim_ascii) {
            if token.eq_ignore_ascii_case(b"close") {
                tokens.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                tokens.keep_alive = true;
            } else if !token.is_empty() {
                tokens.only_persistence = false;
            }
        }
        tokens
    }
}

/// A decimal length: digits only, no sign, no overflow.
fn parse_length(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(head: &[u8]) -> ConnectionTokens {
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut slots);
        assert!(response.parse(head).unwrap().is_complete());
        ConnectionTokens::of(response.headers)
    }

    #[test]
    fn connection_tokens_come_from_every_line_in_any_case() {
        let none = tokens(b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\n");
        assert_eq!(
            (none.close, none.keep_alive, none.only_persistence),
            (false, false, true)
        );
        let both =
            tokens(b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nconnection: , CLOSE \r\n\r\n");
        assert_eq!(
            (both.close, both.keep_alive, both.only_persistence),
            (true, true, true)
        );
        let named = tokens(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\n\r\n");
        assert_eq!(
            (named.close, named.keep_alive, named.only_persistence),
            (false, true, false)
        );
        let upgrade = tokens(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n");
        assert!(!upgrade.only_persistence);
    }
}

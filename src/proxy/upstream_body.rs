//! The body of a response read straight off an upstream connection while the client is
//! sent it: length-delimited, chunked (with trailers) or delimited by the upstream closing.
//! When the body has been read to its end and nothing follows it, the connection goes
//! back to its link for the next request; a body dropped part-way closes it.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use hyper::body::{Frame, SizeHint};

use super::link::Home;
use super::upstream_conn::{Framing, MAX_HEAD_BYTES, UpstreamConn};
use crate::BoxError;

/// The longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// The most trailer fields accepted.
const MAX_TRAILERS: usize = 32;

/// A response body streamed from an upstream connection.
#[derive(Debug)]
pub struct UpstreamBody {
    conn: Option<UpstreamConn>,
    state: State,
    /// The response allows another request on the connection once the body is read.
    reusable: bool,
    home: Option<Home>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes still to come.
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// This many bytes of the current chunk still to come.
    ChunkData(u64),
    /// Expecting the CRLF that ends a chunk's data.
    ChunkEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
    /// Everything until the upstream closes.
    UntilClose,
    /// The body has ended.
    Done,
}

/// What one step over the buffered bytes produced.
enum Step {
    Frame(Frame<Bytes>),
    /// More bytes are needed.
    More,
}

impl UpstreamBody {
    /// The body that follows a response head on `conn`; `home` takes the connection back
    /// when the body has ended, if `reusable`.
    pub(crate) fn new(
        conn: UpstreamConn,
        framing: Framing,
        reusable: bool,
        home: Home,
    ) -> UpstreamBody {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = UpstreamBody {
            conn: Some(conn),
            state,
            reusable,
            home: Some(home),
        };
        if body.state == State::Done {
            body.finish();
        }
        body
    }

    /// The body has ended: the connection goes home if it can carry another request.
    fn finish(&mut self) {
        self.state = State::Done;
        if let (Some(conn), Some(home)) = (self.conn.take(), self.home.take()) {
            // Bytes after the end of the body mean the upstream and tollgate disagree on
            // where this response ended: never reuse such a connection.
            if self.reusable && conn.buf.is_empty() {
                home.put(conn);
            }
        }
    }

    /// Fails the body; the connection is closed.
    fn fail(&mut self, error: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = State::Done;
        self.conn = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match step(&mut this.state, &mut conn.buf) {
                Ok(Step::Frame(frame)) => {
                    if this.state == State::Done {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(Step::More) if this.state == State::Done => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::More) => {}
                Err(e) => return this.fail(e.into()),
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if this.state == State::UntilClose => {
                    this.reusable = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail("upstream closed the connection mid-body".into()),
                Ok(_) => {}
                Err(e) => return this.fail(e.into()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// Advances `state` over the bytes in `buf`, consuming what it uses.
fn step(state: &mut State, buf: &mut BytesMut) -> Result<Step, &'static str> {
    loop {
        match *state {
            State::Done => return Ok(Step::More),
            State::Length(n) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let (frame, left) = take_data(buf, n);
                *state = if left == 0 {
                    State::Done
                } else {
                    State::Length(left)
                };
                return Ok(Step::Frame(frame));
            }
            State::UntilClose => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                return Ok(Step::Frame(Frame::data(buf.split().freeze())));
            }
            State::ChunkSize => {
                let Some(eol) = find_crlf(buf, MAX_CHUNK_LINE) else {
                    if buf.len() > MAX_CHUNK_LINE {
                        return Err("upstream chunk-size line too long");
                    }
                    return Ok(Step::More);
                };
                let size = chunk_size(&buf[..eol]).ok_or("malformed upstream chunk size")?;
                buf.advance(eol + 2);
                *state = if size == 0 {
                    State::Trailers
                } else {
                    State::ChunkData(size)
                };
            }
            State::ChunkData(n) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let (frame, left) = take_data(buf, n);
                *state = if left == 0 {
                    State::ChunkEnd
                } else {
                    State::ChunkData(left)
                };
                return Ok(Step::Frame(frame));
            }
            State::ChunkEnd => {
                if buf.len() < 2 {
                    return Ok(Step::More);
                }
                if &buf[..2] != b"\r\n" {
                    return Err("upstream chunk data not followed by CRLF");
                }
                buf.advance(2);
                *state = State::ChunkSize;
            }
            State::Trailers => {
                if buf.len() < 2 {
                    return Ok(Step::More);
                }
                if buf.starts_with(b"\r\n") {
                    buf.advance(2);
                    *state = State::Done;
                    return Ok(Step::More);
                }
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    if buf.len() > MAX_HEAD_BYTES {
                        return Err("upstream trailers too large");
                    }
                    return Ok(Step::More);
                };
                let trailers = parse_trailers(&buf[..end + 4])?;
                buf.advance(end + 4);
                *state = State::Done;
                return Ok(Step::Frame(Frame::trailers(trailers)));
            }
        }
    }
}

/// Up to `n` of the buffered bytes as a data frame, and how many of the `n` are left.
fn take_data(buf: &mut BytesMut, n: u64) -> (Frame<Bytes>, u64) {
    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
    (Frame::data(buf.split_to(take).freeze()), n - take as u64)
}

/// Where the first CRLF in `buf` starts, looking no further than `limit` bytes.
fn find_crlf(buf: &[u8], limit: usize) -> Option<usize> {
    let window = &buf[..buf.len().min(limit + 2)];
    window.windows(2).position(|w| w == b"\r\n")
}

/// The size in a chunk-size line: hex digits, then optional blanks and chunk extensions
/// (`;name=value`). Extensions are ignored, as RFC 9112 §7.1.1 asks.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    // 15 hex digits cannot overflow a u64.
    if digits == 0 || digits > 15 {
        return None;
    }
    let rest = &line[digits..];
    let after_blanks = rest.trim_ascii_start();
    let extensions_ok = after_blanks.is_empty()
        || (after_blanks.starts_with(b";")
            && rest
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)));
    if !extensions_ok {
        return None;
    }
    let text = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// Trailer fields (a field block ending in an empty line).
fn parse_trailers(block: &[u8]) -> Result<HeaderMap, &'static str> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_TRAILERS];
    let fields = match httparse::parse_headers(block, &mut slots) {
        Ok(httparse::Status::Complete((_, fields))) => fields,
        _ => return Err("malformed upstream trailers"),
    };
    let mut trailers = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| "bad upstream trailer name")?;
        let value = HeaderValue::from_bytes(field.value).map_err(|_| "bad upstream trailer")?;
        trailers.append(name, value);
    }
    Ok(trailers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the decoder over `input` fed in pieces of `piece` bytes; returns the body
    /// bytes, the trailers and whether it reached the end with nothing left over.
    fn decode(
        mut state: State,
        input: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, Option<HeaderMap>, bool), &'static str> {
        let mut buf = BytesMut::new();
        let (mut body, mut trailers) = (Vec::new(), None);
        for part in input.chunks(piece.max(1)) {
            buf.extend_from_slice(part);
            while let Step::Frame(frame) = step(&mut state, &mut buf)? {
                match frame.into_data() {
                    Ok(data) => body.extend_from_slice(&data),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                }
            }
        }
        Ok((body, trailers, state == State::Done && buf.is_empty()))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let input = b"5\r\nhello\r\n1;name=value\r\n \r\nA \t;x\r\n0123456789\r\n0\r\n\r\n";
        for piece in [1, 2, 3, 7, input.len()] {
            let (body, trailers, ended) = decode(State::ChunkSize, input, piece).unwrap();
            assert_eq!(body, b"hello 0123456789", "piece {piece}");
            assert!(trailers.is_none());
            assert!(ended);
        }
    }

    #[test]
    fn chunked_trailers_become_a_trailers_frame() {
        let input = b"3\r\nabc\r\n0\r\nServer-Timing: db;dur=5\r\nX-Sum: 1\r\n\r\n";
        for piece in [1, 5, input.len()] {
            let (body, trailers, ended) = decode(State::ChunkSize, input, piece).unwrap();
            assert_eq!(body, b"abc");
            let trailers = trailers.expect("trailers");
            assert_eq!(trailers["server-timing"], "db;dur=5");
            assert_eq!(trailers["x-sum"], "1");
            assert!(ended);
        }
    }

    #[test]
    fn malformed_chunking_is_an_error() {
        for bad in [
            &b"g\r\nhello\r\n0\r\n\r\n"[..],
            b"\r\n",
            b"-1\r\n",
            b"5 x\r\nhello\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"1000000000000000\r\n",
            b"5;\x01\r\nhello\r\n",
        ] {
            assert!(decode(State::ChunkSize, bad, bad.len()).is_err(), "{bad:?}");
        }
        let long = [b'1'; MAX_CHUNK_LINE + 10];
        assert!(decode(State::ChunkSize, &long, long.len()).is_err());
    }

    #[test]
    fn a_length_delimited_body_ends_at_its_length() {
        let (body, _, ended) = decode(State::Length(5), b"hello", 2).unwrap();
        assert_eq!(body, b"hello");
        assert!(ended);
        // What follows the body is left in the buffer (and makes the connection unusable).
        let (body, _, ended) = decode(State::Length(3), b"abcdef", 6).unwrap();
        assert_eq!(body, b"abc");
        assert!(!ended);
    }

    #[test]
    fn chunk_sizes_parse_as_hex_with_extensions_ignored() {
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b"fF"), Some(255));
        assert_eq!(chunk_size(b"10;a=b;c"), Some(16));
        assert_eq!(chunk_size(b"10 ;a"), Some(16));
        assert_eq!(chunk_size(b"fffffffffffffff"), Some(0xfff_ffff_ffff_ffff));
        assert_eq!(chunk_size(b"10 "), Some(16));
        assert_eq!(chunk_size(b"0x10"), None);
        assert_eq!(chunk_size(b""), None);
    }
}

//! HTTP/1.1 requests without a body, served directly: the head is parsed in place with
//! httparse, the gateway answers, and the response goes out in as few writes as its body
//! allows (one, when the body is already at hand). Nearly all proxied traffic is such
//! requests, and serving them without a general-purpose HTTP stack is much of what makes
//! an authenticated request cost no more than a plain proxy's.
//!
//! Everything else hands the connection, with every byte read so far, to hyper's HTTP/1
//! server for the rest of its life, which then answers exactly as it would have from the
//! start: a request with a body (`Content-Length` or `Transfer-Encoding`), `Expect`, an
//! upgrade, HTTP/1.0, a request target that is not a path, and anything malformed or too
//! large (hyper gives those their 400 or 431).

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, StatusCode, Uri, response};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body as _, Frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::sniff::Sniffed;
use crate::deadline::Deadline;
use crate::gateway::authenticate::TokenFields;
use crate::gateway::handle::{ConnInfo, Gateway};
use crate::http1::{LocatedFields, MAX_HEADERS};
use crate::proxy::link::UpstreamLink;
use crate::proxy::passed::PassedFields;
use crate::write_buffer::WriteBuffer;
use crate::{Body, BoxError, http1};

/// How much is read from the client at once.
const READ_CHUNK: usize = 8 * 1024;
/// Response bytes gathered before they are written out.
const WRITE_BATCH: usize = 64 * 1024;
/// Body data at least this large is written as it is rather than copied into the batch.
const WRITE_THROUGH: usize = 16 * 1024;

/// How a connection left the direct path.
pub(crate) enum Served<IO> {
    /// It is finished (closed by either side, timed out, or drained).
    Closed,
    /// hyper serves the rest; everything read so far will be read again.
    HandOver(Sniffed<IO>),
}

/// What the direct path enforces while reading a request head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    /// How long a request head may take, counted from when the connection is ready for it.
    pub read_timeout: Duration,
    /// The largest request head.
    pub max_bytes: usize,
}

/// A request read by the direct path.
struct Incoming {
    request: Request<Body>,
    /// The client asked to close the connection after this request.
    close: bool,
    /// The request's one `Authorization` field, kept beside its header map (see
    /// [`Gateway::respond`]).
    authorization: Option<Bytes>,
}

/// The last response's header map and extensions, emptied, and reused for the next
/// request: they keep the room they grew (the upstream client puts the response into the
/// request's, see `upstream_conn.rs`).
#[derive(Default)]
struct Spare {
    headers: HeaderMap,
    extensions: http::Extensions,
    located: LocatedFields,
}

/// What reading the next request head came to.
// Moved once per request; boxing the request would cost an allocation each time instead.
#[allow(clippy::large_enum_variant)]
enum Next {
    /// A request the direct path serves; `close` when the client asked to close after it.
    Request(Incoming),
    /// More bytes are needed.
    Partial,
    /// A request for hyper.
    HandOver,
    /// The connection is done.
    Closed,
}

/// Serves requests on `io` until the connection ends or a request needs hyper.
pub(crate) async fn serve<IO>(
    mut io: Sniffed<IO>,
    conn: &ConnInfo,
    limits: HeadLimits,
    gateway: &Gateway,
    link: &UpstreamLink,
    stop: &CancellationToken,
) -> Served<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut spare = Spare::default();
    let mut head_deadline = Deadline::new();
    // Waited on beside every head read; kept, so it is not set up anew each time.
    let mut stopping = std::pin::pin!(stop.cancelled());
    loop {
        let reading = Reading {
            limits,
            deadline: &mut head_deadline,
            stopping: stopping.as_mut(),
        };
        let next = next_head(&mut io, &mut buf, &mut spare, reading).await;
        let Incoming {
            request,
            close: asked_close,
            authorization,
        } = match next {
            Next::Request(incoming) => incoming,
            Next::HandOver => {
                io.unread(&buf);
                return Served::HandOver(io);
            }
            Next::Partial | Next::Closed => return Served::Closed,
        };
        let head_request = request.method() == Method::HEAD;
        // Some of the upstream's fields may come beside the map; `write_response` writes them.
        let (response, token_fields) = gateway
            .respond(request, authorization, conn.clone(), Some(link))
            .await;
        let close = asked_close || stop.is_cancelled();
        let (parts, body) = response.into_parts();
        let beside = Beside {
            token: token_fields.as_ref(),
            close,
        };
        let written = write_response(&mut io, &parts, body, head_request, beside).await;
        // Values hold on to the buffers they were read into; let those go now.
        spare.headers = parts.headers;
        spare.extensions = parts.extensions;
        spare.headers.clear();
        spare.extensions.clear();
        if close || written.is_err() {
            if let Err(e) = written {
                tracing::debug!(peer = %conn.peer, error = %e, "response not sent in full");
            }
            let _ = io.shutdown().await;
            return Served::Closed;
        }
    }
}

/// What bounds the reading of one request head.
struct Reading<'a, 's> {
    limits: HeadLimits,
    /// The connection's timer for head reads.
    deadline: &'a mut Deadline,
    /// Ready once the server drains.
    stopping: Pin<&'a mut WaitForCancellationFuture<'s>>,
}

/// Reads until `buf` starts with a complete request head, within the header timeout;
/// a drain (`stopping`) ends a connection that is between requests.
async fn next_head<IO>(
    io: &mut Sniffed<IO>,
    buf: &mut BytesMut,
    spare: &mut Spare,
    Reading {
        limits,
        deadline,
        stopping,
    }: Reading<'_, '_>,
) -> Next
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    // A pipelined request may already be here in full.
    match parse_head(buf, spare) {
        Next::Partial => {}
        next => return next,
    }
    let reading = async {
        loop {
            if buf.len() >= limits.max_bytes {
                return Next::HandOver;
            }
            buf.reserve(READ_CHUNK);
            match io.read_buf(buf).await {
                Ok(0) | Err(_) => return Next::Closed,
                Ok(_) => {}
            }
            match parse_head(buf, spare) {
                Next::Partial => {}
                next => return next,
            }
        }
    };
    // The read comes first: a head already at hand is served without looking at the drain
    // (the response then closes the connection if one began), and the drain is only
    // waited on while the connection is idle.
    tokio::select! {
        biased;
        next = deadline.within(limits.read_timeout, reading) => next.unwrap_or(Next::Closed),
        () = stopping => Next::Closed,
    }
}

/// The request at the front of `buf`, consumed, if the direct path serves it.
fn parse_head(buf: &mut BytesMut, spare: &mut Spare) -> Next {
    // Uninitialised: httparse writes only the slots it fills.
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Next::Partial,
        Err(_) => return Next::HandOver,
    };
    let (Some(1), Some(method), Some(path)) = (parsed.version, parsed.method, parsed.path) else {
        return Next::HandOver;
    };
    if !path.starts_with('/') {
        return Next::HandOver;
    }
    let mut close = false;
    let (mut authorizations, mut authorization_is_hop) = (0, false);
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        // Anything that could mean a body or a change of protocol is hyper's to handle.
        let hyper_handles = ["content-length", "transfer-encoding", "expect", "upgrade"];
        if hyper_handles
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        {
            return Next::HandOver;
        }
        if name.eq_ignore_ascii_case(b"connection") {
            close |= http1::lists_token([field.value], b"close");
            authorization_is_hop |= http1::lists_token([field.value], b"authorization");
        }
        if name.eq_ignore_ascii_case(b"authorization") {
            authorizations += 1;
        }
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Next::HandOver;
    };
    let base = buf.as_ptr() as usize;
    let span = |part: &[u8]| http1::span_at(base, part);
    let path_span = span(path.as_bytes());
    // A lone `Authorization` goes beside the map: it is read once, to authenticate, and is
    // then usually dropped, so building (and checking) a header value of it would be
    // wasted. Several, or one that `Connection` names, stay in the map for the general
    // rules to deal with.
    let lift = authorizations == 1 && !authorization_is_hop;
    let mut authorization_span = None;
    let keep = |field: &httparse::Header<'_>| {
        if lift && field.name.eq_ignore_ascii_case("authorization") {
            authorization_span = Some(span(field.value));
            return false;
        }
        true
    };
    if spare.located.locate(buf, parsed.headers, keep).is_err() {
        return Next::HandOver;
    }
    let head = buf.split_to(len).freeze();
    let mut headers = std::mem::take(&mut spare.headers);
    let filled = spare.located.fill(&mut headers, &head);
    let built = Uri::from_maybe_shared(head.slice(path_span)).ok();
    let (Some(uri), Ok(())) = (built, filled) else {
        // Put the head back for hyper to read again.
        let mut restored = BytesMut::from(&head[..]);
        restored.extend_from_slice(buf);
        *buf = restored;
        return Next::HandOver;
    };
    let mut request = Request::new(empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    // Empty; the upstream client reuses it for the response's extensions.
    *request.extensions_mut() = std::mem::take(&mut spare.extensions);
    Next::Request(Incoming {
        request,
        close,
        authorization: authorization_span.map(|span| head.slice(span)),
    })
}

/// The body of a request that has none (no allocation: the box holds nothing).
fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// What a response's head carries beside its map: the current token's fields, and whether
/// the connection closes after it.
struct Beside<'a> {
    token: Option<&'a TokenFields>,
    close: bool,
}

/// How the response body is framed on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body is sent (`HEAD`, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// Writes `response`, gathered in the thread's [`WriteBuffer`]. A body that fails, or
/// disagrees with its own `Content-Length`, is an error: the connection must then close, so
/// the client cannot take a cut-off body for a complete one.
async fn write_response<IO>(
    io: &mut IO,
    parts: &response::Parts,
    mut body: Body,
    head_request: bool,
    Beside { token, close }: Beside<'_>,
) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    let status = parts.status;
    let mut out = WriteBuffer::lend();
    let out = &mut *out;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut framing = match parts.headers.get(CONTENT_LENGTH) {
        _ if bodiless => Framing::None,
        Some(declared) => Framing::Length(
            std::str::from_utf8(declared.as_bytes())
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| io::Error::other("unusable Content-Length on a response"))?,
        ),
        None => match body.size_hint().exact() {
            Some(n) => {
                let _ = write!(out, "content-length: {n}\r\n");
                Framing::Length(n)
            }
            None if head_request => Framing::None,
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
        },
    };
    for (name, value) in &parts.headers {
        // Framing and the connection's fate are this hop's own, written above and below.
        if name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let passed = parts.extensions.get::<PassedFields>();
    if let Some(passed) = passed {
        passed.write_to(out);
    }
    if let Some(token) = token {
        token.write_to(out);
    }
    if !(passed.is_some_and(PassedFields::has_date) || parts.headers.contains_key(DATE)) {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(http1::date().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if head_request {
        framing = Framing::None;
    }
    if framing == Framing::None {
        return io.write_all(out).await;
    }
    let mut sent = 0u64;
    loop {
        // Frames at hand join what is already gathered; before waiting for one, whatever is
        // gathered goes out, so a slow body never holds back what came before it.
        let frame = match poll_at_hand(&mut body) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !out.is_empty() {
                    io.write_all(out).await?;
                    out.clear();
                }
                body.frame().await
            }
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(io::Error::other)?;
        let Ok(data) = frame.into_data() else {
            // Trailers: the client did not ask for them on this path.
            continue;
        };
        sent += data.len() as u64;
        match framing {
            Framing::Length(n) if sent > n => {
                return Err(io::Error::other("response body longer than its length"));
            }
            Framing::Length(_) if data.len() >= WRITE_THROUGH => {
                if !out.is_empty() {
                    io.write_all(out).await?;
                    out.clear();
                }
                io.write_all(&data).await?;
            }
            Framing::Chunked if !data.is_empty() => {
                let _ = write!(out, "{:x}\r\n", data.len());
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            }
            _ => out.extend_from_slice(&data),
        }
        if out.len() >= WRITE_BATCH {
            io.write_all(out).await?;
            out.clear();
        }
    }
    match framing {
        Framing::Length(n) if sent != n => {
            return Err(io::Error::other("response body shorter than its length"));
        }
        Framing::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        _ => {}
    }
    io.write_all(out).await
}

/// The body's next frame if it is already at hand.
fn poll_at_hand(body: &mut Body) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(body).poll_frame(&mut cx)
}

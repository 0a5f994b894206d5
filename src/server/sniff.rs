//! Protocol detection for a new connection: HTTP/2 (the client preface) or HTTP/1.x.
//! Done here rather than inside the HTTP stack so the header read timeout also covers a
//! client that connects and sends too little to tell which protocol it speaks.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a client opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or HTTP/1.1.
    Http1,
    /// HTTP/2 (prior knowledge or ALPN).
    Http2,
}

/// A stream whose first bytes were read for detection and are replayed to the next reader.
#[derive(Debug)]
pub struct Sniffed<IO> {
    io: IO,
    buffer: Vec<u8>,
    replayed: usize,
}

impl<IO: AsyncRead + Unpin> Sniffed<IO> {
    /// Wraps a fresh connection.
    pub fn new(io: IO) -> Sniffed<IO> {
        Sniffed {
            io,
            buffer: Vec::with_capacity(H2_PREFACE.len()),
            replayed: 0,
        }
    }

    /// Puts `bytes` back in front of whatever is still to be replayed: the next reader
    /// gets them first.
    pub fn unread(&mut self, bytes: &[u8]) {
        let mut buffer = Vec::with_capacity(bytes.len() + self.buffer.len() - self.replayed);
        buffer.extend_from_slice(bytes);
        buffer.extend_from_slice(&self.buffer[self.replayed..]);
        self.buffer = buffer;
        self.replayed = 0;
    }

    /// Reads just enough to tell HTTP/2's preface from anything else.
    pub async fn detect(&mut self) -> io::Result<Protocol> {
        loop {
            if !H2_PREFACE.starts_with(&self.buffer) {
                return Ok(Protocol::Http1);
            }
            if self.buffer.len() == H2_PREFACE.len() {
                return Ok(Protocol::Http2);
            }
            let mut chunk = [0u8; 24];
            let want = H2_PREFACE.len() - self.buffer.len();
            let n = self.io.read(&mut chunk[..want]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Sniffed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.replayed < this.buffer.len() {
            let rest = &this.buffer[this.replayed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.replayed += n;
            if this.replayed == this.buffer.len() {
                this.buffer = Vec::new();
                this.replayed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Sniffed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn detect(bytes: &[u8]) -> (io::Result<Protocol>, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(bytes).await.unwrap();
        drop(client);
        let mut sniffed = Sniffed::new(server);
        let protocol = sniffed.detect().await;
        let mut replay = Vec::new();
        sniffed.read_to_end(&mut replay).await.unwrap();
        (protocol, replay)
    }

    #[tokio::test]
    async fn http1_is_told_apart_after_one_byte_and_replayed_whole() {
        let (p, replay) = detect(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(p.unwrap(), Protocol::Http1);
        assert_eq!(replay, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[tokio::test]
    async fn http2_preface() {
        let mut bytes = H2_PREFACE.to_vec();
        bytes.extend_from_slice(b"\x00\x00");
        let (p, replay) = detect(&bytes).await;
        assert_eq!(p.unwrap(), Protocol::Http2);
        assert_eq!(replay, bytes);
    }

    #[tokio::test]
    async fn a_truncated_preface_is_an_error() {
        let (p, _) = detect(b"PRI * HTTP").await;
        assert!(p.is_err());
    }
}

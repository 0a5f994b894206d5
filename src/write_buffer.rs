//! The buffer a message head is gathered in before it is written, lent by the thread.
//!
//! A serving thread writes for many connections, one message at a time, and nearly every
//! write completes at once. When each connection kept its own buffer, a thread with tens of
//! connections touched a different few kilobytes for every response, and at 64
//! connections those had fallen out of the CPU's cache by the time their connection came
//! round again. Lent from the thread instead, the same buffer serves every connection and
//! stays in cache. A buffer still held when another message needs one (a write waiting on
//! a slow client) leaves the next borrower to allocate its own; only one goes back.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};

/// The room a buffer is first given.
const INITIAL: usize = 8 * 1024;
/// The largest buffer a thread keeps; one grown past this (a large body gathered) is freed.
const KEPT: usize = 16 * 1024;

thread_local! {
    /// The thread's idle buffer, or an empty `Vec` (no allocation) while it is lent.
    static IDLE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A buffer borrowed from the thread, empty when lent; it goes back when dropped.
#[derive(Debug)]
pub(crate) struct WriteBuffer(Vec<u8>);

impl WriteBuffer {
    /// The thread's idle buffer, or a new one while that is lent.
    pub(crate) fn lend() -> WriteBuffer {
        let mut buf = IDLE.try_with(Cell::take).unwrap_or_default();
        if buf.capacity() == 0 {
            buf.reserve(INITIAL);
        }
        WriteBuffer(buf)
    }
}

impl Drop for WriteBuffer {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() > KEPT {
            return;
        }
        buf.clear();
        // Only into an empty slot; on a thread already shutting down the buffer is freed.
        let _ = IDLE.try_with(|idle| {
            let held = idle.take();
            idle.set(if held.capacity() == 0 { buf } else { held });
        });
    }
}

impl Deref for WriteBuffer {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for WriteBuffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_lends_one_buffer_again_and_again() {
        let first = {
            let mut buf = WriteBuffer::lend();
            assert!(buf.is_empty() && buf.capacity() >= INITIAL);
            buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            buf.as_ptr()
        };
        let again = WriteBuffer::lend();
        assert_eq!(again.as_ptr(), first, "the same allocation comes back");
        assert!(again.is_empty(), "and comes back empty");
    }

    #[test]
    fn a_buffer_lent_out_is_not_lent_twice_and_the_first_back_is_kept() {
        let a = WriteBuffer::lend();
        let b = WriteBuffer::lend();
        assert_ne!(a.as_ptr(), b.as_ptr());
        let first_back = a.as_ptr();
        drop(a);
        drop(b);
        let c = WriteBuffer::lend();
        assert_eq!(c.as_ptr(), first_back, "the first returned is kept");
    }

    #[test]
    fn a_grown_buffer_is_freed_not_kept() {
        {
            let mut buf = WriteBuffer::lend();
            buf.resize(KEPT + 1, b'x');
        }
        let next = WriteBuffer::lend();
        assert!(next.capacity() <= KEPT, "{}", next.capacity());
    }
}

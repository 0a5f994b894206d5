//! Upstream connections owned by one downstream HTTP/1.1 connection.
//!
//! An HTTP/1.1 client connection carries one request at a time, so it never needs more than
//! one upstream connection per upstream at once. Keeping that connection with the
//! downstream one takes the shared pool (its lock, its bookkeeping, and task switches) off
//! the request path: the task serving the client writes the request upstream, reads the
//! response head, and streams the body to the client from the same connection
//! (`upstream_conn.rs`, `upstream_body.rs`). The upstream connections close when the
//! downstream connection does.
//!
//! The link carries requests without a body, which is nearly all proxied traffic.
//! Requests with a body, HTTP/2 clients and protocol upgrades use the shared pool
//! (`client.rs`), whose client streams request bodies while reading the response.

use std::borrow::{Borrow, BorrowMut};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Body as _;

use super::added::AddedFields;
use super::upstream_body::UpstreamBody;
use super::upstream_conn::{ExchangeError, UpstreamConn};
use crate::deadline::{Deadline, Within};
use crate::gateway::route::Upstream;
use crate::{Body, BoxError};

/// Idle upstream connections one downstream connection keeps (one per upstream it used
/// most recently); more would only hold file descriptors.
const MAX_IDLE: usize = 4;

/// Idle connections, most recently used last.
type Idle = Arc<Mutex<Vec<(Authority, UpstreamConn)>>>;

/// The upstream connections of one downstream connection.
#[derive(Default)]
pub struct UpstreamLink {
    idle: Idle,
    /// The timer for the route timeout, kept from request to request.
    deadline: Mutex<Deadline>,
}

impl std::fmt::Debug for UpstreamLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamLink")
            .field("idle", &lock(&self.idle).len())
            .field("deadline", &lock(&self.deadline))
            .finish()
    }
}

/// Where a connection goes when the response it carries has been read to the end.
#[derive(Debug)]
pub(crate) struct Home {
    idle: Idle,
    authority: Authority,
}

impl Home {
    /// Keeps `conn` for the next request to the same upstream.
    pub(crate) fn put(self, conn: UpstreamConn) {
        let mut idle = lock(&self.idle);
        if idle.len() >= MAX_IDLE {
            // Dropping the oldest closes it.
            idle.remove(0);
        }
        idle.push((self.authority, conn));
    }
}

impl UpstreamLink {
    /// A link with no connections yet.
    pub fn new() -> UpstreamLink {
        UpstreamLink::default()
    }

    /// Whether the link carries `request`: one without a body.
    pub fn carries(request: &Request<Body>) -> bool {
        request.body().is_end_stream()
    }

    /// Sends `request` (one the link [`carries`](Self::carries), absolute URI as the shared
    /// pool takes it), with the fields tollgate `added`, to `upstream` on this link's connection, opening one if there is
    /// none or the kept one closed. An idempotent request that a kept connection closed on
    /// before answering is sent once more on a new connection (RFC 9110 §9.2.2).
    pub async fn send(
        &self,
        upstream: &Upstream,
        request: Request<Body>,
        added: &AddedFields,
    ) -> Result<Response<Body>, BoxError> {
        let (mut parts, _empty) = request.into_parts();
        let authority = &upstream.authority;
        let mut kept = self.take_idle(authority).await;
        loop {
            let reused = kept.is_some();
            let mut conn = match kept.take() {
                Some(conn) => conn,
                // Boxed: connecting is rare, and its future would otherwise enlarge (and be
                // moved with) every request's.
                None => Box::pin(UpstreamConn::connect(authority)).await?,
            };
            match conn.exchange(&mut parts, added, authority).await {
                Ok(head) => {
                    let home = Home {
                        idle: self.idle.clone(),
                        authority: authority.clone(),
                    };
                    let body = UpstreamBody::new(conn, head.framing, head.reusable, home);
                    return Ok(Response::from_parts(head.parts, body.boxed()));
                }
                Err(ExchangeError::Closed(_)) if reused && parts.method.is_idempotent() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A future giving `work`'s output if it finishes within `limit`, timed by the link's
    /// kept timer (see [`Deadline`]), else `None`.
    pub(crate) fn within<F: Future>(
        &self,
        limit: Duration,
        work: F,
    ) -> Within<LentDeadline<'_>, F> {
        // Taken out for the wait rather than locked across it, and put back when the wait
        // ends or is dropped.
        let deadline = std::mem::take(&mut *lock(&self.deadline));
        Within::new(
            LentDeadline {
                home: &self.deadline,
                deadline,
            },
            limit,
            work,
        )
    }

    /// The most recently used idle connection to `authority` that is still open.
    async fn take_idle(&self, authority: &Authority) -> Option<UpstreamConn> {
        loop {
            let mut conn = {
                let mut idle = lock(&self.idle);
                // Kept connections were filed under the route's own authority, so the bytes
                // match exactly; `Authority`'s `==` would compare them case-insensitively.
                let at = idle
                    .iter()
                    .rposition(|(a, _)| a.as_str() == authority.as_str())?;
                idle.remove(at).1
            };
            if std::future::poll_fn(|cx| Poll::Ready(conn.still_open(cx))).await {
                return Some(conn);
            }
        }
    }
}

/// A link's timer, out of its lock for one wait; dropping it puts it back.
pub(crate) struct LentDeadline<'a> {
    home: &'a Mutex<Deadline>,
    deadline: Deadline,
}

impl Borrow<Deadline> for LentDeadline<'_> {
    fn borrow(&self) -> &Deadline {
        &self.deadline
    }
}

impl BorrowMut<Deadline> for LentDeadline<'_> {
    fn borrow_mut(&mut self) -> &mut Deadline {
        &mut self.deadline
    }
}

impl Drop for LentDeadline<'_> {
    fn drop(&mut self) {
        *lock(self.home) = std::mem::take(&mut self.deadline);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding either lock; what they guard stays consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_timer(link: &UpstreamLink) -> bool {
        lock(&link.deadline).is_armed()
    }

    #[tokio::test(start_paused = true)]
    async fn the_route_timer_goes_back_to_the_link_however_a_wait_ends() {
        let link = UpstreamLink::default();
        let limit = Duration::from_secs(30);
        assert!(!has_timer(&link));
        // Answered in time.
        assert_eq!(link.within(limit, async { 1 }).await, Some(1));
        assert!(has_timer(&link));
        // Timed out: the fired timer is kept and serves the next wait.
        let slow = tokio::time::sleep(Duration::from_secs(31));
        assert_eq!(link.within(limit, slow).await, None);
        assert!(has_timer(&link));
        assert_eq!(link.within(limit, async { 2 }).await, Some(2));
        // Dropped unfinished (the client went away): the timer is back all the same, and
        // the next wait gets the whole limit again.
        let waiting = link.within(limit, std::future::pending::<()>());
        assert!(!has_timer(&link), "lent out while the wait exists");
        drop(waiting);
        assert!(has_timer(&link));
        let slow = tokio::time::sleep(Duration::from_secs(29));
        assert_eq!(link.within(limit, slow).await, Some(()));
    }
}

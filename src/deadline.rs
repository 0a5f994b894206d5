//! One timer that a connection reuses for each of its successive waits of the same kind
//! (reading the next request head, waiting for an upstream's response head).
//!
//! A fresh `tokio::time::timeout` per wait puts a timer into the runtime's timer wheel on
//! first poll and takes it out again when dropped, under the driver's lock, on every
//! request. A kept timer is only moved: as long as each new deadline is no earlier than the
//! last (the same limit, measured from a later moment), moving it is one atomic update,
//! and the wheel sees it again only when the earlier deadline it was filed under passes.

use std::borrow::BorrowMut;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// A timer kept between waits; it is armed only by [`within`](Self::within).
#[derive(Debug)]
pub struct Deadline {
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// A deadline with no timer yet (one is made by the first wait).
    pub fn new() -> Deadline {
        Deadline { timer: None }
    }

    /// A future giving `work`'s output if it finishes within `limit` from now, else `None`
    /// (and `work` is dropped unfinished).
    pub fn within<F: Future>(&mut self, limit: Duration, work: F) -> Within<&mut Deadline, F> {
        Within::new(self, limit, work)
    }

    /// Whether a timer has been made (by a wait) and is held here.
    #[cfg(test)]
    pub fn is_armed(&self) -> bool {
        self.timer.is_some()
    }

    /// Moves the timer to `limit` from now, making it on first use.
    fn arm(&mut self, limit: Duration) {
        let due = Instant::now() + limit;
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(due),
            none => *none = Some(Box::pin(tokio::time::sleep_until(due))),
        }
    }
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline::new()
    }
}

pin_project! {
    /// `work` raced against a [`Deadline`] held as `D` (borrowed, or lent by an owner that
    /// takes it back when the wait is dropped).
    ///
    /// A plain struct rather than an `async fn`: an `async fn` keeps its `work` argument
    /// and the pinned copy it awaits side by side, so its future, and every future that
    /// awaits it, would carry `work` twice and be copied at that size on every request.
    #[must_use = "futures do nothing unless polled"]
    pub struct Within<D, F> {
        deadline: D,
        #[pin]
        work: F,
    }
}

impl<D: BorrowMut<Deadline>, F: Future> Within<D, F> {
    /// Arms `deadline` for `limit` from now and races `work` against it.
    pub fn new(mut deadline: D, limit: Duration, work: F) -> Within<D, F> {
        deadline.borrow_mut().arm(limit);
        Within { deadline, work }
    }
}

impl<D: BorrowMut<Deadline>, F: Future> Future for Within<D, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // Work first: a reply that is ready when the time is up still counts.
        if let Poll::Ready(done) = this.work.poll(cx) {
            return Poll::Ready(Some(done));
        }
        match &mut this.deadline.borrow_mut().timer {
            Some(timer) => timer.as_mut().poll(cx).map(|()| None),
            // Armed in `new`; never reached.
            None => Poll::Ready(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_wait_gets_the_whole_limit_again() {
        let mut deadline = Deadline::new();
        let limit = Duration::from_secs(10);
        for _ in 0..3 {
            // Nearly the whole limit, several times over: a timer that kept an earlier
            // deadline would fire during the second wait.
            let slow = tokio::time::sleep(Duration::from_secs(9));
            assert_eq!(deadline.within(limit, slow).await, Some(()));
        }
        let too_slow = tokio::time::sleep(Duration::from_secs(11));
        assert_eq!(deadline.within(limit, too_slow).await, None);
        // After firing, the timer serves the next wait as a new one.
        assert_eq!(deadline.within(limit, async { 7 }).await, Some(7));
        let too_slow = tokio::time::sleep(Duration::from_secs(11));
        assert_eq!(deadline.within(limit, too_slow).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_limit_than_the_last_still_holds() {
        let mut deadline = Deadline::new();
        let long = tokio::time::sleep(Duration::from_secs(1));
        assert_eq!(
            deadline.within(Duration::from_secs(30), long).await,
            Some(())
        );
        // The new deadline is earlier than the one the timer was filed under.
        let started = Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(deadline.within(Duration::from_secs(2), never).await, None);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}

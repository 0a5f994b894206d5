//! One timer that a connection reuses for each of its successive waits of the same kind
//! (reading the next request head, waiting for an upstream's response head).
//!
//! A fresh `tokio::time::timeout` per wait puts a timer into the runtime's timer wheel on
//! first poll and takes it out again when dropped, under the driver's lock, on every
//! request. A kept timer is only moved: as long as each new deadline is no earlier than the
//! last (the same limit, measured from a later moment), moving it is one atomic update,
//! and the wheel sees it again only when the earlier deadline it was filed under passes.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

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

    /// `work`'s output if it finishes within `limit` from now, else `None` (and `work` is
    /// dropped unfinished).
    pub async fn within<F: Future>(&mut self, limit: Duration, work: F) -> Option<F::Output> {
        let due = Instant::now() + limit;
        let timer = match &mut self.timer {
            Some(timer) => {
                timer.as_mut().reset(due);
                timer
            }
            none => none.insert(Box::pin(tokio::time::sleep_until(due))),
        };
        tokio::select! {
            biased;
            done = work => Some(done),
            () = timer.as_mut() => None,
        }
    }
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline::new()
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

//! Polling a client connection and its upstream connections as one task.
//!
//! The two halves of a proxied exchange wake each other: handing a request to the
//! upstream connection wakes it, and its response wakes the client side. Both live in the
//! same task, so such a wake would only make the scheduler poll the task again later.
//! [`Together`] notices wakes that happen while it is polling and polls again at once
//! instead; wakes that come from outside (sockets, timers) reach the task as usual.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// Rounds of polling per wake before yielding to other tasks, so that two halves that
/// keep waking each other cannot starve the rest of the thread.
const MAX_ROUNDS: usize = 8;

/// Polls a set of futures together; see the module docs.
pub(crate) struct Together {
    signal: Arc<Signal>,
    waker: Waker,
}

#[derive(Default)]
struct Signal {
    /// A wake arrived since the current round began.
    woken: AtomicBool,
    /// A round is in progress: wakes are noted, not passed on.
    polling: AtomicBool,
    /// The task's own waker, for wakes from outside a round.
    task: Mutex<Option<Waker>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(task) = task.as_ref() {
                task.wake_by_ref();
            }
        }
    }
}

impl Together {
    pub(crate) fn new() -> Together {
        let signal = Arc::new(Signal::default());
        let waker = Waker::from(signal.clone());
        Together { signal, waker }
    }

    /// Runs `round` (which polls everything once with the context it is given) until it is
    /// ready or a round passes in which nothing woke it.
    pub(crate) fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        mut round: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        {
            let mut task = self
                .signal
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        let mut inner = Context::from_waker(&self.waker);
        for _ in 0..MAX_ROUNDS {
            self.signal.woken.store(false, Ordering::SeqCst);
            self.signal.polling.store(true, Ordering::SeqCst);
            let result = round(&mut inner);
            self.signal.polling.store(false, Ordering::SeqCst);
            if result.is_ready() {
                return result;
            }
            // A wake after `polling` went false has already reached the task itself.
            if !self.signal.woken.swap(false, Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts how often the task itself is woken.
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A task waker that counts its wakes.
    fn counted_task() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_wake_during_a_round_polls_again_without_waking_the_task() {
        let (count, task) = counted_task();
        let mut cx = Context::from_waker(&task);
        let together = Together::new();
        let mut rounds = 0;
        let result = together.poll(&mut cx, |inner| {
            rounds += 1;
            if rounds < 3 {
                inner.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(rounds)
            }
        });
        assert_eq!(result, Poll::Ready(3));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_wake_from_outside_reaches_the_task() {
        let (count, task) = counted_task();
        let mut cx = Context::from_waker(&task);
        let together = Together::new();
        let mut kept = None;
        let result: Poll<()> = together.poll(&mut cx, |inner| {
            kept = Some(inner.waker().clone());
            Poll::Pending
        });
        assert_eq!(result, Poll::Pending);
        kept.unwrap().wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn endless_mutual_wakes_yield_to_the_scheduler() {
        let (count, task) = counted_task();
        let mut cx = Context::from_waker(&task);
        let together = Together::new();
        let mut rounds = 0;
        let result: Poll<()> = together.poll(&mut cx, |inner| {
            rounds += 1;
            inner.waker().wake_by_ref();
            Poll::Pending
        });
        assert_eq!(result, Poll::Pending);
        assert_eq!(rounds, MAX_ROUNDS);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}

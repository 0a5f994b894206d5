//! Time as a parameter: everything that expires (sessions, tokens, cached user state) reads
//! the time through a `Clock`, so tests advance a `ManualClock` instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Time since the Unix epoch.
    fn now(&self) -> Duration;

    /// Whole seconds since the Unix epoch.
    fn now_secs(&self) -> u64 {
        self.now().as_secs()
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        // The coarse clock: at most one timer tick (a few milliseconds) behind, which
        // expiry counted in seconds never notices, and read without the cycle counter: 4 ns
        // a reading instead of 35 on a KVM guest, and a proxied request takes up to three.
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        // A clock set before 1970 is treated as the epoch rather than failing requests.
        match (u64::try_from(t.tv_sec), u32::try_from(t.tv_nsec)) {
            (Ok(secs), Ok(nanos)) => Duration::new(secs, nanos),
            _ => Duration::ZERO,
        }
    }
}

/// A clock that only moves when told to; starts at the current system time.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    /// A manual clock reading the system time now.
    pub fn new() -> ManualClock {
        let now = SystemClock.now().as_millis();
        ManualClock {
            millis: AtomicU64::new(u64::try_from(now).unwrap_or(u64::MAX)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_keeps_to_the_wall_clock() {
        use std::time::{SystemTime, UNIX_EPOCH};
        let wall = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let (before, read, after) = (wall(), SystemClock.now(), wall());
        // The coarse reading trails by at most a timer tick; allow a generous 100 ms.
        assert!(
            read <= after + Duration::from_millis(1),
            "{read:?} is after {after:?}"
        );
        assert!(
            before.saturating_sub(read) < Duration::from_millis(100),
            "{read:?} trails {before:?}"
        );
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - start, Duration::from_secs(90));
    }
}

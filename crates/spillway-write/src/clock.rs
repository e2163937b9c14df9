//! Time for the pipeline's timers: a [`Clock`] trait with the real [`SystemClock`] and a
//! [`ManualClock`] that moves only when a test tells it to.
//!
//! The pipeline reads time only through its clock, and never sleeps on it: a thread that waits
//! for a deadline blocks on a condition variable for at most [`Clock::real_wait`], and a clock
//! that moves by hand wakes it through the watchers registered with [`Clock::watch`]. So a test
//! on a [`ManualClock`] fires the interval trigger exactly when it advances the clock, without
//! sleeping. Invariant: `now` never goes backwards.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::sync::{Instant, Mutex};

/// Called when a clock that moves by hand has moved.
pub type ClockWatcher = Arc<dyn Fn() + Send + Sync>;

/// A monotonic clock.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Time since the clock's own origin; never decreases.
    fn now(&self) -> Duration;

    /// How long a thread may block, in real time, before `deadline` (in this clock's time) may
    /// have passed; `None` if no real-time bound is needed because the clock calls its watchers
    /// when it moves.
    fn real_wait(&self, deadline: Duration) -> Option<Duration>;

    /// Registers `watcher` to be called each time the clock moves other than with real time.
    /// Clocks that follow real time ignore it.
    fn watch(&self, watcher: ClockWatcher);
}

/// The real monotonic clock ([`std::time::Instant`]; the shuttle build's virtual clock under
/// `--cfg spillway_shuttle`).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn real_wait(&self, deadline: Duration) -> Option<Duration> {
        Some(deadline.saturating_sub(self.now()))
    }

    fn watch(&self, _watcher: ClockWatcher) {}
}

/// A clock that stands still until [`advance`](ManualClock::advance) moves it; clones share one
/// time. For deterministic tests of timers.
#[derive(Clone, Default)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Default)]
struct ManualInner {
    now: Mutex<Duration>,
    watchers: Mutex<Vec<ClockWatcher>>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward by `by` and wakes every watcher.
    pub fn advance(&self, by: Duration) {
        {
            let mut now = self.inner.now.lock();
            *now = now.saturating_add(by);
        }
        // Cloned out so that a watcher may take locks that a `watch` caller holds.
        let watchers: Vec<ClockWatcher> = self.inner.watchers.lock().clone();
        for w in watchers {
            w();
        }
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &*self.inner.now.lock())
            .finish_non_exhaustive()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.inner.now.lock()
    }

    fn real_wait(&self, _deadline: Duration) -> Option<Duration> {
        None
    }

    fn watch(&self, watcher: ClockWatcher) {
        self.inner.watchers.lock().push(watcher);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn manual_clock_moves_only_when_advanced_and_calls_watchers() {
        let clock = ManualClock::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        clock.watch(Arc::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(clock.now(), Duration::ZERO);
        assert_eq!(clock.real_wait(Duration::from_secs(5)), None);
        clock.advance(Duration::from_millis(30));
        clock.clone().advance(Duration::from_millis(20));
        assert_eq!(clock.now(), Duration::from_millis(50));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn system_clock_bounds_waits_by_the_deadline() {
        let clock = SystemClock::new();
        let far = clock.now() + Duration::from_secs(60);
        let wait = clock.real_wait(far).unwrap();
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(59));
        assert_eq!(clock.real_wait(Duration::ZERO), Some(Duration::ZERO));
    }
}

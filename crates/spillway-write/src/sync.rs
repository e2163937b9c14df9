//! Every primitive the pipeline synchronises with: locks, condition variables, the atomics that
//! take part in its protocol, threads, the clock that timed waits read, and the *words* blocked
//! waiters sleep on (see [`watermark`](crate::watermark)). The rest of the crate takes them from
//! here and from nowhere else, so this module is the one place where the choice is made:
//!
//! - normally they are the real ones, re-exported as they are (`parking_lot`'s locks and
//!   condition variables, `std`'s atomics, threads and [`Instant`]); nothing is wrapped, so the
//!   normal build behaves and performs as if it used them directly;
//! - under `--cfg spillway_shuttle` (through `RUSTFLAGS`) they are `shuttle`'s, behind thin
//!   wrappers with the `parking_lot` API the crate uses (`lock()` without poisoning,
//!   `Condvar::wait(&mut guard)`, `wait_for` and `wait_until`), so that
//!   `tests/write_shuttle.rs` model-checks the real pipeline, not a restatement of it.
//!
//! (`std::thread::panicking`, which synchronises nothing, is used directly.)
//!
//! A [`Word`] is a counter that threads sleep on while it holds the value they read: a futex
//! through `atomic-wait` where the OS has one (Linux, Android, FreeBSD; `__ulock` on Apple
//! systems), and under shuttle a counter under a mutex with a condition variable. Where the OS
//! has none, or under `--cfg spillway_park_fallback` (which CI uses to test that path on Linux,
//! and which combines with `spillway_shuttle`), [`Word::SUPPORTED`] is false, nobody sleeps on
//! a word, and blocked waiters park their own thread with a waker instead.
//!
//! Time under shuttle: shuttle does not model time, so [`Instant`] reads a virtual clock of
//! the execution, which stands still except when a timed wait times out: a timed wait
//! (`Condvar::wait_for` and `wait_until`, `thread::park_timeout`) unlocks, lets the other
//! threads run (a scheduling point), then either times out, moving the clock to its deadline,
//! or returns as if woken; shuttle's random source chooses, so the schedule explores both and
//! replays. So a timed wait never blocks: a timer always fires in the end, and a wait that
//! blocked until a notify that never comes would be reported as a deadlock the real code does
//! not have. (`parking_lot` never wakes a thread spuriously; every caller in the crate checks
//! its condition again in a loop, so the model's extra wake-ups only widen what is checked.)

#[cfg(not(spillway_shuttle))]
mod imp {
    pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};
    pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
    pub(crate) use std::time::Instant;

    /// Threads: spawning, parking, and the handle that unparks one.
    pub(crate) mod thread {
        pub(crate) use std::thread::{Builder, JoinHandle, Thread, current, park, park_timeout};
    }
}

#[cfg(spillway_shuttle)]
mod imp {
    use std::fmt;
    use std::ops::{Add, Deref, DerefMut};
    use std::sync::PoisonError;
    use std::sync::TryLockError;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use shuttle::rand::Rng as _;

    pub(crate) use shuttle::sync::RwLockReadGuard;
    pub(crate) use shuttle::sync::atomic::{AtomicBool, Ordering};

    shuttle::lazy_static! {
        /// The execution's virtual time, in nanoseconds (see the module docs).
        static ref NOW: AtomicU64 = AtomicU64::new(0);
    }

    /// A point on the execution's virtual clock.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub(crate) struct Instant(Duration);

    impl Instant {
        pub(crate) fn now() -> Instant {
            Instant(Duration::from_nanos(
                NOW.load(std::sync::atomic::Ordering::SeqCst),
            ))
        }

        pub(crate) fn elapsed(&self) -> Duration {
            Instant::now().saturating_duration_since(*self)
        }

        pub(crate) fn saturating_duration_since(&self, earlier: Instant) -> Duration {
            self.0.saturating_sub(earlier.0)
        }
    }

    impl Add<Duration> for Instant {
        type Output = Instant;

        fn add(self, d: Duration) -> Instant {
            Instant(self.0.saturating_add(d))
        }
    }

    /// A timed wait, once its lock is released: a scheduling point, then a time-out (the clock
    /// moves to `deadline`) or a wake-up, as shuttle's random source decides; true if it timed
    /// out.
    fn timed_wait(deadline: Instant) -> bool {
        shuttle::thread::yield_now();
        if Instant::now() < deadline && shuttle::rand::thread_rng().r#gen::<bool>() {
            let nanos = u64::try_from(deadline.0.as_nanos()).unwrap_or(u64::MAX);
            NOW.fetch_max(nanos, std::sync::atomic::Ordering::SeqCst);
        }
        Instant::now() >= deadline
    }

    /// `parking_lot::Mutex` over shuttle's: `lock` ignores poisoning, as `parking_lot` has none.
    #[derive(Default)]
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    /// The guard of a [`Mutex`]; empty only inside a condition variable's wait.
    pub(crate) struct MutexGuard<'a, T> {
        lock: &'a shuttle::sync::Mutex<T>,
        guard: Option<shuttle::sync::MutexGuard<'a, T>>,
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Mutex<T> {
            Mutex(shuttle::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard {
                lock: &self.0,
                guard: Some(self.0.lock().unwrap_or_else(PoisonError::into_inner)),
            }
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            let guard = match self.0.try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return None,
            };
            Some(MutexGuard {
                lock: &self.0,
                guard: Some(guard),
            })
        }
    }

    impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt(f)
        }
    }

    impl<'a, T> MutexGuard<'a, T> {
        fn take(&mut self) -> shuttle::sync::MutexGuard<'a, T> {
            self.guard
                .take()
                .expect("a mutex guard holds its lock outside a wait")
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;

        fn deref(&self) -> &T {
            self.guard
                .as_ref()
                .expect("a mutex guard holds its lock outside a wait")
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.guard
                .as_mut()
                .expect("a mutex guard holds its lock outside a wait")
        }
    }

    /// What a timed wait came to.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct WaitTimeoutResult(bool);

    impl WaitTimeoutResult {
        pub(crate) fn timed_out(self) -> bool {
            self.0
        }
    }

    /// `parking_lot::Condvar` over shuttle's: waits take the guard by `&mut`.
    #[derive(Default)]
    pub(crate) struct Condvar(shuttle::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Condvar {
            Condvar(shuttle::sync::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let inner = guard.take();
            guard.guard = Some(self.0.wait(inner).unwrap_or_else(PoisonError::into_inner));
        }

        pub(crate) fn wait_for<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            timeout: Duration,
        ) -> WaitTimeoutResult {
            self.wait_until(guard, Instant::now() + timeout)
        }

        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            deadline: Instant,
        ) -> WaitTimeoutResult {
            drop(guard.take());
            let timed_out = timed_wait(deadline);
            guard.guard = Some(guard.lock.lock().unwrap_or_else(PoisonError::into_inner));
            WaitTimeoutResult(timed_out)
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// `parking_lot::RwLock` over shuttle's, without poisoning.
    pub(crate) struct RwLock<T>(shuttle::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> RwLock<T> {
            RwLock(shuttle::sync::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn write(&self) -> shuttle::sync::RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// Threads: spawning, parking, and the handle that unparks one.
    pub(crate) mod thread {
        use std::time::Duration;

        pub(crate) use shuttle::thread::{Builder, JoinHandle, Thread, current, park};

        /// A timed wait (see the module docs); the unpark token is left alone, and the caller
        /// looks at its condition again either way.
        pub(crate) fn park_timeout(timeout: Duration) {
            super::timed_wait(super::Instant::now() + timeout);
        }
    }
}

pub(crate) use imp::{
    AtomicBool, Condvar, Instant, Mutex, MutexGuard, Ordering, RwLock, RwLockReadGuard, thread,
};

/// A counter that threads sleep on (see the module docs): a futex word, where the platform has
/// them.
#[cfg(not(spillway_shuttle))]
#[derive(Default)]
pub(crate) struct Word(std::sync::atomic::AtomicU32);

#[cfg(not(spillway_shuttle))]
impl Word {
    /// Whether blocked waiters sleep on words (else they park with a waker).
    pub(crate) const SUPPORTED: bool = futex::SUPPORTED;

    #[inline]
    pub(crate) fn load(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// Sleeps while the word is `seen` (returns at once if it is not; may return spuriously).
    #[inline]
    pub(crate) fn wait(&self, seen: u32) {
        futex::wait(&self.0, seen);
    }

    /// Wakes every thread asleep on the word.
    #[inline]
    pub(crate) fn wake_all(&self) {
        futex::wake_all(&self.0);
    }
}

cfg_if::cfg_if! {
    if #[cfg(spillway_shuttle)] {
        /// A counter that threads sleep on (see the module docs); under shuttle, a mutex and
        /// a condition variable.
        #[derive(Default)]
        pub(crate) struct Word {
            value: Mutex<u32>,
            changed: Condvar,
        }

        impl Word {
            /// Whether blocked waiters sleep on words (else they park with a waker).
            pub(crate) const SUPPORTED: bool = cfg!(not(spillway_park_fallback));

            pub(crate) fn load(&self) -> u32 {
                *self.value.lock()
            }

            pub(crate) fn bump(&self) {
                let mut v = self.value.lock();
                *v = v.wrapping_add(1);
            }

            /// Sleeps while the word is `seen` (returns at once if it is not).
            pub(crate) fn wait(&self, seen: u32) {
                let mut v = self.value.lock();
                while *v == seen {
                    self.changed.wait(&mut v);
                }
            }

            /// Wakes every thread asleep on the word.
            pub(crate) fn wake_all(&self) {
                self.changed.notify_all();
            }
        }
    } else if #[cfg(all(
        not(spillway_park_fallback),
        any(
            target_os = "linux",
            target_os = "android",
            target_os = "freebsd",
            target_os = "macos",
            target_os = "ios",
            target_os = "watchos",
        )
    ))] {
        mod futex {
            use std::sync::atomic::AtomicU32;

            pub(super) const SUPPORTED: bool = true;

            #[inline]
            pub(super) fn wait(word: &AtomicU32, seen: u32) {
                atomic_wait::wait(word, seen);
            }

            #[inline]
            pub(super) fn wake_all(word: &AtomicU32) {
                atomic_wait::wake_all(word);
            }
        }
    } else {
        mod futex {
            use std::sync::atomic::AtomicU32;

            pub(super) const SUPPORTED: bool = false;

            pub(super) fn wait(_: &AtomicU32, _: u32) {
                unreachable!("nobody sleeps on a word where the platform has none");
            }

            pub(super) fn wake_all(_: &AtomicU32) {}
        }
    }
}

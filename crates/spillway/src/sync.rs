//! The synchronisation the runtime is built on, chosen in one place.
//!
//! Every lock, condition variable, atomic, channel, thread and thread-local of the pool's
//! runtime (`runtime`) and of its budget (`memory`) comes from here. A normal build re-exports
//! `parking_lot`'s locks and the standard library's atomics, channels, threads and
//! thread-locals, unchanged: this module costs nothing. A build with `--cfg spillway_shuttle` (in `RUSTFLAGS`) gets [shuttle]'s instead, with
//! the same API, so that the pool's own code (not a restatement of it) runs under shuttle's
//! scheduler, which explores the interleavings of its threads at every one of these operations
//! and reports a deadlock or a failed assertion with the schedule that led to it
//! (`tests/pool_shuttle.rs`).
//!
//! The wrappers below keep `parking_lot`'s shape where shuttle's locks follow the standard
//! library's: no poisoning (a poisoned lock is taken as it is, as `parking_lot` would), and a
//! condition variable that waits on `&mut MutexGuard`. A timed wait under shuttle may end at any
//! scheduling point, as a real one may time out at any moment.
//!
//! Stores keep their own locks: a store's critical sections make no call into this module, so
//! shuttle never switches threads inside one, and they behave under it as single steps.
//!
//! [shuttle]: https://docs.rs/shuttle

#[cfg(not(spillway_shuttle))]
mod imp {
    use std::marker::PhantomData;
    use std::ops::Deref;

    pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64};
    pub(crate) use std::sync::mpsc;
    pub(crate) use std::thread;
    pub(crate) use std::thread_local;

    /// A read lock on an `RwLock<S>` that shows one part `U` of what it guards.
    pub(crate) struct ReadPart<'a, S, U: ?Sized>(
        parking_lot::MappedRwLockReadGuard<'a, U>,
        PhantomData<&'a S>,
    );

    /// A read lock on `lock` showing `part(&S)`, if there is such a part; taken like
    /// `read_recursive` (never queued behind a waiting writer), so that a thread that holds one
    /// may take another read of the same lock while a writer waits.
    #[inline]
    pub(crate) fn read_part<S, U: ?Sized>(
        lock: &RwLock<S>,
        part: fn(&S) -> Option<&U>,
    ) -> Option<ReadPart<'_, S, U>> {
        parking_lot::RwLockReadGuard::try_map(lock.read_recursive(), part)
            .ok()
            .map(|g| ReadPart(g, PhantomData))
    }

    impl<S, U: ?Sized> Deref for ReadPart<'_, S, U> {
        type Target = U;

        #[inline]
        fn deref(&self) -> &U {
            &self.0
        }
    }
}

#[cfg(spillway_shuttle)]
mod imp {
    use std::ops::{Deref, DerefMut};
    use std::time::Duration;

    pub(crate) use shuttle::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64};
    pub(crate) use shuttle::sync::mpsc;
    pub(crate) use shuttle::thread;
    pub(crate) use shuttle::thread_local;

    fn unpoison<G>(r: Result<G, std::sync::PoisonError<G>>) -> G {
        r.unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `parking_lot::Mutex`'s API over shuttle's mutex.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    /// A guard that a [`Condvar`] can take and give back while it waits.
    pub(crate) struct MutexGuard<'a, T>(Option<shuttle::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Mutex<T> {
            Mutex(shuttle::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(unpoison(self.0.lock())))
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(g) => Some(MutexGuard(Some(g))),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(MutexGuard(Some(p.into_inner()))),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0
                .as_ref()
                .expect("a guard is held except during a wait")
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0
                .as_mut()
                .expect("a guard is held except during a wait")
        }
    }

    /// `parking_lot::RwLock`'s API over shuttle's lock.
    #[derive(Debug, Default)]
    pub(crate) struct RwLock<T>(shuttle::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) const fn new(value: T) -> RwLock<T> {
            RwLock(shuttle::sync::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> shuttle::sync::RwLockReadGuard<'_, T> {
            unpoison(self.0.read())
        }

        /// Shuttle's lock has no recursive read: a plain one (a thread that reads one lock
        /// twice is reported as a deadlock under shuttle).
        pub(crate) fn read_recursive(&self) -> shuttle::sync::RwLockReadGuard<'_, T> {
            self.read()
        }

        pub(crate) fn write(&self) -> shuttle::sync::RwLockWriteGuard<'_, T> {
            unpoison(self.0.write())
        }

        pub(crate) fn try_write(&self) -> Option<shuttle::sync::RwLockWriteGuard<'_, T>> {
            match self.0.try_write() {
                Ok(g) => Some(g),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }

        pub(crate) fn get_mut(&mut self) -> &mut T {
            unpoison(self.0.get_mut())
        }
    }

    /// A read lock on an `RwLock<S>` that shows one part `U` of what it guards.
    pub(crate) struct ReadPart<'a, S, U: ?Sized> {
        guard: shuttle::sync::RwLockReadGuard<'a, S>,
        part: fn(&S) -> Option<&U>,
    }

    /// A read lock on `lock` showing `part(&S)`, if there is such a part.
    pub(crate) fn read_part<S, U: ?Sized>(
        lock: &RwLock<S>,
        part: fn(&S) -> Option<&U>,
    ) -> Option<ReadPart<'_, S, U>> {
        let guard = lock.read();
        part(&guard)?;
        Some(ReadPart { guard, part })
    }

    impl<S, U: ?Sized> Deref for ReadPart<'_, S, U> {
        type Target = U;

        fn deref(&self) -> &U {
            // The part was there when the guard was made, and the lock has been held since.
            (self.part)(&self.guard).expect("the part of a held read lock")
        }
    }

    /// `parking_lot::Condvar`'s API over shuttle's condition variable.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(shuttle::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Condvar {
            Condvar(shuttle::sync::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let g = guard.0.take().expect("a guard is held");
            guard.0 = Some(unpoison(self.0.wait(g)));
        }

        /// Waits until notified or `timeout` passes (callers here do not ask which).
        pub(crate) fn wait_for<T>(&self, guard: &mut MutexGuard<'_, T>, timeout: Duration) {
            let g = guard.0.take().expect("a guard is held");
            let (g, _) = unpoison(self.0.wait_timeout(g, timeout));
            guard.0 = Some(g);
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

pub(crate) use imp::*;

//! The synchronisation the runtime is built on, chosen in one place.
//!
//! Every lock, condition variable, atomic, channel, thread and thread-local of the pool's
//! runtime (`runtime`) and of its budget (`memory`) comes from here, except the counts of
//! `Counted` cells and the table of hazard slots (`runtime::hazard`, which says why). A normal
//! build re-exports `parking_lot`'s locks and the standard library's atomics, channels,
//! threads and thread-locals, unchanged: this module costs nothing. A build with
//! `--cfg spillway_shuttle` (in `RUSTFLAGS`) gets [shuttle]'s instead, with the same API, so
//! that the pool's own code (not a restatement of it) runs under shuttle's scheduler, which
//! explores the interleavings of its threads at every one of these operations and reports a
//! deadlock or a failed assertion with the schedule that led to it (`tests/pool_shuttle.rs`).
//!
//! The wrappers below keep `parking_lot`'s shape where shuttle's locks follow the standard
//! library's: no poisoning (a poisoned lock is taken as it is, as `parking_lot` would), and a
//! condition variable that waits on `&mut MutexGuard`. A timed wait under shuttle may end at any
//! scheduling point, as a real one may time out at any moment.
//!
//! One read takes no lock: [`peek`], for the reads of an entry's slot that a hazard slot
//! protects instead (see `runtime::hazard`). Under shuttle a write of the value while a `peek`
//! is under way fails the model, so the protocol that keeps writers away is checked, not
//! assumed.
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

    /// Reads what `lock` guards without taking it.
    ///
    /// # Safety
    /// No thread may write the value (through a write guard or `get_mut`) until `read`
    /// returns: the caller's own protocol must exclude it (see `runtime::hazard`).
    #[inline]
    #[expect(unsafe_code, reason = "a read its caller keeps writers away from")]
    pub(crate) unsafe fn peek<T, R>(lock: &RwLock<T>, read: impl FnOnce(&T) -> R) -> R {
        // SAFETY: no one writes the value meanwhile (the caller's contract), so a shared
        // reference to it is sound, as under a read lock.
        read(unsafe { &*lock.data_ptr() })
    }
}

#[cfg(spillway_shuttle)]
mod imp {
    use std::cell::UnsafeCell;
    use std::ops::{Deref, DerefMut};
    use std::time::Duration;

    use shuttle::sync::atomic::AtomicUsize;
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

    /// `parking_lot::RwLock`'s API over shuttle's lock: shuttle's lock guards nothing, and the
    /// value sits beside it, so that [`peek`] can read it without the lock, as the normal
    /// build's does (for the reads that take no lock, see `runtime::hazard`).
    #[derive(Debug, Default)]
    pub(crate) struct RwLock<T> {
        lock: shuttle::sync::RwLock<()>,
        data: UnsafeCell<T>,
        /// Reads without the lock under way (see [`peek`]): a write meanwhile fails the model.
        peeking: AtomicUsize,
    }

    // SAFETY: the value is reached through the lock's guards (shared by readers, one writer),
    // as in `std::sync::RwLock`, or through `peek`, whose callers keep to the same rule.
    #[expect(unsafe_code, reason = "a lock's value beside the lock")]
    unsafe impl<T: Send + Sync> Sync for RwLock<T> {}

    /// A read lock, showing the value.
    pub(crate) struct RwLockReadGuard<'a, T> {
        _lock: shuttle::sync::RwLockReadGuard<'a, ()>,
        data: &'a T,
    }

    impl<T> Deref for RwLockReadGuard<'_, T> {
        type Target = T;

        fn deref(&self) -> &T {
            self.data
        }
    }

    /// The write lock, showing the value.
    pub(crate) struct RwLockWriteGuard<'a, T> {
        _lock: shuttle::sync::RwLockWriteGuard<'a, ()>,
        data: &'a UnsafeCell<T>,
        peeking: &'a AtomicUsize,
    }

    impl<T> Deref for RwLockWriteGuard<'_, T> {
        type Target = T;

        fn deref(&self) -> &T {
            // SAFETY: the write lock is held.
            #[expect(unsafe_code, reason = "the value under its write lock")]
            unsafe {
                &*self.data.get()
            }
        }
    }

    impl<T> DerefMut for RwLockWriteGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            assert_eq!(
                self.peeking.load(std::sync::atomic::Ordering::SeqCst),
                0,
                "a value written while a thread reads it without the lock"
            );
            // SAFETY: the write lock is held, and this guard is borrowed mutably.
            #[expect(unsafe_code, reason = "the value under its write lock")]
            unsafe {
                &mut *self.data.get()
            }
        }
    }

    impl<T> RwLock<T> {
        pub(crate) const fn new(value: T) -> RwLock<T> {
            RwLock {
                lock: shuttle::sync::RwLock::new(()),
                data: UnsafeCell::new(value),
                peeking: AtomicUsize::new(0),
            }
        }

        pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
            let lock = unpoison(self.lock.read());
            // SAFETY: a read lock is held, for as long as the guard that shows the value.
            #[expect(unsafe_code, reason = "the value under a read lock")]
            let data = unsafe { &*self.data.get() };
            RwLockReadGuard { _lock: lock, data }
        }

        /// Shuttle's lock has no recursive read: a plain one (a thread that reads one lock
        /// twice is reported as a deadlock under shuttle).
        pub(crate) fn read_recursive(&self) -> RwLockReadGuard<'_, T> {
            self.read()
        }

        pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
            RwLockWriteGuard {
                _lock: unpoison(self.lock.write()),
                data: &self.data,
                peeking: &self.peeking,
            }
        }

        pub(crate) fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
            let lock = match self.lock.try_write() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return None,
            };
            Some(RwLockWriteGuard {
                _lock: lock,
                data: &self.data,
                peeking: &self.peeking,
            })
        }

        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.data.get_mut()
        }
    }

    /// Reads what `lock` guards without taking it; a write of the value before `read` returns
    /// fails the model (with a switch to other threads in between, so that one may try).
    ///
    /// # Safety
    /// As for the normal build's `peek`: no thread may write the value until `read` returns.
    #[expect(unsafe_code, reason = "a read its caller keeps writers away from")]
    pub(crate) unsafe fn peek<T, R>(lock: &RwLock<T>, read: impl FnOnce(&T) -> R) -> R {
        use std::sync::atomic::Ordering::SeqCst;
        lock.peeking.fetch_add(1, SeqCst);
        shuttle::thread::yield_now();
        // SAFETY: no one writes the value meanwhile (the caller's contract, checked by the
        // write guards while `peeking` counts this read).
        let out = read(unsafe { &*lock.data.get() });
        lock.peeking.fetch_sub(1, SeqCst);
        out
    }

    /// A read lock on an `RwLock<S>` that shows one part `U` of what it guards.
    pub(crate) struct ReadPart<'a, S, U: ?Sized> {
        guard: RwLockReadGuard<'a, S>,
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

//! [`Paged<T>`], the handle users hold, and the two pinned views of its value: [`Guard<T>`],
//! which owns a reference to the value and may outlive the handle, and [`Ref<'_, T>`], which
//! borrows the handle. For a resident value, making and dropping either is two atomic
//! read-modify-writes, as an `Arc::clone` and its drop are.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::counted::Counted;
use super::entry::{Entry, Slot};
use super::erased::{ChildRef, ErasedEntry};
use super::loading::Load;
use super::page_out::{current_pool, in_current_batch, note_foreign};
use super::shared::PoolShared;
use super::value::Pageable;
use crate::error::Result;
use crate::key::ContentKey;

/// A handle to a value that may be paged out: cheap to clone (a reference count), immutable,
/// and readable with [`get`](Paged::get) (an owned guard) or [`read`](Paged::read) (a borrowed
/// one).
///
/// A handle belongs to the pool that handed it out: a value holding it can be stored by that
/// pool only. Another pool refuses to store such a value with
/// [`Error::ForeignHandle`](crate::Error::ForeignHandle), and keeps it in memory (see
/// [`Pool`](super::Pool)'s "One pool's handles").
pub struct Paged<T: ?Sized + Pageable> {
    pub(crate) entry: Counted<Entry<T>>,
}

impl<T: ?Sized + Pageable> Drop for Paged<T> {
    fn drop(&mut self) {
        // A handle inside a value that a page-out takes out of memory: the value's stored
        // record refers to this entry's key (see `drop_queue`).
        if super::drop_queue::in_eviction() {
            self.entry.mark_reached();
        }
    }
}

/// A pinned view of a paged value: while it lives the value stays in memory.
pub struct Guard<T: ?Sized> {
    value: Arc<T>,
}

impl<T: ?Sized> Deref for Guard<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Guard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.value, f)
    }
}

/// A pinned view of a paged value that borrows its handle: while it lives the value stays in
/// memory. Made by [`Paged::read`].
///
/// Where a [`Guard`] pins its value with a reference count of its own (so it may outlive the
/// handle, be sent to another thread, or become an `Arc`), a `Ref` pins it by holding a read
/// lock on the handle's state, as `RwLock::read` does: making and dropping one is two atomic
/// read-modify-writes (the lock and its release), as a resident `get` and its guard's drop
/// are (the count and its release, beside plain loads and stores). Like a read lock, it
/// stays on the thread that made it. Another read of the same handle on the same
/// thread while it lives (a `read` or a `get`) is fine; an eviction passes it over.
pub struct Ref<'a, T: ?Sized> {
    value: crate::sync::ReadPart<'a, Slot<T>, T>,
}

impl<T: ?Sized> Deref for Ref<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The resident value in a slot, if there is one.
#[inline]
fn resident<T: ?Sized>(slot: &Slot<T>) -> Option<&T> {
    slot.as_deref()
}

impl<T: ?Sized> Guard<T> {
    /// The shared value itself; holding it keeps the value pinned like the guard does.
    pub fn into_arc(self) -> Arc<T> {
        self.value
    }
}

impl<T: ?Sized + Pageable> Clone for Paged<T> {
    fn clone(&self) -> Self {
        Paged {
            entry: self.entry.clone(),
        }
    }
}

impl<T: ?Sized + Pageable> fmt::Debug for Paged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.entry.slot.read_recursive() {
            Some(_) => "resident",
            None if self.entry.pool().loads.get(self.entry.id()).is_some() => "loading",
            None => "paged out",
        };
        match self.entry.key() {
            Some(k) => write!(f, "Paged<{}>({k}, {state})", T::type_name()),
            None => write!(f, "Paged<{}>(new, {state})", T::type_name()),
        }
    }
}

impl<T: Pageable> Paged<T> {
    /// Puts `value` under the management of the pool whose shared state is `pool` (what
    /// [`Pool::insert`](super::Pool::insert) does), for the collections built on pools.
    pub(crate) fn insert_in(pool: &Arc<PoolShared>, value: T) -> Result<Paged<T>> {
        Ok(Paged {
            entry: Entry::insert(pool, Arc::new(value), None)?,
        })
    }
}

impl<T: ?Sized + Pageable> Paged<T> {
    /// The value, loading it from the store if it was paged out. Concurrent loads of one object
    /// read and decode it once. Blocks the calling thread during the load; async code uses
    /// [`get_async`](Self::get_async).
    ///
    /// A resident value is counted without a lock: the thread names the object in a hazard
    /// slot of its own while it counts, which an eviction looks at before it takes the value.
    /// (A thread takes its slot at its first read and keeps it for its life; while 128 threads
    /// hold one, another thread reads under the object's lock.)
    ///
    /// Always inlined, so that the caller holds the resident path (a few instructions and one
    /// atomic increment) and the lock path stays a call (`get_slow`).
    #[inline(always)]
    pub fn get(&self) -> Result<Guard<T>> {
        if let Some(value) = self.entry.settled_value() {
            self.entry.hit();
            self.entry.pool().stats.hits.incr();
            return Ok(Guard { value });
        }
        self.get_slow()
    }

    /// [`get`](Self::get) when the value cannot be read without the lock: paged out, loading,
    /// being evicted, or this thread has no hazard slot.
    #[cold]
    #[inline(never)]
    fn get_slow(&self) -> Result<Guard<T>> {
        if let Some(v) = &*self.entry.slot.read_recursive() {
            self.entry.hit();
            self.entry.pool().stats.hits.incr();
            return Ok(Guard {
                value: Arc::clone(v),
            });
        }
        self.entry
            .pool()
            .stats
            .misses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A page-in by this caller is a miss, which the policy sees as an insertion; finding the
        // value loaded by another caller meanwhile is a use.
        let (value, loaded) = Entry::load_blocking(&self.entry)?;
        if !loaded {
            self.entry.hit();
        }
        Ok(Guard { value })
    }

    /// The value as a [`Ref`], which borrows this handle: like [`get`](Self::get) (loading the
    /// value if it was paged out, counted and seen by the eviction policy the same way), at
    /// about the same cost when the value is resident. For reads that end before the handle
    /// goes and stay on one thread; [`get`](Self::get) for a guard that must outlive the handle
    /// or move between threads.
    #[inline]
    pub fn read(&self) -> Result<Ref<'_, T>> {
        if let Some(value) = crate::sync::read_part(&self.entry.slot, resident) {
            self.entry.hit();
            self.entry.pool().stats.hits.incr();
            return Ok(Ref { value });
        }
        self.read_slow()
    }

    #[cold]
    fn read_slow(&self) -> Result<Ref<'_, T>> {
        // Pinned by this clone until the lock is taken, so still resident then.
        let guard = self.get()?;
        let value = crate::sync::read_part(&self.entry.slot, resident);
        drop(guard);
        value.map(|value| Ref { value }).ok_or_else(|| {
            crate::error::Error::Internal("a value held by a guard is not resident".into())
        })
    }

    /// Like [`get`](Self::get), for async callers: a load runs on the pool's own I/O threads
    /// and the task is woken when it finishes, so the executor's threads never block.
    pub fn get_async(&self) -> GetFuture<T> {
        GetFuture {
            entry: self.entry.clone(),
            counted_miss: false,
            result: None,
            waiting: None,
        }
    }

    /// The content key, storing the value's graph first if it was never stored.
    ///
    /// Fails with [`Error::ForeignHandle`](crate::Error::ForeignHandle) if the graph holds a
    /// handle of another pool.
    pub fn key(&self) -> Result<ContentKey> {
        if let Some(k) = self.entry.key()
            && self.entry.is_stored()
        {
            return Ok(k);
        }
        self.entry
            .pool()
            .page_out()
            .store_graphs(&[Entry::erased(&self.entry)])?;
        self.entry
            .key()
            .ok_or_else(|| crate::error::Error::Internal("a stored entry has no key".into()))
    }

    /// True if both handles refer to the same object in memory.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Counted::ptr_eq(&a.entry, &b.entry)
    }

    /// True if the value is in memory now.
    pub fn is_resident(&self) -> bool {
        self.entry.slot.read_recursive().is_some()
    }
}

/// Where an I/O thread leaves the outcome of a load for the future that started it.
type LoadCell<T> = Arc<crate::sync::Mutex<Option<Result<Arc<T>>>>>;

/// The future returned by [`Paged::get_async`].
///
/// Polling never blocks on I/O: a load runs on the pool's I/O threads. The future that moves the
/// entry from `Evicted` to `Loading` gets the outcome through its own cell, filled before any
/// waiter is woken; a future that finds a load running waits for that load's end (its
/// record in the pool's table of loads) and gets its error if it failed, rather than starting another.
pub struct GetFuture<T: ?Sized + Pageable> {
    entry: Counted<Entry<T>>,
    counted_miss: bool,
    /// The load this future started, if it started one, and the cell of its outcome.
    result: Option<(LoadCell<T>, Arc<Load>)>,
    /// The load of another caller that this future waits for.
    waiting: Option<Arc<Load>>,
}

impl<T: ?Sized + Pageable> fmt::Debug for GetFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GetFuture")
    }
}

impl<T: ?Sized + Pageable> Future for GetFuture<T> {
    type Output = Result<Guard<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let entry = &this.entry;
        if let Some((cell, load)) = this.result.clone() {
            let taken = cell.lock().take();
            if let Some(r) = taken {
                this.result = None;
                return Poll::Ready(r.map(|value| Guard { value }));
            }
            // Our load still runs (a spurious poll): wait for it again.
            let mut wait = load.wait.lock();
            if cell.lock().is_none() {
                if wait.done {
                    // Ended, its outcome not yet in the cell: that takes a moment.
                    cx.waker().wake_by_ref();
                } else {
                    wait.wakers.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
            drop(wait);
            let r = cell.lock().take();
            this.result = None;
            if let Some(r) = r {
                return Poll::Ready(r.map(|value| Guard { value }));
            }
        }
        if let Some(load) = this.waiting.clone() {
            let mut wait = load.wait.lock();
            match wait.outcome() {
                None => {
                    wait.wakers.push(cx.waker().clone());
                    return Poll::Pending;
                }
                Some(Err(e)) => {
                    this.waiting = None;
                    return Poll::Ready(Err(e));
                }
                Some(Ok(())) => this.waiting = None,
            }
        }
        loop {
            if let Some(v) = &*entry.slot.read_recursive() {
                entry.hit();
                if !this.counted_miss {
                    entry.pool().stats.hits.incr();
                }
                return Poll::Ready(Ok(Guard {
                    value: Arc::clone(v),
                }));
            }
            if !this.counted_miss {
                this.counted_miss = true;
                entry
                    .pool()
                    .stats
                    .misses
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let slot = entry.slot.write();
            if let Some(v) = &*slot {
                entry.hit();
                return Poll::Ready(Ok(Guard {
                    value: Arc::clone(v),
                }));
            }
            // Looked up under the slot's lock: a load in the table is one whose end (under
            // that lock) is still to come; none means the value is paged out.
            match entry.pool().loads.get(entry.id()) {
                None => {
                    let load = entry.pool().loads.start(entry.id());
                    drop(slot);
                    // Registered before the job is spawned, so its end cannot be missed.
                    load.wait.lock().wakers.push(cx.waker().clone());
                    let e = entry.clone();
                    let cell = Arc::new(crate::sync::Mutex::new(None));
                    this.result = Some((Arc::clone(&cell), Arc::clone(&load)));
                    entry.pool().io.spawn(Box::new(move || {
                        // The outcome goes to this future before anyone is woken.
                        Entry::finish_load(&e, &load, e.page_in_guarded(), |loaded| {
                            *cell.lock() = Some(loaded)
                        });
                    }));
                    return Poll::Pending;
                }
                Some(load) => {
                    drop(slot);
                    let mut wait = load.wait.lock();
                    if !wait.done {
                        wait.wakers.push(cx.waker().clone());
                        drop(wait);
                        this.waiting = Some(load);
                        return Poll::Pending;
                    }
                    // Ended meanwhile: read the slot again.
                }
            }
        }
    }
}

impl<T: ?Sized + Pageable> Serialize for Paged<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        // A pool stores only its own handles: another pool's object may not be in this pool's
        // store, and that pool alone decides when it is paged out or collected.
        if let Some(pool) = current_pool()
            && pool != self.entry.pool().registry.pool()
        {
            note_foreign(self.entry.pool().store.describe());
            return Err(S::Error::custom(format!(
                "a spillway handle ({}) of another pool",
                std::any::type_name::<Self>()
            )));
        }
        // A child's key is written only if its record is stored, or about to be by the batch
        // this thread is writing (children before parents); otherwise it is stored first.
        let key = if self.entry.is_stored() || in_current_batch(self.entry.id()) {
            self.entry.key()
        } else {
            None
        };
        let entry = self.entry.clone();
        match crate::codec::child_index(key, move || {
            Arc::new(ChildRef(Entry::erased(&entry))) as Arc<dyn Any + Send + Sync>
        }) {
            Some(idx) => serializer.serialize_u32(idx),
            None => Err(S::Error::custom(format!(
                "a spillway handle ({}) can only be serialized by its pool's page-out",
                std::any::type_name::<Self>()
            ))),
        }
    }
}

impl<'de, T: ?Sized + Pageable> Deserialize<'de> for Paged<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let idx = u32::deserialize(deserializer)?;
        let (key, hydrator) = crate::codec::child_key(idx).map_err(D::Error::custom)?;
        let pool = hydrator
            .downcast::<PoolShared>()
            .map_err(|_| D::Error::custom("spillway handle decoded outside a pool"))?;
        Ok(Paged {
            entry: Entry::for_key(&pool, key),
        })
    }
}

/// A handle counts as its pointer: the value it refers to is charged to the budget separately,
/// and only while it is resident.
impl<T: ?Sized + Pageable> get_size2::GetSize for Paged<T> {}

//! One paged object: the state every handle to it shares.
//!
//! Lifecycle (all transitions happen in this file):
//!
//! ```text
//!  insert ──► Resident ──(stored, no guard, chosen by the policy)──► Evicted ◄── for_key
//!                ▲                                                      │
//!                └────────────── Loading ◄────────(get)─────────────────┘
//! ```
//!
//! (`for_key` makes the entry of a stored key that has no live one: a handle from `Pool::load`
//! or `Pool::root`, or a child handle met while decoding its parent.)
//!
//! - A `Resident` value is pinned while any [`Guard`](super::Guard) holds a clone of its `Arc`
//!   or any [`Ref`](super::Ref) holds the slot's read lock: eviction requires the slot's `Arc`
//!   to be the only one (strong count 1), checked under the slot's write lock, which it only
//!   *tries* to take, so a guard can never outlive its value in memory and an eviction never
//!   waits for a reader. A `get` that finds the value resident takes its clone without the
//!   lock, under its thread's hazard slot (see `hazard`): an eviction takes a value only once
//!   no such read is under way, and the clone it took shows in the count.
//! - An entry is *settled* ([`SETTLED`]) only while its slot holds a value that no eviction is
//!   about to take; the slot is written (a page-in ending, an eviction taking the value) only
//!   while the entry is not settled, or through `&mut` in its drop. One eviction at a time
//!   holds an entry as its victim (it takes the entry out of the resident set under the
//!   residents lock, and puts it back only after it is done with it), and only that eviction
//!   clears the flag.
//! - Every read of the slot under its lock is recursive (never queued behind a waiting
//!   writer), so that a thread holding a `Ref` can read the slot again while another thread
//!   waits to write it.
//!   The writers that wait (a page-in starting or ending) find the slot not resident, so no
//!   `Ref` holds it, except in the moment between a reader seeing it evicted and taking the
//!   write lock, in which a page-in by another caller may end: the wait is then for that
//!   value's `Ref`s.
//! - Only a *stored* entry (its key known and its record in the store) is evicted; a failed
//!   page-out leaves the value resident.
//! - `Loading` is held by exactly one thread (single flight): it is the slot empty (as when
//!   `Evicted`) with a `Load` in the pool's table of loads (see `loading`), which that thread
//!   starts under the slot's write lock after finding none there; others wait on that load's
//!   condition variable (blocking callers) or register a waker with it (async callers). An
//!   entry that is not loading has no such state, and its slot is one pointer.
//! - A load ends (`Loading` → `Resident` or back to `Evicted`) only under its wait lock and,
//!   inside it, the slot's write lock, under which the load also leaves the table; it is then
//!   marked done, with its failure if it failed. A caller that saw `Loading` takes the load
//!   from the table under the slot's lock, so it has exactly the load it saw, is woken by
//!   exactly that load's end and gets its value or its error; it never starts a load of its
//!   own for a load that failed while it waited.
//! - The budget is charged `size` bytes exactly while the entry is `Resident` or `Loading`;
//!   `size` is set by the loader before the load ends and taken back to zero under the slot's
//!   write lock by the eviction that ends `Resident`, so an eviction and a following page-in
//!   never release each other's bytes.
//! - A guard keeps its value in memory even after the last handle is gone; the budget stops
//!   counting the value when the entry is dropped (the guard's owner holds it).

use std::any::Any;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::sync::{AtomicU8, AtomicU32, RwLock};

use super::counted::{Cell, Counted};
use super::erased::{ChildRef, Encoded, EntryId, ErasedEntry, ErasedRef};
use super::hazard::Held;
use super::loading::Load;
use super::page_out::take_foreign;
use super::shared::{PoolHold, PoolShared};
use super::value::Pageable;
use crate::error::{Error, Result};
use crate::key::ContentKey;

/// [`Entry`] flag: counted in the pool's registry.
const REGISTERED: u8 = 1;
/// [`Entry`] flag: a stored parent's record refers to the entry's key (a handle to it went out
/// of memory with its paged-out parent), so dropping its last handle makes nothing garbage.
const REACHED: u8 = 2;
/// [`Entry`] flag: the value is in the store under the entry's key (only a stored entry is
/// evicted). Set with release ordering after the key, read with acquire.
const STORED: u8 = 4;
/// [`Entry`] flag: the entry was given an explicit size at creation, used instead of the deep
/// size: rare, so kept in the pool's table of fixed sizes rather than here.
const FIXED_SIZE: u8 = 8;
/// [`Entry`] flag: a caller has taken the right to write the key (the one that set this bit).
const KEY_CLAIMED: u8 = 16;
/// [`Entry`] flag: the key is written. Set with release ordering once it is, read with acquire
/// before the key is.
const KEY_SET: u8 = 32;
/// [`Entry`] flag: the pool's policy orders by recency, so every use is also logged (see
/// [`Entry::hit`]); fixed for the pool's life, copied here so that a read need not look.
const LOGS_ACCESSES: u8 = 64;
/// [`Entry`] flag: the slot is resident and no eviction has claimed it, so that a reader
/// named in a hazard slot may read it without the lock (see `hazard`). Set with release
/// ordering once the slot holds a value (made resident, paged in, or kept by an eviction that
/// let it be, seen holding it under the lock); cleared only by the eviction that holds the
/// entry as its victim, before its barrier. The slot is written only while it is clear (or
/// through `&mut`, in the entry's drop).
const SETTLED: u8 = 128;

/// An entry's `size` that stands for a size of this many bytes or more, kept in the pool's
/// table of large sizes.
const LARGE: u32 = u32::MAX;

/// An entry's value: `Some` while resident; `None` while paged out, or loading when the
/// pool's table of loads holds a load for the entry (started and ended under the slot's write
/// lock, so that under the lock the table tells the two apart). One pointer: the loading state
/// lives off the entry, in the table, for as long as a load runs.
pub(crate) type Slot<T> = Option<Arc<T>>;

/// An entry, shared by every handle to one object.
///
/// Kept small: a paged-out object costs this (in its cell, see `counted`) plus its registry
/// record; for a sized value type the entry is 40 bytes and its cell 48. So:
/// - the state of a page-in in progress is not here but in the pool's table of
///   [`Loads`](super::loading::Loads), for as long as the load runs;
/// - the pool is named by its two-byte number (see `pool_table`), not an `Arc`: the entry
///   holds a count of the pool's `Arc` all the same, from its making to the end of its drop;
/// - the key is written once (guarded by two flag bits) rather than kept in a `OnceLock`;
/// - the size charged is 32 bits, a larger one being kept in the pool's table of large sizes;
/// - what is rare (an explicit size) or fixed for the pool (whether it logs accesses) is a
///   flag bit.
///
/// An entry's id ([`ErasedEntry::id`]) is its address: unique among the live entries of the
/// process, and free. Everything keyed by id forgets an entry in its `drop` (through
/// [`PoolShared::forget`]), before the address can be reused; what may still name a dropped
/// entry's id afterwards (a logged access not yet handed to the policy, a parked entry's place
/// in line) is only looked up, and at worst counts for the entry that took the address.
///
/// `repr(C)` keeps what a resident read touches (the slot, the use counter, the flags, the
/// pool's number) together. A cell of 48 bytes is not aligned to a cache line: one cell in two
/// spans two lines (see `memory::cells`).
#[repr(C)]
pub(crate) struct Entry<T: ?Sized + Pageable> {
    pub slot: RwLock<Slot<T>>,
    /// Written once, under [`KEY_CLAIMED`]; readable once [`KEY_SET`] is seen.
    key: KeyCell,
    /// Bytes charged to the budget for this entry (0 when evicted); [`LARGE`] stands for a
    /// size in the pool's table of large sizes.
    size: AtomicU32,
    /// The pool, by its number (see `pool_table`), with a count of its `Arc`.
    pool: PoolHold,
    pub hits: AtomicU8,
    /// See the flag constants above.
    flags: AtomicU8,
}

/// An entry's key: written once, read once published (see [`KEY_CLAIMED`], [`KEY_SET`]).
struct KeyCell(UnsafeCell<MaybeUninit<ContentKey>>);

// SAFETY: the key is written once, by the one caller that claimed it (`KEY_CLAIMED`), and read
// only after its `KEY_SET` is seen with acquire ordering, which the writer sets with release
// ordering after writing it (see `Entry::key`, `Entry::set_key_once`).
#[expect(
    unsafe_code,
    reason = "a key written once and read only once published"
)]
unsafe impl Sync for KeyCell {}

impl<T: ?Sized + Pageable> Entry<T> {
    /// Bytes of an entry's allocation: its cell (the entry and its count), as the cells'
    /// allocator rounds it.
    const ALLOCATION: usize = crate::memory::cell_bytes(std::mem::size_of::<Cell<Self>>());

    /// `this` as an entry of any type: the same cell, counted once more.
    pub fn erased(this: &Counted<Self>) -> ErasedRef {
        // SAFETY: an unsizing coercion of the cell's pointer.
        #[expect(unsafe_code, reason = "erasing an entry's type")]
        unsafe {
            Counted::map_cell(this.clone(), |c| c as NonNull<Cell<dyn ErasedEntry>>)
        }
    }

    /// A new entry; one given a fixed size (`has_fixed_size`) has it put in the pool's table
    /// by its maker, once the entry is in its cell and so has its id.
    fn new(
        pool: &Arc<PoolShared>,
        slot: Slot<T>,
        key: Option<ContentKey>,
        has_fixed_size: bool,
    ) -> Entry<T> {
        pool.stats.entries.fetch_add(1, Ordering::Relaxed);
        pool.stats
            .entry_bytes
            .fetch_add(Self::ALLOCATION as u64, Ordering::Relaxed);
        let mut flags = 0;
        if key.is_some() {
            flags |= KEY_CLAIMED | KEY_SET | STORED;
        }
        if has_fixed_size {
            flags |= FIXED_SIZE;
        }
        if slot.is_some() {
            flags |= SETTLED;
        }
        if pool.residency.logs_accesses() {
            flags |= LOGS_ACCESSES;
        }
        Entry {
            slot: RwLock::new(slot),
            key: KeyCell(UnsafeCell::new(
                key.map_or(MaybeUninit::uninit(), MaybeUninit::new),
            )),
            size: AtomicU32::new(0),
            pool: PoolHold::new(pool),
            hits: Default::default(),
            flags: AtomicU8::new(flags),
        }
    }

    /// The pool's shared part.
    #[inline]
    pub fn pool(&self) -> &PoolShared {
        self.pool.get()
    }

    /// The content key, once known.
    #[inline]
    pub fn key(&self) -> Option<ContentKey> {
        if self.flags.load(Ordering::Acquire) & KEY_SET == 0 {
            return None;
        }
        // SAFETY: `KEY_SET`, seen with acquire ordering, is set after the key is written, and
        // the key is never written again.
        #[expect(unsafe_code, reason = "reading a key once published")]
        unsafe {
            Some((*self.key.0.get()).assume_init())
        }
    }

    /// Sets the key, unless it is set already: the first caller writes it and the others wait
    /// until it has (a moment), so that on return the key is set.
    fn set_key_once(&self, key: ContentKey) {
        if self.flags.fetch_or(KEY_CLAIMED, Ordering::Acquire) & KEY_CLAIMED == 0 {
            // SAFETY: this caller set `KEY_CLAIMED`, so it is the one writer, and no reader
            // reads the key before `KEY_SET`.
            #[expect(unsafe_code, reason = "writing a key once")]
            unsafe {
                (*self.key.0.get()).write(key);
            }
            self.flags.fetch_or(KEY_SET, Ordering::Release);
        } else {
            while self.flags.load(Ordering::Acquire) & KEY_SET == 0 {
                crate::sync::thread::yield_now();
            }
        }
    }

    /// The bytes charged for the entry now.
    fn size(&self) -> u64 {
        match self.size.load(Ordering::Relaxed) {
            LARGE => self
                .pool()
                .large_sizes
                .lock()
                .get(&self.id())
                .copied()
                .unwrap_or(0),
            n => u64::from(n),
        }
    }

    /// Sets the bytes charged for the entry, which has none: made, or loading.
    fn set_size(&self, bytes: u64) {
        let n = match u32::try_from(bytes) {
            Ok(n) if n < LARGE => n,
            _ => {
                self.pool().large_sizes.lock().insert(self.id(), bytes);
                LARGE
            }
        };
        self.size.store(n, Ordering::Relaxed);
    }

    /// Takes the bytes charged for the entry back to zero, returning them: under the slot's
    /// write lock (an eviction) or in the entry's drop.
    fn take_size(&self) -> u64 {
        match self.size.swap(0, Ordering::Relaxed) {
            LARGE => {
                let mut large = self.pool().large_sizes.lock();
                let bytes = large.remove(&self.id()).unwrap_or(0);
                crate::memory::shrink_map(&mut large);
                bytes
            }
            n => u64::from(n),
        }
    }

    /// A new object, resident: its size (`fixed`, or the value's deep size) is reserved, then
    /// charged, and the entry is handed to the policy.
    pub fn insert(
        pool: &Arc<PoolShared>,
        value: Arc<T>,
        fixed: Option<u64>,
    ) -> Result<Counted<Self>> {
        let size = fixed.unwrap_or_else(|| value.deep_size() as u64).max(1);
        let reservation = pool.reserve(size)?;
        // A page-out counts the new entry in the registry's table for its type, which must
        // exist by then. (An entry made for a key is counted by `find_or_add`, which makes the
        // table itself.)
        pool.registry.ensure::<Self>();
        let entry = Counted::new(Entry::new(pool, Some(value), None, fixed.is_some()));
        if let Some(f) = fixed {
            pool.fixed_sizes.lock().insert(entry.id(), f.max(1));
        }
        entry.set_size(reservation.commit());
        pool.residency.admit(Self::erased(&entry), size);
        Ok(entry)
    }

    /// The entry for a stored key: the live one if the object is in use, else a new one,
    /// `Evicted`, that loads on first access.
    pub fn for_key(pool: &Arc<PoolShared>, key: ContentKey) -> Counted<Self> {
        pool.entry_for_key(key, || Entry::new(pool, None, Some(key), false))
    }

    /// A handle to this entry goes out of memory with its paged-out parent: see [`REACHED`].
    pub fn mark_reached(&self) {
        self.flags.fetch_or(REACHED, Ordering::Relaxed);
    }

    /// The explicit size given at creation, if any.
    pub fn fixed_size(&self) -> Option<u64> {
        if self.flags.load(Ordering::Relaxed) & FIXED_SIZE == 0 {
            return None;
        }
        self.pool().fixed_sizes.lock().get(&self.id()).copied()
    }

    pub fn size_of(&self, value: &T) -> u64 {
        self.fixed_size()
            .unwrap_or_else(|| value.deep_size() as u64)
            .max(1)
    }

    /// The value, counted, if it is resident and settled, read without the slot's lock (see
    /// `hazard`); `None` sends the caller to the lock.
    #[inline]
    pub fn settled_value(&self) -> Option<Arc<T>> {
        super::hazard::protect(std::ptr::from_ref(self).addr(), || {
            if self.flags.load(Ordering::Acquire) & SETTLED == 0 {
                return None;
            }
            // SAFETY: the slot is written only while `SETTLED` is clear, and an eviction that
            // cleared it takes the value only once its barrier has passed and no hazard slot
            // names this entry; this thread's slot has named it since before the flag was
            // read set (see `hazard`). So the slot is not written while it is read here, and
            // the value is counted before the hazard is cleared.
            #[expect(unsafe_code, reason = "a read under a hazard, without the lock")]
            unsafe {
                crate::sync::peek(&self.slot, |slot| slot.as_ref().map(Arc::clone))
            }
        })
    }

    /// Marks the entry as settled, its slot holding a value: by a page-in that put it there, or
    /// an eviction that let it be (which holds the entry as its victim, so that no one else
    /// writes the slot meanwhile).
    fn settle(&self) {
        self.flags.fetch_or(SETTLED, Ordering::Release);
    }

    /// Records a use of the resident value for the eviction policy: a saturating counter, no
    /// lock; and, for a policy that orders by recency (LRU), the access itself, in the pool's
    /// access log. The read that pages a value in is not a use (the policy is told of an
    /// insertion instead); a read that finds it resident, or waited for another's page-in, is.
    #[inline]
    pub fn hit(&self) {
        if self.hits.load(Ordering::Relaxed) < 3 {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        if self.flags.load(Ordering::Relaxed) & LOGS_ACCESSES != 0 {
            self.pool().residency.log_access(self.id());
        }
    }

    /// Loads the value from the store and decodes it. Called by the one thread that moved the
    /// slot from `Evicted` to `Loading`.
    pub fn page_in(&self) -> Result<Arc<T>> {
        let key = self
            .key()
            .ok_or_else(|| Error::Internal("an evicted entry has no key".into()))?;
        let pool = self.pool.arc();
        let blob = pool.store.get(&key)?.ok_or_else(|| Error::NotFound {
            key,
            store: pool.store.describe(),
        })?;
        pool.stats.page_ins.fetch_add(1, Ordering::Relaxed);
        pool.stats
            .bytes_read
            .fetch_add(blob.payload.len() as u64, Ordering::Relaxed);
        // Reserve before decoding: the size given at insert, or the stored length (a fair
        // estimate of the decoded size, capped at the budget so that a value whose encoding is
        // larger than its deep size still loads); corrected once the real size is known.
        let estimate = pool.reserve(
            self.fixed_size()
                .unwrap_or(blob.payload.len() as u64)
                .clamp(1, pool.residency.hard_limit()),
        )?;
        let ctx = crate::codec::DecodeCtx {
            children: blob.children,
            hydrator: Arc::clone(&pool) as Arc<dyn Any + Send + Sync>,
        };
        // The type tag is checked before the value's bytes are decoded (see `schema`).
        let value =
            crate::codec::decode_with(ctx, || pool.schemas.decode::<T>(key, &blob.payload))?;
        let size = self.size_of(&value);
        let charged = if size > estimate.bytes() {
            let extra = pool.reserve(size - estimate.bytes())?;
            estimate.commit() + extra.commit()
        } else {
            let mut r = estimate;
            r.resize(size);
            r.commit()
        };
        self.set_size(charged);
        Ok(value)
    }

    /// [`page_in`](Self::page_in), with a panic (in the value's `Deserialize` or deep-size
    /// code, or in a store) turned into an error, so that the load still ends and nobody waits
    /// on it forever.
    pub fn page_in_guarded(&self) -> Result<Arc<T>> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.page_in())).unwrap_or_else(
            |_| {
                Err(Error::ThreadPanicked {
                    thread: format!("page-in of a {}", T::type_name()),
                    consequence: "the value was not loaded (the panic came from its Deserialize \
                                  or deep-size code, or from the store); the next read tries again",
                })
            },
        )
    }

    /// The blocking load path: single flight. Returns the value and whether this caller loaded
    /// it (a miss, which the policy was told of as an insertion) rather than finding it loaded
    /// by another (a use).
    pub fn load_blocking(this: &Counted<Self>) -> Result<(Arc<T>, bool)> {
        loop {
            if let Some(v) = &*this.slot.read_recursive() {
                return Ok((Arc::clone(v), false));
            }
            let slot = this.slot.write();
            if let Some(v) = &*slot {
                return Ok((Arc::clone(v), false));
            }
            // Looked up under the slot's lock: a load in the table is one whose end (under
            // that lock) is still to come; none means the value is paged out.
            match this.pool().loads.get(this.id()) {
                Some(load) => {
                    drop(slot);
                    let mut wait = load.wait.lock();
                    loop {
                        match wait.outcome() {
                            None => load.cv.wait(&mut wait),
                            Some(Err(e)) => return Err(e),
                            Some(Ok(())) => break,
                        }
                    }
                }
                None => {
                    let load = this.pool().loads.start(this.id());
                    drop(slot);
                    return Self::finish_load(this, &load, this.page_in_guarded(), |r| {
                        r.map(|v| (v, true))
                    });
                }
            }
        }
    }

    /// Ends `load` with its outcome: publishes the value (or puts the slot back to `Evicted`)
    /// and takes the load out of the pool's table, both under the slot's write lock; hands the
    /// entry to the policy, passes the outcome to `deliver` (the loader's own caller), and only
    /// then wakes every thread and task that waited.
    pub fn finish_load<R>(
        this: &Counted<Self>,
        load: &Load,
        loaded: Result<Arc<T>>,
        deliver: impl FnOnce(Result<Arc<T>>) -> R,
    ) -> R {
        // The loader and every waiter get the same failure, shared.
        let loaded = loaded.map_err(|e| match e {
            Error::Shared(shared) => Error::Shared(shared),
            other => Error::Shared(Arc::new(other)),
        });
        let wakers = {
            let mut wait = load.wait.lock();
            let mut slot = this.slot.write();
            *slot = loaded.as_ref().ok().map(Arc::clone);
            if slot.is_some() {
                this.settle();
            }
            this.pool().loads.end(this.id());
            drop(slot);
            wait.done = true;
            wait.failure = match &loaded {
                Err(Error::Shared(shared)) => Some(Arc::clone(shared)),
                _ => None,
            };
            std::mem::take(&mut wait.wakers)
        };
        if loaded.is_ok() {
            let size = this.size();
            this.pool().residency.admit(Self::erased(this), size);
        }
        let out = deliver(loaded);
        load.cv.notify_all();
        for w in wakers {
            w.wake();
        }
        out
    }
}

impl<T: ?Sized + Pageable> ErasedEntry for Entry<T> {
    fn id(&self) -> EntryId {
        std::ptr::from_ref(self).addr() as EntryId
    }

    fn key(&self) -> Option<ContentKey> {
        Entry::key(self)
    }

    fn is_stored(&self) -> bool {
        self.flags.load(Ordering::Acquire) & STORED != 0
    }

    fn mark_stored(&self, key: ContentKey) {
        self.set_key_once(key);
        self.flags.fetch_or(STORED, Ordering::Release);
    }

    fn mark_registered(&self) -> bool {
        self.flags.fetch_or(REGISTERED, Ordering::AcqRel) & REGISTERED == 0
    }

    fn set_key(&self, key: ContentKey) {
        self.set_key_once(key);
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<Encoded> {
        let value = match &*self.slot.read_recursive() {
            Some(v) => Arc::clone(v),
            // Only a stored entry leaves `Resident`: another page-out got there first.
            _ if self.is_stored() => return Ok(Encoded::Stored),
            _ => {
                return Err(Error::Internal(format!(
                    "encoding entry {:#x} that is not resident",
                    self.id()
                )));
            }
        };
        let start = out.len();
        let (encoded, ctx) =
            crate::codec::encode_with(|| self.pool().schemas.encode_into(&*value, out));
        let payload = start..out.len();
        let foreign = take_foreign();
        if encoded.is_err() || !ctx.missing.is_empty() || foreign.is_some() {
            // Nothing of a value that is not done stays in the caller's buffer.
            out.truncate(start);
        }
        if let Some(other) = foreign {
            return Err(Error::ForeignHandle {
                what: format!("a value of type {} holding a handle", T::type_name()),
                pool: self.pool().store.describe(),
                other,
            });
        }
        encoded.map_err(|e| Error::Codec {
            type_name: T::type_name(),
            key: self.key(),
            detail: e.to_string(),
        })?;
        if !ctx.missing.is_empty() {
            let missing = ctx
                .missing
                .into_iter()
                .filter_map(|m| m.downcast::<ChildRef>().ok())
                .map(|c| c.0.clone())
                .collect();
            return Ok(Encoded::Missing(missing));
        }
        let key = ContentKey::of(&out[payload.clone()], &ctx.children);
        Ok(Encoded::Done {
            key,
            children: ctx.children,
            payload,
        })
    }

    fn take_hits(&self) -> u8 {
        self.hits.swap(0, Ordering::Relaxed)
    }

    fn is_pinned(&self) -> bool {
        // A `Ref` holds the read lock; a lock held otherwise is a moment's read or a change of
        // state, after which the caller looks again.
        match self.slot.try_write().as_deref() {
            Some(Some(v)) => Arc::strong_count(v) > 1,
            Some(_) => false,
            None => true,
        }
    }

    fn withdraw(&self) {
        let was = self.flags.fetch_and(!SETTLED, Ordering::AcqRel);
        debug_assert!(
            was & SETTLED != 0,
            "a victim not settled: resident entries are, and one eviction at a time holds one"
        );
    }

    fn try_evict(&self, held: &Held) -> Option<u64> {
        let (old, size) = {
            // A read lock held is a `Ref` (or a moment's read): pinned either way. The victim
            // is resident (only this eviction, which holds it, could take its value), so it is
            // settled again, lock or not.
            let Some(mut slot) = self.slot.try_write() else {
                self.settle();
                return None;
            };
            match &*slot {
                None => return None,
                // A reader counting the value without the lock, or one that did and has
                // moved on, shows here: in the hazard slots, or in the count (its reader
                // stored to its hazard slot, with release, after taking it, and the caller
                // read the slots, with acquire, after).
                Some(v)
                    if !self.is_stored()
                        || held.contains(std::ptr::from_ref(self).addr())
                        || Arc::strong_count(v) > 1 =>
                {
                    self.settle();
                    return None;
                }
                // The size is taken under the lock: once the lock is released a page-in may
                // start and charge the entry again. So are the hits cleared: uses of the value
                // that leaves count for nothing when it comes back (a page-in is a new
                // insertion). A read that counted the value before the eviction may still
                // record a use after this (a lost update of a saturating counter: the policy
                // may see one use too many).
                Some(_) => {
                    self.hits.store(0, Ordering::Relaxed);
                    (slot.take(), self.take_size())
                }
            }
        };
        self.pool().residency.release(size);
        super::drop_queue::defer_evicted(Box::new(old));
        Some(size)
    }

    fn resident_size(&self) -> u64 {
        self.size()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<T: ?Sized + Pageable> Drop for Entry<T> {
    fn drop(&mut self) {
        let pool = self.pool();
        pool.stats.entries.fetch_sub(1, Ordering::Relaxed);
        pool.stats
            .entry_bytes
            .fetch_sub(Self::ALLOCATION as u64, Ordering::Relaxed);
        let size = self.take_size();
        if size > 0 {
            pool.residency.release(size);
        }
        let flags = self.flags.load(Ordering::Relaxed);
        if flags & FIXED_SIZE != 0 {
            let mut fixed = pool.fixed_sizes.lock();
            fixed.remove(&self.id());
            crate::memory::shrink_map(&mut fixed);
        }
        // An entry a paged-out parent's record refers to is reachable through it: its last
        // handle going is not garbage. (A handle dropped with a paged-out value marks its entry
        // before the entry can go, so the mark alone tells.)
        pool.forget::<Self>(
            self.id(),
            self as *const Self as *const (),
            self.key().filter(|_| flags & REGISTERED != 0),
            flags & REACHED == 0,
        );
        // Dropping the value may drop the last handles of its children, and theirs in turn: a
        // long chain would recurse once per link. The queue turns that into a loop.
        let old = self.slot.get_mut().take();
        super::drop_queue::defer(Box::new(old));
        // The entry's hold on the pool goes after this, with its fields (even if a drop above
        // panics), and may take the pool with it.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use crate::{Paged, Pool};

    fn pool() -> Pool {
        Pool::builder()
            .budget(1 << 20)
            .store(Arc::new(MemStore::new()))
            .deterministic(true)
            .build()
            .expect("a pool over a memory store")
    }

    /// A resident `get` takes no lock: it returns while another thread holds the slot's
    /// write lock (a read under the lock would wait for it).
    #[test]
    fn a_resident_get_takes_no_lock() {
        let pool = pool();
        let h: Paged<u64> = pool.insert(7).expect("insert");
        let writer = h.entry.slot.write();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = {
            let h = h.clone();
            std::thread::spawn(move || {
                let got = h.get().map(|g| *g);
                tx.send(got).expect("send");
            })
        };
        let got = rx.recv_timeout(std::time::Duration::from_secs(20));
        drop(writer);
        reader.join().expect("the reader");
        assert_eq!(
            got.expect("get returned while the lock was held")
                .expect("get"),
            7
        );
    }

    /// A withdrawn entry (a victim of an eviction under way) is read under the lock; settled
    /// again, without it; an evicted one never without it, until its page-in settles it.
    #[test]
    fn only_a_settled_entry_is_read_without_the_lock() {
        let pool = pool();
        let h: Paged<u64> = pool.insert(7).expect("insert");
        h.key().expect("stored");
        let e = &*h.entry;
        assert_eq!(e.settled_value().as_deref(), Some(&7));
        e.withdraw();
        assert!(e.settled_value().is_none());
        assert_eq!(*h.get().expect("get under the lock"), 7);
        e.settle();
        assert_eq!(e.settled_value().as_deref(), Some(&7));
        // Named by this thread's hazard slot: the eviction leaves it, settled.
        let held = crate::runtime::hazard::protect(std::ptr::from_ref(e).addr(), || {
            e.withdraw();
            Some(crate::runtime::hazard::barrier())
        })
        .expect("a hazard slot");
        assert_eq!(e.try_evict(&held), None);
        assert!(h.is_resident());
        assert_eq!(e.settled_value().as_deref(), Some(&7));
        // Named by none: evicted, and not settled until paged in again.
        pool.shrink_to(0).expect("shrink");
        assert!(!h.is_resident());
        assert!(e.settled_value().is_none());
        assert_eq!(*h.get().expect("a page-in"), 7);
        assert_eq!(e.settled_value().as_deref(), Some(&7));
    }

    /// A paged-out object costs its entry: keep it small. The bound is the layout today (see
    /// `Entry`'s fields); a field that grows it should be a deliberate choice.
    #[test]
    fn an_entry_stays_small() {
        let size = std::mem::size_of::<Entry<u64>>();
        assert!(size <= 40, "Entry<u64> is {size} bytes");
        assert_eq!(std::mem::size_of::<Slot<u64>>(), 8);
        // With its count, a cell of 48 bytes, with no allocator header.
        const { assert!(Entry::<u64>::ALLOCATION <= 48) };
    }
}

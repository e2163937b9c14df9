//! [`PoolShared`]: the parts of a pool that its handles share, put together, and the few
//! operations that take more than one part.
//!
//! Every entry holds a count of the pool's `Arc<PoolShared>` and names it by its number (see
//! `pool_table`), so a pool's parts live as long as any handle does, after the
//! [`Pool`](super::Pool) itself is dropped.

use std::collections::HashMap;
use std::sync::Arc;

use crate::sync::Mutex;

use super::counted::Counted;
use super::erased::{EntryId, ErasedEntry};
use super::gc::{Collection, Collector, GcOptions, GcReport};
use super::loading::Loads;
use super::metadata::MetadataCharge;
use super::page_out::PageOut;
use super::pool_table::{PoolNumber, published};
use super::registry::Registry;
use super::residency::Residency;
use super::schema::Schemas;
use super::stats::{Counters, Errors};
use super::threads::IoPool;
use crate::error::Result;
use crate::key::ContentKey;
use crate::memory::Reservation;
use crate::store::{BlobStore, LogStore};

/// The part of a pool shared by its handles.
pub(crate) struct PoolShared {
    /// The pool's number in the process's table of pools, by which its entries name it.
    pub number: PoolNumber,
    pub store: Arc<dyn BlobStore>,
    /// `store` as the log store it is, when the pool opened it (in `PoolBuilder::dir` or a
    /// temporary directory): what `Pool::compact` compacts.
    pub log: Option<Arc<LogStore>>,
    /// The types registered with the pool: what tags values on encode and checks them on
    /// decode.
    pub schemas: Schemas,
    pub stats: Counters,
    pub errors: Errors,
    pub residency: Residency,
    pub registry: Registry,
    pub collector: Collector,
    /// Page-ins in progress.
    pub loads: Loads,
    /// The explicit sizes of the live entries that were given one (`Pool::insert_with_size`), by
    /// entry id.
    pub fixed_sizes: Mutex<HashMap<EntryId, u64>>,
    /// The sizes charged for the live entries charged 4 GiB or more (an entry's own count is
    /// 32 bits), by entry id.
    pub large_sizes: Mutex<HashMap<EntryId, u64>>,
    /// The metadata charged to the budget, if the pool counts it there
    /// (`PoolBuilder::budget_includes_metadata`).
    pub metadata: Option<MetadataCharge>,
    pub io: IoPool,
    /// Kept so that a default pool's temporary directory outlives its store.
    pub _tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for PoolShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolShared")
            .field("store", &self.store.describe())
            .field("budget", self.residency.budget())
            .finish_non_exhaustive()
    }
}

/// An entry's hold on its pool: a count of the pool's `Arc`, taken by
/// [`PoolHold::new`] and given back when the hold is dropped (with the entry, after its `drop`
/// has run, and also when that `drop` unwinds), and the pool's number, by which the pool is
/// found (see `pool_table`): two bytes instead of an `Arc`'s eight.
pub(crate) struct PoolHold(u16);

impl PoolHold {
    /// A hold on `pool`.
    pub fn new(pool: &Arc<PoolShared>) -> PoolHold {
        std::mem::forget(Arc::clone(pool));
        PoolHold(pool.number.get())
    }

    /// The pool's shared part, published in the table under the pool's number from `Arc::as_ptr`
    /// (so the pointer covers the whole allocation, counts included).
    #[inline]
    fn ptr(&self) -> *const PoolShared {
        let p = published(self.0).cast::<PoolShared>();
        debug_assert!(!p.is_null(), "pool number {} is published", self.0);
        p
    }

    /// The pool.
    #[inline]
    pub fn get(&self) -> &PoolShared {
        // SAFETY: this hold's count keeps the pool alive and published under its number for as
        // long as the hold lives (see `pool_table`).
        #[expect(unsafe_code, reason = "a pool's shared part, through its number")]
        unsafe {
            &*self.ptr()
        }
    }

    /// A new `Arc` of the pool.
    pub fn arc(&self) -> Arc<PoolShared> {
        let p = self.ptr();
        // SAFETY: as for `get`; the pointer came from `Arc::as_ptr` of the pool's `Arc`, which
        // this hold counts.
        #[expect(unsafe_code, reason = "a new count of a pool through its number")]
        unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }
}

impl Drop for PoolHold {
    fn drop(&mut self) {
        let p = self.ptr();
        // SAFETY: the count `new` took, given back once; the pool may be dropped here.
        #[expect(unsafe_code, reason = "giving back a pool's count through its number")]
        unsafe {
            drop(Arc::from_raw(p));
        }
    }
}

impl PoolShared {
    /// A page-out through this pool's parts.
    pub fn page_out(&self) -> PageOut<'_> {
        PageOut {
            store: &*self.store,
            stats: &self.stats,
            errors: &self.errors,
            registry: &self.registry,
            collector: &self.collector,
        }
    }

    /// See [`Residency::reserve`]. A pool that counts its metadata brings the charge up to
    /// date first, when it is due.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation> {
        if let Some(m) = &self.metadata
            && m.due(&self.stats)
        {
            self.charge_metadata();
        }
        self.residency.reserve(bytes, &self.page_out())
    }

    /// Memory the pool's own bookkeeping takes (see `PoolStats::metadata_bytes`): entries
    /// exactly, tables from their capacities.
    pub fn metadata_bytes(&self) -> u64 {
        self.stats
            .entry_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
            + (self.registry.memory_bytes()
                + self.residency.memory_bytes()
                + self.loads.memory_bytes()
                + crate::memory::map_bytes(&self.fixed_sizes.lock())
                + crate::memory::map_bytes(&self.large_sizes.lock())) as u64
    }

    /// Brings the metadata charged to the budget up to date (see [`metadata`](super::metadata)),
    /// if the pool counts it there; wakes the background page-out if the charge grew.
    pub fn charge_metadata(&self) {
        self.charge_measured(|| self.metadata_bytes() + self.store.stats().index_bytes);
    }

    /// [`charge_metadata`](Self::charge_metadata) with the metadata (the pool's own and the
    /// store's index) measured by `measure`, called only if the pool counts it.
    pub fn charge_measured(&self, measure: impl FnOnce() -> u64) {
        let Some(m) = &self.metadata else { return };
        if m.update(self.residency.budget(), &self.stats, measure) {
            self.residency.wake_if_past_start();
        }
    }

    /// The bytes of metadata charged to the budget (0 unless the pool counts it there).
    pub fn metadata_charged(&self) -> u64 {
        self.metadata.as_ref().map_or(0, MetadataCharge::charged)
    }

    /// See [`Residency::evict_to`].
    pub fn evict_to(&self, target: u64) -> Result<u64> {
        self.residency.evict_to(target, &self.page_out())
    }

    /// A garbage collection (see [`gc`](super::gc)).
    pub fn gc(&self, opts: GcOptions) -> Result<GcReport> {
        Collection {
            collector: &self.collector,
            store: &*self.store,
            registry: &self.registry,
            stats: &self.stats,
        }
        .gc(opts)
    }

    /// The live entry for a stored key, or a new one from `make` (see
    /// [`Registry::find_or_add`]), safe from a running collection.
    pub fn entry_for_key<E: ErasedEntry + 'static>(
        &self,
        key: ContentKey,
        make: impl FnOnce() -> E,
    ) -> Counted<E> {
        let (entry, new) = self.registry.find_or_add(key, make);
        // A live entry was in the registry already, where a collection finds it. A new one is
        // registered first, then protected: a collection that starts after this check sees the
        // handle among the live keys; one already running gets the key in its protected set
        // (or, if it has already swept it, `Pool::load`'s check of the store then fails).
        if new {
            self.collector.protect(key);
        }
        entry
    }

    /// Entry `id`, at address `entry`, is gone (its last handle dropped); `key` is its key if
    /// it was counted in the registry. `garbage`: false if a stored object still refers to it
    /// (see [`Registry::forget`](super::registry::Registry::forget)).
    pub fn forget<E: ErasedEntry + 'static>(
        &self,
        id: EntryId,
        entry: *const (),
        key: Option<ContentKey>,
        garbage: bool,
    ) {
        self.residency.forget(id);
        if let Some(k) = key {
            self.registry.forget::<E>(entry, k, garbage);
        }
    }
}

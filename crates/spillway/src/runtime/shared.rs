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

impl PoolShared {
    /// Takes a count of `this` for an entry being made, which names the pool by the number
    /// returned (see `pool_table`).
    pub fn hold(this: &Arc<PoolShared>) -> u16 {
        std::mem::forget(Arc::clone(this));
        this.number.get()
    }

    /// The shared part of pool `number`.
    ///
    /// # Safety
    /// The caller holds a count of that pool's `Arc` taken by [`hold`](Self::hold) (an entry's,
    /// given back by [`let_go`](Self::let_go) at the end of its drop, not yet), for the
    /// returned lifetime.
    #[inline]
    #[expect(unsafe_code, reason = "a pool's shared part, through its number")]
    pub unsafe fn of<'a>(number: u16) -> &'a PoolShared {
        let p = published(number).cast::<PoolShared>();
        debug_assert!(!p.is_null(), "pool number {number} is published");
        // SAFETY: the caller's count keeps the part alive and published (see `pool_table`).
        unsafe { &*p }
    }

    /// A new `Arc` of pool `number`.
    ///
    /// # Safety
    /// As for [`of`](Self::of).
    #[expect(unsafe_code, reason = "a new count of a pool through its number")]
    pub unsafe fn arc_of(number: u16) -> Arc<PoolShared> {
        // SAFETY: as for `of`; the address was published from the `Arc` (`Arc::as_ptr`).
        unsafe {
            let p: *const PoolShared = Self::of(number);
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }

    /// Gives back the count [`hold`](Self::hold) took for an entry of pool `number`; the pool
    /// may be dropped here.
    ///
    /// # Safety
    /// As for [`of`](Self::of); the count is given back once and not used again.
    #[expect(unsafe_code, reason = "giving back a pool's count through its number")]
    pub unsafe fn let_go(number: u16) {
        // SAFETY: the count `hold` took, given back once.
        unsafe { drop(Arc::from_raw(Self::of(number) as *const PoolShared)) }
    }

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

//! Pool statistics: counters cheap enough to bump on every access (see [`ThreadCounter`]), the errors met where no
//! caller waits for them, and the snapshot users read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::counter::ThreadCounter;
use crate::error::Error;
use crate::memory::Pressure;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: ThreadCounter,
    /// Live entries (made minus dropped).
    pub entries: AtomicU64,
    /// Bytes the live entries take (each its cell).
    pub entry_bytes: AtomicU64,
    pub misses: AtomicU64,
    pub page_ins: AtomicU64,
    pub page_outs: AtomicU64,
    pub bytes_written: AtomicU64,
    pub bytes_read: AtomicU64,
    pub objects_written: AtomicU64,
    pub dedup_hits: AtomicU64,
    pub gc_runs: AtomicU64,
    pub gc_deleted: AtomicU64,
}

/// Errors met where no caller waits for them: page-outs in the background or while making room
/// for an insert or a page-in (which then goes ahead past the budget rather than lose a value),
/// and background collections. Each is counted, kept as the last one for [`PoolStats`], and
/// kept until a caller is told ([`take_unreported`](Self::take_unreported)).
#[derive(Debug, Default)]
pub(crate) struct Errors {
    count: AtomicU64,
    last: RwLock<Option<String>>,
    /// An error not yet reported to a caller.
    unreported: Mutex<Option<Arc<Error>>>,
}

impl Errors {
    /// Records `e`; returns it, shared with the report to come.
    pub fn record(&self, e: Error) -> Arc<Error> {
        tracing::warn!(error = %e, "spillway pool: background error");
        self.count.fetch_add(1, Ordering::Relaxed);
        *self.last.write() = Some(e.to_string());
        let e = Arc::new(e);
        *self.unreported.lock() = Some(Arc::clone(&e));
        e
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn last(&self) -> Option<String> {
        self.last.read().clone()
    }

    /// The error recorded since the last call, if any.
    pub fn take_unreported(&self) -> Option<Arc<Error>> {
        self.unreported.lock().take()
    }
}

/// A snapshot of a pool's counters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Bytes of values in memory, as the budget counts them, plus the
    /// [`metadata_charged_bytes`](Self::metadata_charged_bytes) of a pool that counts its
    /// metadata in its budget.
    pub resident_bytes: u64,
    /// The budget.
    pub budget_bytes: u64,
    /// Highest `resident_bytes` seen.
    pub peak_resident_bytes: u64,
    /// Bytes of resident values that guards hold now: they cannot be paged out until their
    /// guards are dropped. When held bytes alone fill the budget, a read that needs room is
    /// served past the budget (see [`Pool`](crate::Pool)'s "Held values"). Counted by a pass
    /// over the resident values, so a `stats` call costs time in proportion to them.
    pub held_bytes: u64,
    /// The pressure level now.
    pub pressure: Pressure,
    /// Objects in the store.
    pub stored_objects: u64,
    /// Bytes of live records in the store.
    pub stored_bytes: u64,
    /// Reads served from memory.
    pub hits: u64,
    /// Reads that had to load the value.
    pub misses: u64,
    /// Values loaded from the store.
    pub page_ins: u64,
    /// Values dropped from memory after being stored.
    pub page_outs: u64,
    /// Payload bytes written to the store.
    pub bytes_written: u64,
    /// Payload bytes read from the store.
    pub bytes_read: u64,
    /// Objects written to the store.
    pub objects_written: u64,
    /// Objects not written because an object of equal content was stored already or is
    /// written by the same page-out batch. An object written once and met again by another
    /// page-out (a child of two graphs paged out at once, say) is not counted: it is one
    /// object, written once.
    pub dedup_hits: u64,
    /// Evictions, by the pressure level at the time: normal, moderate, high, critical.
    pub evictions_by_pressure: [u64; 4],
    /// Live entries: the objects this pool has handles to (resident or paged out), each one
    /// entry however many handles share it.
    pub entries: u64,
    /// Memory the store's in-memory index takes ([`StoreStats::index_bytes`]): with the
    /// entries, what paged-out objects still cost in memory outside the budget.
    ///
    /// [`StoreStats::index_bytes`]: crate::store::StoreStats::index_bytes
    pub store_index_bytes: u64,
    /// Memory the pool's own bookkeeping takes outside the budget: its entries, the registry
    /// of live keys, the eviction policy's queues and ghosts, the resident set. Entries are
    /// counted exactly, tables from their capacities. With
    /// [`store_index_bytes`](Self::store_index_bytes), what a process holds beyond
    /// `resident_bytes` for the objects it has handles to (the allocator's own slack aside).
    pub metadata_bytes: u64,
    /// The part of [`metadata_bytes`](Self::metadata_bytes) and
    /// [`store_index_bytes`](Self::store_index_bytes) charged to the budget, counted in
    /// `resident_bytes`: 0 unless the pool was built with
    /// [`budget_includes_metadata`](crate::PoolBuilder::budget_includes_metadata); at most three
    /// quarters of the budget.
    pub metadata_charged_bytes: u64,
    /// Stored objects whose last handle was dropped since the last collection: what
    /// [`gc_after`](crate::PoolBuilder::gc_after) compares against. An object whose last handle
    /// went out of memory with a paged-out parent is not counted: that parent's record still
    /// refers to it.
    pub dropped_since_gc: u64,
    /// Garbage collections run.
    pub gc_runs: u64,
    /// Objects deleted by garbage collection.
    pub gc_deleted: u64,
    /// Errors met in the background (page-out failures), and the last one.
    pub errors: u64,
    /// The last background error, if any.
    pub last_error: Option<String>,
}

impl PoolStats {
    /// Share of page-out attempts that found the object already stored.
    pub fn dedup_ratio(&self) -> f64 {
        let total = self.objects_written + self.dedup_hits;
        if total == 0 {
            0.0
        } else {
            self.dedup_hits as f64 / total as f64
        }
    }

    /// Share of reads served from memory.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

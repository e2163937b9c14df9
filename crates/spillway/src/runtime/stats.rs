//! Pool statistics: counters cheap enough to bump on every access, the errors met where no
//! caller waits for them, and the snapshot users read.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::error::Error;
use crate::memory::Pressure;

/// A counter striped over cache lines, so that threads bumping it on the hot path do not
/// contend on one line. Reading sums the stripes.
#[derive(Debug, Default)]
pub(crate) struct StripedCounter {
    stripes: [Padded; 16],
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Padded(AtomicU64);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

impl StripedCounter {
    #[inline]
    pub fn incr(&self) {
        let i = STRIPE.with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                i = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % 16;
                s.set(i);
            }
            i
        });
        self.stripes[i].0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: StripedCounter,
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
    /// Bytes of values in memory, as the budget counts them.
    pub resident_bytes: u64,
    /// The budget.
    pub budget_bytes: u64,
    /// Highest `resident_bytes` seen.
    pub peak_resident_bytes: u64,
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
    /// Objects not written because their key was already stored.
    pub dedup_hits: u64,
    /// Evictions, by the pressure level at the time: normal, moderate, high, critical.
    pub evictions_by_pressure: [u64; 4],
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

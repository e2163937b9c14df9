//! Counting a pool's own memory against its budget: opt-in, through
//! [`PoolBuilder::budget_includes_metadata`](super::PoolBuilder::budget_includes_metadata).
//!
//! Beside its values a pool holds its entries (one per object it has handles to, resident or
//! paged out), the registry of live keys, the resident set and the eviction policy's queues and
//! ghosts, the page-ins in flight, and the store's in-memory index. That memory grows with the
//! number of handles, not with the values' sizes, and by default is reported
//! ([`PoolStats::metadata_bytes`](super::PoolStats::metadata_bytes),
//! [`store_index_bytes`](super::PoolStats::store_index_bytes)) but not budgeted. A pool that
//! counts it charges it to the budget beside its values, so that the values get what is left
//! and the process's memory follows the budget.
//!
//! Invariants:
//! - `charged` is what the budget holds for metadata: the budget's resident count is the bytes
//!   of the resident values (and reservations) plus `charged`.
//! - `charged` never passes the cap, three quarters of the budget: however many handles live,
//!   values keep a quarter of it. Metadata past the cap is reported, not charged, and a
//!   warning says so once per pool.
//! - The charge follows the estimate: it is brought up to date on every background page-out
//!   round, every [`Pool::stats`](super::Pool::stats), and, checked on every reservation,
//!   whenever `step` entries were made or dropped or `step` objects written since the last
//!   update; between two updates it lags by at most about `step` entries and their records
//!   (about 1 % of the budget). An update that raises the charge can put the resident count
//!   past the budget by that much, until the next reservation or background round pages out.
//! - Updates are serialized: one that finds another running skips (the running one charges
//!   what it measured; the next due check catches up).

use std::sync::atomic::Ordering;

use crate::sync::{AtomicBool, AtomicU64, Mutex};

use super::stats::Counters;
use crate::memory::Budget;

/// The metadata a pool charges to its budget, and when it last measured it.
pub(crate) struct MetadataCharge {
    /// The most that is charged: three quarters of the budget.
    cap: u64,
    /// Entries made or dropped, or objects written, between two due updates.
    step: u64,
    /// What the budget holds for metadata now.
    charged: AtomicU64,
    /// `Counters::entries` at the last update.
    entries_then: AtomicU64,
    /// `Counters::objects_written` at the last update.
    written_then: AtomicU64,
    /// Held while an update runs.
    updating: Mutex<()>,
    /// True once the cap was reported.
    warned: AtomicBool,
}

impl MetadataCharge {
    /// Charges for a budget of `limit` bytes: the update step is 1/32,768 of the budget in
    /// entries (a few hundred bytes each, so a lag of about 1 % of the budget), between 16
    /// and 4,096.
    pub fn new(limit: u64) -> MetadataCharge {
        MetadataCharge {
            cap: limit - limit / 4,
            step: (limit / 32_768).clamp(16, 4096),
            charged: AtomicU64::new(0),
            entries_then: AtomicU64::new(0),
            written_then: AtomicU64::new(0),
            updating: Mutex::new(()),
            warned: AtomicBool::new(false),
        }
    }

    /// The bytes charged now.
    pub fn charged(&self) -> u64 {
        self.charged.load(Ordering::Acquire)
    }

    /// True if enough changed since the last update for another: two relaxed loads per
    /// reservation.
    #[inline]
    pub fn due(&self, c: &Counters) -> bool {
        let entries = c.entries.load(Ordering::Relaxed);
        let written = c.objects_written.load(Ordering::Relaxed);
        entries.abs_diff(self.entries_then.load(Ordering::Relaxed)) >= self.step
            || written.abs_diff(self.written_then.load(Ordering::Relaxed)) >= self.step
    }

    /// Brings the charge to `measure()` (capped), unless another update is running; returns
    /// true if the charge grew (the caller may have to page out).
    pub fn update(&self, budget: &Budget, c: &Counters, measure: impl FnOnce() -> u64) -> bool {
        let Some(_g) = self.updating.try_lock() else {
            return false;
        };
        // Counters first: changes made while measuring are caught by the next update.
        self.entries_then
            .store(c.entries.load(Ordering::Relaxed), Ordering::Relaxed);
        self.written_then
            .store(c.objects_written.load(Ordering::Relaxed), Ordering::Relaxed);
        let total = measure();
        if total > self.cap && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                metadata_bytes = total,
                cap = self.cap,
                "spillway pool: its metadata (entries, tables, the store's index) passes three \
                 quarters of the budget; the rest is not charged, so memory passes the budget: \
                 raise the budget or keep fewer handles"
            );
        }
        let target = total.min(self.cap);
        let was = self.charged.swap(target, Ordering::AcqRel);
        if target > was {
            budget.add(target - was);
            true
        } else {
            budget.sub(was - target);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_charge_follows_the_measure_up_to_the_cap() {
        let budget = Budget::with_limit(1 << 20).expect("a budget");
        let c = Counters::default();
        let m = MetadataCharge::new(1 << 20);
        assert!(m.update(&budget, &c, || 1000));
        assert_eq!((m.charged(), budget.resident()), (1000, 1000));
        assert!(!m.update(&budget, &c, || 400));
        assert_eq!((m.charged(), budget.resident()), (400, 400));
        // Past three quarters of the budget: the cap is charged.
        assert!(m.update(&budget, &c, || 10 << 20));
        assert_eq!(m.charged(), 3 << 18);
        assert_eq!(budget.resident(), 3 << 18);
        assert!(!m.update(&budget, &c, || 0));
        assert_eq!(budget.resident(), 0);
    }

    #[test]
    fn an_update_is_due_after_step_entries_or_writes() {
        let c = Counters::default();
        let m = MetadataCharge::new(128 << 20);
        assert_eq!(m.step, 4096);
        assert!(!m.due(&c));
        c.entries.store(4095, Ordering::Relaxed);
        assert!(!m.due(&c));
        c.entries.store(4096, Ordering::Relaxed);
        assert!(m.due(&c));
        let budget = Budget::with_limit(64 << 20).expect("a budget");
        m.update(&budget, &c, || 0);
        assert!(!m.due(&c));
        c.objects_written.store(5000, Ordering::Relaxed);
        assert!(m.due(&c));
        // Entries dropped count as much as entries made.
        m.update(&budget, &c, || 0);
        c.entries.store(0, Ordering::Relaxed);
        assert!(m.due(&c));
    }
}

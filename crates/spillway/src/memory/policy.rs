//! The eviction-policy trait, and [`PolicyKind`] to pick an implementation.
//!
//! A policy only orders entries: it never touches values, storage or the budget. The runtime
//! tells it about every resident, unpinned-or-not entry ([`EvictionPolicy::insert`], `resize`,
//! `remove`) and asks it for victims when the budget is under pressure; while choosing, the
//! policy asks the runtime through [`Residents`] how often an entry was hit and whether it can go.
//!
//! Contract every implementation keeps (checked by the same property tests):
//! - `evict` returns only entries it tracks, each at most once, with the size it last recorded,
//!   and forgets them;
//! - `evict` never returns an entry for which [`Residents::can_evict`] said false; such entries
//!   stay tracked;
//! - `evict` returns at least the bytes asked for whenever the evictable entries add up to that;
//! - `evict` does a bounded amount of work per call and terminates even if every entry is pinned;
//! - after `remove(id)`, `id` is not returned until it is inserted again;
//! - [`EvictionPolicy::tracked_bytes`] is the sum of the sizes of the tracked entries.

/// The runtime's identifier of a resident entry.
pub type EntryId = u64;

/// What the policy may ask the runtime about an entry while choosing victims.
pub trait Residents {
    /// Hits since the policy last asked, and reset to zero (the runtime keeps a small saturating
    /// counter per entry, bumped on each access without taking any lock).
    fn take_hits(&mut self, id: EntryId) -> u8;
    /// False while the entry is pinned (a guard is alive) or cannot be written out now; the
    /// policy then keeps it and moves on.
    fn can_evict(&mut self, id: EntryId) -> bool;
}

/// Orders resident entries and chooses which to evict.
pub trait EvictionPolicy: Send + std::fmt::Debug {
    /// A new resident entry of `bytes`; `ghost` is a stable 64-bit id of its content (e.g. a
    /// prefix of its content key) if it has one, used to recognise entries evicted recently.
    ///
    /// Inserting an id that is already tracked replaces it.
    fn insert(&mut self, id: EntryId, bytes: u64, ghost: Option<u64>);
    /// The entry's resident size changed. Unknown ids are ignored.
    fn resize(&mut self, id: EntryId, bytes: u64);
    /// The entry left memory for another reason (its last handle was dropped): forget it.
    /// O(1) or amortised O(1). Unknown ids are ignored.
    fn remove(&mut self, id: EntryId);
    /// Accesses recorded by the runtime in order (used by LRU; S3-FIFO ignores them).
    fn record_accesses(&mut self, ids: &[EntryId]) {
        let _ = ids;
    }
    /// True if the policy needs `record_accesses` (the runtime then logs accesses in a buffer).
    fn wants_access_log(&self) -> bool {
        false
    }
    /// Chooses victims totalling at least `bytes` (fewer if not enough are evictable), removes
    /// them from the policy and returns them with their sizes. The runtime then writes them out
    /// and drops them from memory.
    fn evict(&mut self, bytes: u64, residents: &mut dyn Residents) -> Vec<(EntryId, u64)>;
    /// Bytes the policy tracks.
    fn tracked_bytes(&self) -> u64;
    /// Entries the policy tracks.
    fn len(&self) -> usize;
    /// True if the policy tracks no entry.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True if `id` is tracked.
    fn contains(&self, id: EntryId) -> bool;
}

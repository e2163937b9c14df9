//! The eviction-policy trait: what a policy is told and what it answers.
//!
//! A policy only orders entries: it never touches values, storage or the budget. It sees the
//! accesses a cache simulator would see for the same requests:
//!
//! - a value coming into memory (created, or paged in) is a *miss*: the runtime makes room
//!   first ([`EvictionPolicy::evict`]), then tells the policy of the insertion
//!   ([`EvictionPolicy::insert`]); the access that paged the value in is not also a use;
//! - a read of a resident value is a *use*: the runtime bumps the entry's hit counter, which the
//!   policy reads through [`Residents::take_hits`], and, for a policy that orders by recency,
//!   logs the access ([`EvictionPolicy::record_accesses`]);
//! - a victim that leaves memory and that the policy asked to remember
//!   ([`Victim::ghost`]) is handed back with its content id ([`EvictionPolicy::remember`]),
//!   the id that the same content comes back under when it is paged in again.
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
    /// counter per entry, bumped on each read of the resident value without taking any lock,
    /// and cleared when the value leaves memory).
    fn take_hits(&mut self, id: EntryId) -> u8;
    /// False while the entry is pinned (a guard is alive) or cannot be written out now; the
    /// policy then keeps it and moves on.
    fn can_evict(&mut self, id: EntryId) -> bool;
}

/// An entry chosen by [`EvictionPolicy::evict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Victim {
    /// The entry.
    pub id: EntryId,
    /// Its size as the policy last recorded it.
    pub bytes: u64,
    /// True if the policy wants to remember the victim once it has left memory: the runtime
    /// then calls [`EvictionPolicy::remember`] with its content id.
    pub ghost: bool,
}

/// Orders resident entries and chooses which to evict.
pub trait EvictionPolicy: Send + std::fmt::Debug {
    /// A value of `bytes` came into memory (a miss: created, or paged in). `ghost` is the stable
    /// 64-bit id of its content (a prefix of its content key) if it has one yet: the id it was
    /// remembered under if it left memory recently.
    ///
    /// Inserting an id that is already tracked replaces it.
    fn insert(&mut self, id: EntryId, bytes: u64, ghost: Option<u64>);
    /// The entry's resident size changed. Unknown ids are ignored.
    fn resize(&mut self, id: EntryId, bytes: u64);
    /// The entry left memory for another reason (its last handle was dropped): forget it.
    /// O(1) or amortised O(1). Unknown ids are ignored.
    fn remove(&mut self, id: EntryId);
    /// Reads of resident values, in order (used by LRU; S3-FIFO reads the hit counters).
    fn record_accesses(&mut self, ids: &[EntryId]) {
        let _ = ids;
    }
    /// True if the policy needs `record_accesses` (the runtime then logs accesses in a buffer,
    /// and hands it over before every insert and eviction, so that the order is exact).
    fn wants_access_log(&self) -> bool {
        false
    }
    /// Chooses victims totalling at least `bytes` (fewer if not enough are evictable), removes
    /// them from the policy and returns them. The runtime then writes them out and drops them
    /// from memory.
    fn evict(&mut self, bytes: u64, residents: &mut dyn Residents) -> Vec<Victim>;
    /// A victim that [`evict`](Self::evict) marked [`ghost`](Victim::ghost) has left memory;
    /// `ghost` is its content id (as [`insert`](Self::insert) will be given when it comes
    /// back) and `bytes` its size. A victim that could not be evicted after all is inserted
    /// again instead.
    fn remember(&mut self, ghost: u64, bytes: u64) {
        let _ = (ghost, bytes);
    }
    /// Bytes the policy tracks.
    fn tracked_bytes(&self) -> u64;
    /// Bytes of memory the policy's own tables take (an estimate from their capacities).
    fn memory_bytes(&self) -> usize;
    /// Entries the policy tracks.
    fn len(&self) -> usize;
    /// True if the policy tracks no entry.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True if `id` is tracked.
    fn contains(&self, id: EntryId) -> bool;
}

//! Memory: the byte budget and the eviction policies that keep resident values within it.
//!
//! This layer is pure bookkeeping: synchronous, no I/O, no knowledge of values or stores. The
//! paging runtime drives it:
//!
//! - [`Budget`] counts resident bytes against a hard limit, reports a [`Pressure`] level, and
//!   hands out [`Reservation`]s for page-ins; [`Budget::try_reserve`] refuses to pass the hard
//!   limit and says how much must be evicted first.
//! - [`Watermarks`] say where a pool's background page-out starts and stops (98 % and 95 % of
//!   the budget by default), so that a pool under steady pressure uses its budget.
//! - An eviction policy orders the resident entries and picks victims by bytes: S3-FIFO (the
//!   default, scan-resistant, as published) or LRU (for comparison), chosen with
//!   [`PolicyKind`] and sized by the budget.
//!
//! - `Mapped` allocates the large tables of the pool (and of its policies)
//!   in mappings of their own, so that the copies a growth or shrink frees leave the process.
//! - `Cells` allocates the pool's entries, packed by size in chunks of their own: no allocator
//!   header per entry, and no entry left between values, whose freed memory can then go back
//!   whole pages at a time. A cell has a 32-bit number while it is allocated, which the
//!   registry keeps instead of a pointer.
//! - `Numbers` hands out small numbers lowest first, for tables indexed by them.
//!
//! A policy sees exactly the accesses a cache simulator would see for the same requests: a value
//! coming into memory (created, or paged in) is a miss, told as an insertion after the room for
//! it was made; a read of a resident value is a use; a value that S3-FIFO evicts from its small
//! queue leaves a ghost, under its content key, which a later page-in of that content finds.
//! The crate's tests replay traces through a pool and through an independent simulator and
//! require the same misses.
//!
//! Invariant the runtime relies on: the budget never evicts and the policy never accounts; the
//! runtime keeps the two in step (insert into the policy and add to the budget together; evict
//! through the policy, then subtract from the budget what it wrote out and dropped).

mod budget;
mod cells;
mod kind;
mod lru;
mod mapped;
mod numbers;
mod policy;
mod release;
mod s3fifo;
mod watermarks;

pub use budget::{Budget, BudgetConfig, BudgetError, BudgetStats, Pressure, Reservation};
pub use kind::{PolicyKind, UnknownPolicy};
pub use watermarks::Watermarks;

#[cfg(test)]
pub(crate) use cells::cell_chunks;
pub(crate) use cells::{Cells, cell_at, cell_bytes, cell_number, is_cell};
pub(crate) use mapped::{
    IdMap, MAPPED_FROM, Mapped, MappedVec, mapped_map_bytes, shrink_mapped_map,
};
pub(crate) use numbers::Numbers;
pub(crate) use release::Released;

// The pool chooses a policy by [`PolicyKind`]; the policies themselves are the runtime's (a
// custom policy cannot be handed to a pool). The `testing` feature makes them public for the
// crate's own tests (a policy driven by a trace, against a simulator).
#[cfg(feature = "testing")]
pub use lru::Lru;
#[cfg(feature = "testing")]
pub use policy::{EntryId, EvictionPolicy, Residents, Victim};
#[cfg(not(feature = "testing"))]
pub(crate) use policy::{EvictionPolicy, Residents, Victim};
#[cfg(feature = "testing")]
pub use s3fifo::{S3Fifo, S3FifoConfig, S3FifoStats};

/// Bytes a hash table of `capacity` usable slots of `slot` bytes allocates, as hashbrown (the
/// table of `std`'s `HashMap`) lays it out: a power of two of buckets at most 7/8 full, each a
/// slot and a control byte, plus a group of control bytes. An estimate for statistics.
pub(crate) fn table_bytes(capacity: usize, slot: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8).div_ceil(7).next_power_of_two()
    };
    buckets * (slot + 1) + 16
}

/// [`table_bytes`] of a map.
pub(crate) fn map_bytes<K, V, S>(map: &std::collections::HashMap<K, V, S>) -> usize {
    table_bytes(map.capacity(), std::mem::size_of::<(K, V)>())
}

/// Bytes a queue allocates.
pub(crate) fn queue_bytes<T>(queue: &std::collections::VecDeque<T>) -> usize {
    queue.capacity() * std::mem::size_of::<T>()
}

/// Slots below which a table is never shrunk.
pub(crate) const MIN_SHRINK: usize = 1024;

/// Gives back most of a map's table once it is at most a quarter full: a table keeps its
/// high-water size otherwise, and after a large eviction (a million values paged out at once)
/// that is tens of bytes per value gone. Halving only below a quarter keeps the work amortised
/// O(1) per removal.
pub(crate) fn shrink_map<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(
    map: &mut std::collections::HashMap<K, V, S>,
) {
    if let Some(to) = shrunk_capacity(map.len(), map.capacity()) {
        map.shrink_to(to);
    }
}

/// [`shrink_map`] for a queue.
pub(crate) fn shrink_queue<T>(queue: &mut std::collections::VecDeque<T>) {
    if let Some(to) = shrunk_capacity(queue.len(), queue.capacity()) {
        queue.shrink_to(to);
    }
}

/// The capacity to shrink a table of `len` items and `capacity` slots to, if it is due (see
/// [`shrink_map`]).
pub(crate) fn shrunk_capacity(len: usize, capacity: usize) -> Option<usize> {
    (capacity > MIN_SHRINK && len < capacity / 4).then_some(len * 2)
}

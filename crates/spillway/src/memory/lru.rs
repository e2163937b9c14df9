//! [`Lru`]: least-recently-used eviction by bytes, kept to compare S3-FIFO against.
//!
//! Entries sit in one doubly linked list from least to most recently used; the links are
//! indexes into a slab (`Vec` plus a free list), and a hash map finds an entry's slot, so every
//! operation is O(1) without unsafe code. An insert (a miss) and every recorded access (a use)
//! move the entry to the most-recently-used end; `evict` takes from the least-recently-used end
//! until enough bytes are freed, exactly as an LRU cache simulator would, provided the runtime
//! hands over its logged accesses before each insert and eviction (it does). An entry that
//! [`Residents::can_evict`] refuses is in use, so it is moved to the most-recently-used end,
//! and the walk looks at each entry at most once per call. LRU keeps no ghosts.
//!
//! Invariants: the map and the list hold the same ids; `bytes` is the sum of the listed sizes;
//! free slots are never linked.

use super::policy::{EntryId, EvictionPolicy, Residents, Victim};
use super::{IdMap, MIN_SHRINK, Mapped, MappedVec, mapped_map_bytes, shrink_mapped_map};

const NIL: usize = usize::MAX;

#[derive(Debug, Clone)]
struct Node {
    id: EntryId,
    bytes: u64,
    prev: usize,
    next: usize,
}

/// Least-recently-used eviction by bytes.
#[derive(Debug)]
pub struct Lru {
    /// The slab and its free list are mappings of their own once large, as the policy's tables
    /// are (see `memory::mapped`).
    nodes: MappedVec<Node>,
    free: MappedVec<usize>,
    /// A large table is a mapping of its own (see `memory::mapped`).
    slots: IdMap<usize>,
    /// Least recently used.
    head: usize,
    /// Most recently used.
    tail: usize,
    bytes: u64,
}

impl Default for Lru {
    fn default() -> Lru {
        Lru::new()
    }
}

impl Lru {
    /// An empty LRU.
    pub fn new() -> Lru {
        Lru {
            nodes: MappedVec::new_in(Mapped),
            free: MappedVec::new_in(Mapped),
            slots: IdMap::default(),
            head: NIL,
            tail: NIL,
            bytes: 0,
        }
    }

    /// Tracked ids from least to most recently used (for tests and diagnostics).
    #[cfg(any(test, feature = "testing"))]
    pub fn order(&self) -> Vec<EntryId> {
        let mut out = Vec::with_capacity(self.slots.len());
        let mut at = self.head;
        while at != NIL {
            out.push(self.nodes[at].id);
            at = self.nodes[at].next;
        }
        out
    }

    fn unlink(&mut self, at: usize) {
        let (prev, next) = (self.nodes[at].prev, self.nodes[at].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next].prev = prev;
        }
        self.nodes[at].prev = NIL;
        self.nodes[at].next = NIL;
    }

    fn push_back(&mut self, at: usize) {
        self.nodes[at].prev = self.tail;
        self.nodes[at].next = NIL;
        if self.tail == NIL {
            self.head = at;
        } else {
            self.nodes[self.tail].next = at;
        }
        self.tail = at;
    }

    fn touch(&mut self, at: usize) {
        if self.tail != at {
            self.unlink(at);
            self.push_back(at);
        }
    }

    fn free_slot(&mut self, at: usize) {
        self.unlink(at);
        self.bytes -= self.nodes[at].bytes;
        self.free.push(at);
    }

    /// Once most of the slab is free (after a large eviction), lays the list out afresh in
    /// order, in a slab and a map sized to it, and gives back the rest: amortised O(1) per
    /// removal, as the slab must have lost three quarters of its slots since it was last
    /// compacted.
    fn compact_if_sparse(&mut self) {
        if self.nodes.len() <= MIN_SHRINK || self.free.len() * 4 < self.nodes.len() * 3 {
            shrink_mapped_map(&mut self.slots);
            return;
        }
        let mut nodes = MappedVec::with_capacity_in(self.slots.len(), Mapped);
        let mut at = self.head;
        while at != NIL {
            let n = &self.nodes[at];
            let i = nodes.len();
            nodes.push(Node {
                id: n.id,
                bytes: n.bytes,
                prev: if i == 0 { NIL } else { i - 1 },
                next: NIL,
            });
            if i > 0 {
                nodes[i - 1].next = i;
            }
            at = n.next;
        }
        self.slots = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        self.head = if nodes.is_empty() { NIL } else { 0 };
        self.tail = nodes.len().checked_sub(1).unwrap_or(NIL);
        self.nodes = nodes;
        self.free = MappedVec::new_in(Mapped);
    }
}

impl EvictionPolicy for Lru {
    fn insert(&mut self, id: EntryId, bytes: u64, _ghost: Option<u64>) {
        if let Some(&at) = self.slots.get(&id) {
            self.bytes = self.bytes - self.nodes[at].bytes + bytes;
            self.nodes[at].bytes = bytes;
            self.touch(at);
            return;
        }
        let node = Node {
            id,
            bytes,
            prev: NIL,
            next: NIL,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.nodes[at] = node;
                at
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.slots.insert(id, at);
        self.bytes += bytes;
        self.push_back(at);
    }

    fn resize(&mut self, id: EntryId, bytes: u64) {
        if let Some(&at) = self.slots.get(&id) {
            self.bytes = self.bytes - self.nodes[at].bytes + bytes;
            self.nodes[at].bytes = bytes;
        }
    }

    fn remove(&mut self, id: EntryId) {
        if let Some(at) = self.slots.remove(&id) {
            self.free_slot(at);
            self.compact_if_sparse();
        }
    }

    fn record_accesses(&mut self, ids: &[EntryId]) {
        for id in ids {
            if let Some(&at) = self.slots.get(id) {
                self.touch(at);
            }
        }
    }

    fn wants_access_log(&self) -> bool {
        true
    }

    fn evict(&mut self, bytes: u64, residents: &mut dyn Residents) -> Vec<Victim> {
        let mut victims = Vec::new();
        let mut freed = 0u64;
        // Each entry is looked at at most once: refused ones go to the back, behind the rest.
        let mut budget = self.slots.len();
        while freed < bytes && budget > 0 && self.head != NIL {
            budget -= 1;
            let at = self.head;
            let id = self.nodes[at].id;
            if residents.can_evict(id) {
                let size = self.nodes[at].bytes;
                self.slots.remove(&id);
                self.free_slot(at);
                freed = freed.saturating_add(size);
                victims.push(Victim {
                    id,
                    bytes: size,
                    ghost: false,
                });
            } else {
                self.touch(at);
            }
        }
        self.compact_if_sparse();
        victims
    }

    fn tracked_bytes(&self) -> u64 {
        self.bytes
    }

    fn memory_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.free.capacity() * std::mem::size_of::<usize>()
            + mapped_map_bytes(&self.slots)
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn contains(&self, id: EntryId) -> bool {
        self.slots.contains_key(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pinned(Vec<EntryId>);

    impl Residents for Pinned {
        fn take_hits(&mut self, _id: EntryId) -> u8 {
            0
        }
        fn can_evict(&mut self, id: EntryId) -> bool {
            !self.0.contains(&id)
        }
    }

    fn pairs(victims: Vec<Victim>) -> Vec<(EntryId, u64)> {
        victims.into_iter().map(|v| (v.id, v.bytes)).collect()
    }

    #[test]
    fn a_mostly_emptied_slab_is_compacted_in_order() {
        let mut lru = Lru::new();
        let n = 4 * MIN_SHRINK as u64;
        for id in 0..n {
            lru.insert(id, 1, None);
        }
        // Touch a few so that the order is not the insertion order.
        lru.record_accesses(&[5, 3, 1]);
        let keep: Vec<EntryId> = (0..n).filter(|id| id % 8 == 0 || *id == 3).collect();
        for id in 0..n {
            if !keep.contains(&id) {
                lru.remove(id);
            }
        }
        assert!(lru.nodes.len() < n as usize / 2, "the slab was compacted");
        let mut expected: Vec<EntryId> = keep.iter().copied().filter(|&id| id != 3).collect();
        expected.push(3);
        assert_eq!(lru.order(), expected);
        assert_eq!(lru.tracked_bytes(), keep.len() as u64);
        // Still a working list: a touch moves to the back, eviction takes from the front.
        lru.record_accesses(&[0]);
        let v = pairs(lru.evict(2, &mut Pinned(vec![])));
        assert_eq!(v, [(8, 1), (16, 1)]);
        lru.insert(n, 1, None);
        assert_eq!(lru.order().last(), Some(&n));
        assert_eq!(lru.len(), keep.len() - 1);
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut lru = Lru::new();
        for id in 1..=4 {
            lru.insert(id, 10, None);
        }
        lru.record_accesses(&[1, 3]);
        assert_eq!(lru.order(), [2, 4, 1, 3]);
        let v = pairs(lru.evict(15, &mut Pinned(vec![])));
        assert_eq!(v, [(2, 10), (4, 10)]);
        assert_eq!(lru.tracked_bytes(), 20);
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn pinned_entries_are_skipped_and_kept() {
        let mut lru = Lru::new();
        for id in 1..=3 {
            lru.insert(id, 10, None);
        }
        let v = lru.evict(100, &mut Pinned(vec![1, 2, 3]));
        assert!(v.is_empty());
        assert_eq!(lru.len(), 3);
        let v = pairs(lru.evict(10, &mut Pinned(vec![1])));
        assert_eq!(v, [(2, 10)]);
        assert_eq!(lru.order(), [3, 1]);
    }

    #[test]
    fn slots_are_reused_after_remove() {
        let mut lru = Lru::new();
        lru.insert(1, 5, None);
        lru.insert(2, 5, None);
        lru.remove(1);
        lru.insert(3, 7, None);
        assert_eq!(lru.nodes.len(), 2);
        assert_eq!(lru.order(), [2, 3]);
        assert_eq!(lru.tracked_bytes(), 12);
    }
}

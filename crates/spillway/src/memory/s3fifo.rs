//! [`S3Fifo`]: scan-resistant eviction with three FIFO queues, sized in bytes.
//!
//! The algorithm is S3-FIFO, from Juncheng Yang, Yazhuo Zhang, Ziyue Qiu, Yao Yue and
//! K. V. Rashmi, "FIFO queues are all you need for cache eviction", SOSP 2023. Its observation is
//! that most objects in real workloads are touched once and never again ("one-hit wonders"), so
//! the cheapest way to protect the useful ones is to give every newcomer a short probation and
//! let only those reused during it into the long-lived part of the cache. Here it is with sizes
//! in bytes rather than in entries, because the budget is in bytes. With a capacity of `C`
//! bytes (the pool's budget):
//!
//! - **small** is a FIFO for newcomers, with a share of `C` (10 %, as in the paper);
//! - **main** is a FIFO for entries that proved themselves, with the rest of `C`;
//! - **ghost** is a FIFO of content ids (not values) of entries evicted from small, holding as
//!   many bytes' worth of ids as main's share (the paper's "as many entries as main", by
//!   bytes).
//!
//! Each entry has a frequency from 0 to 3, raised by the hits the runtime reports through
//! [`Residents::take_hits`] (read only when the entry reaches the head of a queue, so hits cost
//! the policy nothing; taking them late gives the same frequency as counting each hit when it
//! happens, since the frequency only grows between two visits to the head).
//!
//! - *Insert* (a miss): an entry whose ghost id is remembered was evicted recently and is back,
//!   so it goes to main (and the ghost id is forgotten); any other entry goes to small. Either
//!   way with frequency 0.
//! - *Evict*, one eviction at a time until enough bytes are freed: from small if small holds at
//!   least its share (or main is empty), else from main.
//!   - From small: a head reused since insertion (frequency ≥ 1) moves to main's tail with
//!     frequency 0, and if main is then over its share one eviction from main follows; then the
//!     next head. The first head not reused is evicted, and the runtime is asked to hand back
//!     its ghost id once it has left memory ([`EvictionPolicy::remember`]).
//!   - From main: a head with frequency > 0 goes back to the tail with frequency − 1 (a
//!     second-chance clock that forgets old popularity); the first head with frequency 0 is
//!     evicted.
//!
//! A one-time scan therefore flows through small and out without disturbing main, while
//! entries hit more than once stay in main as long as they keep being hit.
//!
//! Entries that [`Residents::can_evict`] refuses (pinned, or not writable now) are held aside
//! for the rest of the call and put back at the tail of their queue at its end, unchanged, so
//! each is asked about once per call. A call ends when enough bytes are freed, when both queues
//! are used up, or after a number of steps proportional to the queue lengths (enough for every
//! entry to spend its frequency and leave), so `evict` terminates even if everything is pinned or
//! the runtime keeps reporting hits.
//!
//! Removal is lazy: [`EvictionPolicy::remove`] forgets the entry in the map at once and leaves
//! its queue slot behind as a tombstone, recognised by a stamp that does not match the entry's
//! current one. Tombstones are skipped when they reach a head and swept in one pass when they
//! outnumber the live entries, so removal is amortised O(1). Ghosts taken by an insert are
//! removed the same way.
//!
//! Invariants (between calls): every tracked entry has exactly one queue slot whose stamp
//! matches its own; `small_bytes`/`main_bytes` and `small_len`/`main_len` are the sums and counts
//! of the tracked entries in each queue; every remembered ghost (a ghost id's fingerprint, see
//! below) has exactly one live slot in the ghost FIFO, the one its index entry points to, and
//! `ghost_bytes` is the sum of the live slots' sizes, at most main's share.
//!
//! The ghosts are kept compact, as there may be a ghost for every value paged out: a FIFO of
//! 8-byte slots (a 32-bit fingerprint of the ghost id, and its bytes), and an index of 4-byte
//! slot numbers hashed by the fingerprint in the slot they point to, so a ghost costs about 8
//! bytes in the FIFO and 5 per table slot in the index. Two ids with the same fingerprint are one
//! ghost to the policy: with a million ghosts remembered, one insert in about four thousand finds
//! a ghost that is another's, and goes to main instead of small, which costs a cache of that
//! size nothing measurable. A ghost's bytes are kept in 32 bits: a value of 4 GiB or more leaves a ghost of 4 GiB less one
//! byte (the ghosts' total, which bounds how many are kept, counts it so throughout).

use std::collections::VecDeque;

use super::policy::{EntryId, EvictionPolicy, Residents, Victim};
use super::{IdMap, MIN_SHRINK, Mapped, shrink_mapped_map, shrink_queue};
use hashbrown::HashTable;

/// Highest frequency an entry can reach.
const MAX_FREQ: u8 = 3;

/// Tombstones tolerated before a sweep, whatever the number of live entries.
const MIN_SWEEP: usize = 64;

/// Settings of an [`S3Fifo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3FifoConfig {
    /// The cache's size in bytes (a pool's budget): the queues' shares are parts of it.
    pub capacity: u64,
    /// Small's share of the capacity, in percent (1..=100). The paper uses 10.
    pub small_percent: u8,
}

impl S3FifoConfig {
    /// Small's share in the paper, in percent.
    pub const DEFAULT_SMALL_PERCENT: u8 = 10;

    /// A cache of `capacity` bytes with the paper's settings.
    pub fn new(capacity: u64) -> S3FifoConfig {
        S3FifoConfig {
            capacity,
            small_percent: Self::DEFAULT_SMALL_PERCENT,
        }
    }
}

/// Counters and sizes of an [`S3Fifo`], for statistics and tests.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct S3FifoStats {
    /// Bytes in the small queue.
    pub small_bytes: u64,
    /// Bytes in the main queue.
    pub main_bytes: u64,
    /// Entries in the small queue.
    pub small_len: usize,
    /// Entries in the main queue.
    pub main_len: usize,
    /// Ghost ids remembered.
    pub ghosts: usize,
    /// Bytes the remembered ghost ids stand for.
    pub ghost_bytes: u64,
    /// Entries moved from small to main.
    pub promotions: u64,
    /// Inserts that found their ghost id and went straight to main.
    pub ghost_hits: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

#[derive(Debug, Clone)]
struct Meta {
    bytes: u64,
    freq: u8,
    queue: Queue,
    /// Matches the stamp of the entry's one live queue slot.
    stamp: u64,
}

/// S3-FIFO eviction by bytes. See the module documentation for the algorithm.
#[derive(Debug)]
pub struct S3Fifo {
    /// Small's share of the capacity, in bytes.
    small_share: u64,
    /// Main's share of the capacity, in bytes: also the ghosts' bytes.
    main_share: u64,
    entries: IdMap<Meta>,
    small: VecDeque<(EntryId, u64)>,
    main: VecDeque<(EntryId, u64)>,
    small_bytes: u64,
    main_bytes: u64,
    small_len: usize,
    main_len: usize,
    /// Queue slots whose entry was removed or replaced.
    tombstones: usize,
    next_stamp: u64,
    ghosts: Ghosts,
    promotions: u64,
    ghost_hits: u64,
}

/// One slot of the ghost FIFO: a ghost id's fingerprint and the bytes it stands for, in 8
/// bytes.
#[derive(Debug, Clone, Copy)]
struct GhostSlot {
    print: u32,
    bytes: u32,
}

impl GhostSlot {
    fn new(ghost: u64, bytes: u64) -> GhostSlot {
        GhostSlot {
            print: fingerprint(ghost),
            bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
        }
    }

    fn bytes(&self) -> u64 {
        u64::from(self.bytes)
    }
}

/// The 32 bits of a ghost id the ghosts keep: from its hash, so that ids that differ in any
/// bit (small ones in tests too) have different fingerprints, all but one in 2^32 of the time.
fn fingerprint(ghost: u64) -> u32 {
    (ghost.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

/// The index's hash of a fingerprint, spread over 64 bits.
fn print_hash(print: u32) -> u64 {
    (u64::from(print) << 32 | u64::from(print)).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// The ghost FIFO and its index. See the module documentation.
#[derive(Debug, Default)]
struct Ghosts {
    /// (ghost id's fingerprint, bytes), oldest first; slot `i` is number `first + i`
    /// (wrapping). A slot that the index does not point to is stale (its ghost was taken, or
    /// remembered again later).
    fifo: VecDeque<GhostSlot>,
    /// Number of the slot at the front of `fifo`.
    first: u32,
    /// The number of each remembered ghost's live slot, hashed by the fingerprint in that slot.
    /// Numbers are 32-bit and wrap: the FIFO never holds 2^32 slots (see `push`). A large table
    /// is a mapping of its own, as the policy's other tables are (see `memory::mapped`).
    index: HashTable<u32, Mapped>,
    /// Bytes of the live slots.
    bytes: u64,
}

/// Where slot `number` is in a FIFO whose front is slot `first`.
fn offset(number: u32, first: u32) -> usize {
    number.wrapping_sub(first) as usize
}

impl Ghosts {
    /// Forgets `ghost`; true if it was remembered.
    fn take(&mut self, ghost: u64) -> bool {
        let Ghosts {
            fifo, first, index, ..
        } = self;
        let print = fingerprint(ghost);
        let at = |n: &u32| fifo[offset(*n, *first)].print == print;
        match index.find_entry(print_hash(print), at) {
            Ok(e) => {
                let (number, _) = e.remove();
                self.bytes -= self.fifo[offset(number, self.first)].bytes();
                true
            }
            Err(_) => false,
        }
    }

    /// Remembers `ghost`, which is not remembered, as the newest. A FIFO of 2^32 - 1 slots (64
    /// GiB of them) first forgets its oldest, so that numbers stay unique.
    fn push(&mut self, ghost: u64, bytes: u64) {
        if self.fifo.len() >= u32::MAX as usize {
            self.pop_oldest();
        }
        let number = self.first.wrapping_add(self.fifo.len() as u32);
        let slot = GhostSlot::new(ghost, bytes);
        self.fifo.push_back(slot);
        let Ghosts {
            fifo, first, index, ..
        } = self;
        let hash = |n: &u32| print_hash(fifo[offset(*n, *first)].print);
        index.insert_unique(print_hash(slot.print), number, hash);
        self.bytes += slot.bytes();
    }

    /// Drops the oldest slot, forgetting its ghost if it is live; false if there is none.
    fn pop_oldest(&mut self) -> bool {
        let Some((print, bytes)) = self.fifo.front().map(|s| (s.print, s.bytes())) else {
            return false;
        };
        let number = self.first;
        if let Ok(e) = self
            .index
            .find_entry(print_hash(print), |n: &u32| *n == number)
        {
            e.remove();
            self.bytes -= bytes;
        }
        self.fifo.pop_front();
        self.first = self.first.wrapping_add(1);
        true
    }

    /// Once stale slots outnumber live ones (by a margin), keeps only the live ones, renumbered,
    /// and rebuilds the index; gives back unused room.
    fn sweep_if_needed(&mut self) {
        if self.fifo.len() > 2 * self.index.len() + MIN_SWEEP {
            let mut live = vec![false; self.fifo.len()];
            for &n in self.index.iter() {
                live[offset(n, self.first)] = true;
            }
            let mut i = 0;
            self.fifo.retain(|_| {
                i += 1;
                live[i - 1]
            });
            self.first = 0;
            self.index.clear();
            for (n, slot) in self.fifo.iter().enumerate() {
                let fifo = &self.fifo;
                self.index
                    .insert_unique(print_hash(slot.print), n as u32, |m: &u32| {
                        print_hash(fifo[*m as usize].print)
                    });
            }
        }
        shrink_queue(&mut self.fifo);
        if self.index.capacity() > MIN_SHRINK && self.index.len() < self.index.capacity() / 4 {
            let Ghosts {
                fifo, first, index, ..
            } = self;
            index.shrink_to(index.len() * 2, |n: &u32| {
                print_hash(fifo[offset(*n, *first)].print)
            });
        }
    }
}

/// One call of `evict`: what it freed, what it holds aside and how much work it has left.
struct Run {
    victims: Vec<Victim>,
    freed: u64,
    /// Entries refused by the runtime, put back at the tails of their queues at the end.
    held: Vec<EntryId>,
    steps: usize,
    /// No live slot left in small / main for this call.
    small_out: bool,
    main_out: bool,
}

impl S3Fifo {
    /// An empty S3-FIFO for a cache of `capacity` bytes, with the paper's settings.
    pub fn new(capacity: u64) -> S3Fifo {
        S3Fifo::with_config(S3FifoConfig::new(capacity))
    }

    /// An empty S3-FIFO with the given settings (`small_percent` is clamped to 1..=100).
    pub fn with_config(config: S3FifoConfig) -> S3Fifo {
        let percent = config.small_percent.clamp(1, 100);
        // u128 so that capacities near u64::MAX do not overflow; the result is <= capacity.
        let small_share = (u128::from(config.capacity) * u128::from(percent) / 100) as u64;
        S3Fifo {
            small_share,
            main_share: config.capacity - small_share,
            entries: IdMap::default(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_bytes: 0,
            main_bytes: 0,
            small_len: 0,
            main_len: 0,
            tombstones: 0,
            next_stamp: 0,
            ghosts: Ghosts::default(),
            promotions: 0,
            ghost_hits: 0,
        }
    }

    /// Sizes and counters.
    #[cfg(any(test, feature = "testing"))]
    pub fn stats(&self) -> S3FifoStats {
        S3FifoStats {
            small_bytes: self.small_bytes,
            main_bytes: self.main_bytes,
            small_len: self.small_len,
            main_len: self.main_len,
            ghosts: self.ghosts.index.len(),
            ghost_bytes: self.ghosts.bytes,
            promotions: self.promotions,
            ghost_hits: self.ghost_hits,
        }
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    fn account(&mut self, queue: Queue, bytes: u64, add: bool) {
        let (total, len) = match queue {
            Queue::Small => (&mut self.small_bytes, &mut self.small_len),
            Queue::Main => (&mut self.main_bytes, &mut self.main_len),
        };
        if add {
            *total += bytes;
            *len += 1;
        } else {
            *total -= bytes;
            *len -= 1;
        }
    }

    /// Appends a slot for the tracked entry `id` at the tail of its queue, with a fresh stamp.
    fn enqueue(&mut self, id: EntryId) {
        let stamp = self.stamp();
        let Some(meta) = self.entries.get_mut(&id) else {
            return;
        };
        meta.stamp = stamp;
        match meta.queue {
            Queue::Small => self.small.push_back((id, stamp)),
            Queue::Main => self.main.push_back((id, stamp)),
        }
    }

    /// Pops the first live slot of `queue`, dropping tombstones on the way.
    fn pop_live(&mut self, queue: Queue) -> Option<EntryId> {
        loop {
            let (id, stamp) = match queue {
                Queue::Small => self.small.pop_front()?,
                Queue::Main => self.main.pop_front()?,
            };
            if self.entries.get(&id).is_some_and(|m| m.stamp == stamp) {
                return Some(id);
            }
            self.tombstones -= 1;
        }
    }

    /// Gives back the tables' room once most of it is unused (see [`shrink_map`]).
    fn shrink(&mut self) {
        shrink_mapped_map(&mut self.entries);
        shrink_queue(&mut self.small);
        shrink_queue(&mut self.main);
    }

    fn sweep_if_needed(&mut self) {
        if self.tombstones > MIN_SWEEP && self.tombstones > self.entries.len() {
            let entries = &self.entries;
            let live =
                |&(id, stamp): &(EntryId, u64)| entries.get(&id).is_some_and(|m| m.stamp == stamp);
            self.small.retain(live);
            self.main.retain(live);
            self.tombstones = 0;
        }
    }

    /// True if `ghost` was remembered; it no longer is.
    fn take_ghost(&mut self, ghost: u64) -> bool {
        self.ghosts.take(ghost)
    }

    /// Takes the hits of `id` into its frequency and returns the new frequency.
    fn absorb_hits(&mut self, id: EntryId, residents: &mut dyn Residents) -> u8 {
        let hits = residents.take_hits(id);
        match self.entries.get_mut(&id) {
            Some(meta) => {
                meta.freq = meta.freq.saturating_add(hits).min(MAX_FREQ);
                meta.freq
            }
            None => 0,
        }
    }

    fn take_out(&mut self, id: EntryId) -> Option<Meta> {
        let meta = self.entries.remove(&id)?;
        self.account(meta.queue, meta.bytes, false);
        Some(meta)
    }

    /// One eviction: from small if it holds its share (or main has nothing left), else from
    /// main; from the other if the chosen one has nothing left in this call.
    fn evict_one(&mut self, run: &mut Run, residents: &mut dyn Residents) {
        let from_small = !run.small_out
            && (self.small_bytes >= self.small_share || self.main_len == 0 || run.main_out);
        if from_small {
            self.evict_small(run, residents);
        } else {
            self.evict_main(run, residents);
        }
    }

    /// Promotes reused heads of small until one that was not reused is evicted, or small is
    /// used up.
    fn evict_small(&mut self, run: &mut Run, residents: &mut dyn Residents) {
        while run.steps > 0 {
            run.steps -= 1;
            let Some(id) = self.pop_live(Queue::Small) else {
                run.small_out = true;
                return;
            };
            if self.absorb_hits(id, residents) >= 1 {
                let Some(meta) = self.entries.get_mut(&id) else {
                    continue;
                };
                meta.freq = 0;
                meta.queue = Queue::Main;
                let bytes = meta.bytes;
                self.account(Queue::Small, bytes, false);
                self.account(Queue::Main, bytes, true);
                self.enqueue(id);
                self.promotions += 1;
                run.main_out = false;
                if self.main_bytes > self.main_share {
                    self.evict_main(run, residents);
                }
                continue;
            }
            if !residents.can_evict(id) {
                run.held.push(id);
                continue;
            }
            if let Some(meta) = self.take_out(id) {
                run.freed = run.freed.saturating_add(meta.bytes);
                run.victims.push(Victim {
                    id,
                    bytes: meta.bytes,
                    ghost: true,
                });
                return;
            }
        }
    }

    /// Gives heads of main with frequency > 0 another round until one with frequency 0 is
    /// evicted, or main is used up.
    fn evict_main(&mut self, run: &mut Run, residents: &mut dyn Residents) {
        while run.steps > 0 {
            run.steps -= 1;
            let Some(id) = self.pop_live(Queue::Main) else {
                run.main_out = true;
                return;
            };
            if self.absorb_hits(id, residents) > 0 {
                if let Some(meta) = self.entries.get_mut(&id) {
                    meta.freq -= 1;
                }
                self.enqueue(id);
                continue;
            }
            if !residents.can_evict(id) {
                run.held.push(id);
                continue;
            }
            if let Some(meta) = self.take_out(id) {
                run.freed = run.freed.saturating_add(meta.bytes);
                run.victims.push(Victim {
                    id,
                    bytes: meta.bytes,
                    ghost: false,
                });
                return;
            }
        }
    }
}

impl EvictionPolicy for S3Fifo {
    fn insert(&mut self, id: EntryId, bytes: u64, ghost: Option<u64>) {
        self.remove(id);
        let queue = match ghost {
            Some(g) if self.take_ghost(g) => {
                self.ghost_hits += 1;
                Queue::Main
            }
            _ => Queue::Small,
        };
        self.entries.insert(
            id,
            Meta {
                bytes,
                freq: 0,
                queue,
                stamp: 0,
            },
        );
        self.account(queue, bytes, true);
        self.enqueue(id);
    }

    fn resize(&mut self, id: EntryId, bytes: u64) {
        let Some(meta) = self.entries.get_mut(&id) else {
            return;
        };
        let (old, queue) = (meta.bytes, meta.queue);
        meta.bytes = bytes;
        let total = match queue {
            Queue::Small => &mut self.small_bytes,
            Queue::Main => &mut self.main_bytes,
        };
        *total = *total - old + bytes;
    }

    fn remove(&mut self, id: EntryId) {
        if self.take_out(id).is_some() {
            self.tombstones += 1;
            self.sweep_if_needed();
            self.shrink();
        }
    }

    fn evict(&mut self, bytes: u64, residents: &mut dyn Residents) -> Vec<Victim> {
        // An entry leaves after at most one step in small and MAX_FREQ + 1 in main; the bound
        // allows that for every slot and keeps the call finite even if the runtime reports hits
        // on every question.
        let mut run = Run {
            victims: Vec::new(),
            freed: 0,
            held: Vec::new(),
            steps: (self.small.len() + self.main.len() + 1) * (usize::from(MAX_FREQ) + 3),
            small_out: false,
            main_out: false,
        };
        while run.freed < bytes && run.steps > 0 && !(run.small_out && run.main_out) {
            self.evict_one(&mut run, residents);
        }
        for id in std::mem::take(&mut run.held) {
            self.enqueue(id);
        }
        self.sweep_if_needed();
        self.shrink();
        run.victims
    }

    fn remember(&mut self, ghost: u64, bytes: u64) {
        // Remembered again: the older slot becomes stale.
        self.ghosts.take(ghost);
        self.ghosts.push(ghost, bytes);
        while self.ghosts.bytes > self.main_share && self.ghosts.pop_oldest() {}
        self.ghosts.sweep_if_needed();
    }

    fn tracked_bytes(&self) -> u64 {
        self.small_bytes + self.main_bytes
    }

    fn memory_bytes(&self) -> usize {
        super::mapped_map_bytes(&self.entries)
            + super::queue_bytes(&self.small)
            + super::queue_bytes(&self.main)
            + super::queue_bytes(&self.ghosts.fifo)
            + super::table_bytes(self.ghosts.index.capacity(), std::mem::size_of::<u32>())
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn contains(&self, id: EntryId) -> bool {
        self.entries.contains_key(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet, VecDeque};

    #[derive(Default)]
    struct Fake {
        hits: HashMap<EntryId, u8>,
        pinned: HashSet<EntryId>,
    }

    impl Residents for Fake {
        fn take_hits(&mut self, id: EntryId) -> u8 {
            self.hits.remove(&id).unwrap_or(0)
        }
        fn can_evict(&mut self, id: EntryId) -> bool {
            !self.pinned.contains(&id)
        }
    }

    fn ids(victims: &[Victim]) -> Vec<EntryId> {
        victims.iter().map(|v| v.id).collect()
    }

    #[test]
    fn one_hit_wonders_leave_from_small_and_reused_entries_are_promoted() {
        let mut p = S3Fifo::new(100);
        let mut r = Fake::default();
        for id in 0..10 {
            p.insert(id, 10, None);
        }
        r.hits.insert(0, 1);
        r.hits.insert(1, 2);
        let v = p.evict(10, &mut r);
        assert_eq!(
            v,
            [Victim {
                id: 2,
                bytes: 10,
                ghost: true
            }],
            "0 and 1 were reused and go to main; 2 is the first victim, and leaves a ghost"
        );
        let s = p.stats();
        assert_eq!((s.main_len, s.small_len, s.promotions), (2, 7, 2));
        assert_eq!(
            s.ghosts, 0,
            "a ghost is remembered once the victim has left memory"
        );
        p.remember(102, 10);
        assert_eq!((p.stats().ghosts, p.stats().ghost_bytes), (1, 10));
        // 2 comes back under its ghost id: straight to main.
        p.insert(2, 10, Some(102));
        assert_eq!(p.stats().main_len, 3);
        assert_eq!(p.stats().ghost_hits, 1);
        assert_eq!(p.stats().ghosts, 0);
    }

    #[test]
    fn main_gives_a_second_chance_per_frequency_step() {
        let mut p = S3Fifo::new(100);
        let mut r = Fake::default();
        p.insert(1, 10, None);
        p.insert(2, 10, None);
        assert_eq!(ids(&p.evict(10, &mut r)), [1]);
        p.remember(1, 10);
        assert_eq!(ids(&p.evict(10, &mut r)), [2]);
        p.remember(2, 10);
        p.insert(1, 10, Some(1));
        p.insert(2, 10, Some(2));
        assert_eq!(p.stats().main_len, 2);
        r.hits.insert(1, 5);
        // 1 has frequency 3 (saturated): it is passed over three times before it can go.
        let v = p.evict(20, &mut r);
        assert_eq!(ids(&v), [2, 1]);
        assert!(
            v.iter().all(|v| !v.ghost),
            "victims from main leave no ghost"
        );
        assert!(p.is_empty());
    }

    #[test]
    fn small_holds_its_share_of_the_capacity() {
        // Capacity 100: small's share is 10 bytes, main's 90.
        let mut p = S3Fifo::new(100);
        let mut r = Fake::default();
        for id in 0..10 {
            p.insert(id, 10, None);
            r.hits.insert(id, 1);
        }
        p.insert(10, 10, None);
        p.insert(11, 10, None);
        // The reused entries move to main; with the tenth, main passes its share of 90 bytes
        // and gives up its head; then small evicts its first unused entry.
        let v = p.evict(10, &mut r);
        assert_eq!(ids(&v), [0, 10]);
        assert_eq!(v.iter().map(|v| v.ghost).collect::<Vec<_>>(), [false, true]);
        let s = p.stats();
        assert_eq!((s.small_len, s.main_len, s.promotions), (1, 9, 10));
        // Small (10 bytes) holds its share: the next eviction takes from it again.
        assert_eq!(ids(&p.evict(1, &mut r)), [11]);
        // Now small is below its share: main gives up its head.
        assert_eq!(ids(&p.evict(1, &mut r)), [1]);
    }

    #[test]
    fn tables_give_back_their_room_after_a_mass_eviction() {
        let n = 16 * crate::memory::MIN_SHRINK as u64;
        let mut p = S3Fifo::new(10 * n);
        for id in 0..n {
            p.insert(id, 1, Some(id));
        }
        let high = p.entries.capacity();
        let v = p.evict(n - 10, &mut Fake::default());
        assert_eq!(v.len() as u64, n - 10);
        for victim in &v {
            p.remember(victim.id, victim.bytes);
        }
        assert_eq!(p.len(), 10);
        assert!(p.entries.capacity() < high / 8, "the entry table shrank");
        assert!(
            p.small.capacity() < n as usize / 8,
            "the small queue shrank"
        );
        // What is left is still tracked, and the ghosts still bring values back to main.
        assert_eq!(p.tracked_bytes(), 10);
        p.insert(n, 1, Some(0));
        assert_eq!((p.stats().main_len, p.stats().ghost_hits), (1, 1));
        let v = p.evict(11, &mut Fake::default());
        assert_eq!(v.len(), 11);
        assert!(p.is_empty());
    }

    /// The ghosts against a plain model of them (a FIFO of stamped slots and a map from id to
    /// its live stamp and bytes), through removals, re-remembers, trims and sweeps.
    #[test]
    fn compact_ghosts_behave_as_a_plain_fifo_and_map() {
        let share = 5_000u64;
        let mut ghosts = Ghosts::default();
        let mut fifo: VecDeque<(u64, u64)> = VecDeque::new();
        let mut live: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut model_bytes = 0u64;
        let mut stamp = 0u64;
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ghost = x % 3_000;
            let bytes = 1 + (x >> 20) % 9;
            if x.is_multiple_of(3) {
                let taken = ghosts.take(ghost);
                let model = live.remove(&ghost).map(|(_, b)| model_bytes -= b).is_some();
                assert_eq!(taken, model, "take {ghost} at step {step}");
            } else {
                // `remember`, as S3Fifo does it.
                ghosts.take(ghost);
                ghosts.push(ghost, bytes);
                while ghosts.bytes > share && ghosts.pop_oldest() {}
                ghosts.sweep_if_needed();
                if let Some((_, b)) = live.remove(&ghost) {
                    model_bytes -= b;
                }
                stamp += 1;
                live.insert(ghost, (stamp, bytes));
                fifo.push_back((ghost, stamp));
                model_bytes += bytes;
                while model_bytes > share {
                    let Some((g, s)) = fifo.pop_front() else {
                        break;
                    };
                    if let Some(&(l, b)) = live.get(&g)
                        && l == s
                    {
                        live.remove(&g);
                        model_bytes -= b;
                    }
                }
            }
            assert_eq!(
                (ghosts.index.len(), ghosts.bytes),
                (live.len(), model_bytes)
            );
            assert!(ghosts.fifo.len() <= 2 * ghosts.index.len() + MIN_SWEEP + 1);
        }
        let mut left: Vec<u64> = live.keys().copied().collect();
        left.sort_unstable();
        for g in left {
            assert!(ghosts.take(g), "ghost {g} is remembered");
        }
        assert_eq!((ghosts.index.len(), ghosts.bytes), (0, 0));
    }

    #[test]
    fn a_ghost_slot_is_eight_bytes_and_a_huge_value_counts_as_its_largest_size() {
        assert_eq!(std::mem::size_of::<GhostSlot>(), 8);
        let mut ghosts = Ghosts::default();
        ghosts.push(1, 6 << 30);
        ghosts.push(2, 5);
        assert_eq!(ghosts.bytes, u64::from(u32::MAX) + 5);
        assert!(ghosts.take(1));
        assert_eq!(ghosts.bytes, 5);
        assert!(ghosts.pop_oldest() && ghosts.pop_oldest() && !ghosts.pop_oldest());
        assert_eq!((ghosts.index.len(), ghosts.bytes), (0, 0));
    }

    /// Fingerprints are 32 bits: ids that share one are one ghost.
    #[test]
    fn ids_with_one_fingerprint_are_one_ghost() {
        // The inverse of the fingerprint's multiplier modulo 2^64, by Newton's iteration.
        let k: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut inv: u64 = 1;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(k.wrapping_mul(inv)));
        }
        assert_eq!(k.wrapping_mul(inv), 1);
        let a = 5u64;
        let b = ((u64::from(fingerprint(a)) << 32) | 12_345).wrapping_mul(inv);
        assert!(a != b && fingerprint(a) == fingerprint(b));
        let mut ghosts = Ghosts::default();
        ghosts.push(a, 10);
        assert!(ghosts.take(b), "b finds a's ghost");
        assert!(!ghosts.take(a));
    }

    #[test]
    fn ghost_slot_numbers_wrap() {
        let mut ghosts = Ghosts {
            first: u32::MAX - 2,
            ..Ghosts::default()
        };
        for g in 0..6u64 {
            ghosts.push(g, 10 + g);
        }
        assert_eq!(ghosts.bytes, 75);
        // Slots u32::MAX - 2 .. u32::MAX hold 0..=2; 3..=5 are numbered 0..=2 after the wrap.
        assert!(ghosts.take(4));
        assert!(!ghosts.take(4));
        for _ in 0..4 {
            assert!(ghosts.pop_oldest());
        }
        assert_eq!(ghosts.first, 1);
        assert_eq!((ghosts.index.len(), ghosts.bytes), (1, 15));
        assert!(!ghosts.take(3) && ghosts.take(5));
        ghosts.push(9, 1);
        assert!(ghosts.take(9));
        assert_eq!((ghosts.index.len(), ghosts.bytes), (0, 0));
    }

    #[test]
    fn ghosts_hold_as_many_bytes_as_main_may() {
        let mut p = S3Fifo::new(100);
        for g in 0..20 {
            p.remember(g, 10);
        }
        let s = p.stats();
        assert_eq!((s.ghosts, s.ghost_bytes), (9, 90));
        // The oldest went first.
        p.insert(1, 10, Some(5));
        assert_eq!(p.stats().main_len, 0, "ghost 5 was forgotten");
        p.insert(2, 10, Some(15));
        assert_eq!(p.stats().main_len, 1, "ghost 15 was remembered");
        assert_eq!(p.stats().ghost_bytes, 80);
        // A ghost remembered again counts once.
        p.remember(16, 10);
        assert_eq!(p.stats().ghost_bytes, 80);
    }

    #[test]
    fn everything_pinned_terminates_and_keeps_everything() {
        let mut p = S3Fifo::new(1000);
        let mut r = Fake::default();
        for id in 0..100 {
            p.insert(id, 7, Some(id));
            r.pinned.insert(id);
            if id % 3 == 0 {
                r.hits.insert(id, 3);
            }
        }
        let v = p.evict(u64::MAX, &mut r);
        assert!(v.is_empty());
        assert_eq!(p.len(), 100);
        assert_eq!(p.tracked_bytes(), 700);
    }

    #[test]
    fn tombstones_are_swept() {
        let mut p = S3Fifo::new(1000);
        for id in 0..1000 {
            p.insert(id, 1, None);
        }
        for id in 0..990 {
            p.remove(id);
        }
        assert!(p.small.len() <= 2 * p.len() + MIN_SWEEP + 1);
        assert_eq!(p.tracked_bytes(), 10);
        let v = p.evict(u64::MAX, &mut Fake::default());
        assert_eq!(v.len(), 10);
        assert!(v.iter().all(|v| v.id >= 990));
    }
}

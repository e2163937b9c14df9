//! [`S3Fifo`]: scan-resistant eviction with three FIFO queues, sized in bytes.
//!
//! The algorithm is S3-FIFO, from Juncheng Yang, Yazhuo Zhang, Ziyue Qiu, Yao Yue and
//! K. V. Rashmi, "FIFO queues are all you need for cache eviction", SOSP 2023. Its observation is
//! that most objects in real workloads are touched once and never again ("one-hit wonders"), so
//! the cheapest way to protect the useful ones is to give every newcomer a short probation and
//! let only those reused during it into the long-lived part of the cache. Here it is with sizes
//! in bytes rather than in entries, because the budget is in bytes:
//!
//! - **small** is a FIFO for newcomers, kept to about 10 % of the tracked bytes;
//! - **main** is a FIFO for entries that proved themselves (about 90 %);
//! - **ghost** is a bounded FIFO of content ids (not values) of entries recently evicted from
//!   small, holding roughly as many ids as main holds entries.
//!
//! Each entry has a frequency from 0 to 3, raised by the hits the runtime reports through
//! [`Residents::take_hits`] (read only when the entry reaches the head of a queue, so hits cost
//! the policy nothing) and saturating at 3.
//!
//! - *Insert*: an entry whose ghost id is remembered was evicted recently and is back, so it goes
//!   straight to main (and the ghost id is forgotten); any other entry goes to small.
//! - *Evict*, until enough bytes are freed: take from small while it holds at least its share of
//!   the bytes (or main is empty), else from main.
//!   - From small: a head reused since insertion (frequency ≥ 1) moves to main with frequency 0;
//!     otherwise it is evicted and its ghost id remembered.
//!   - From main: a head with frequency > 0 goes back to the tail with frequency − 1 (a
//!     second-chance clock that forgets old popularity); otherwise it is evicted.
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
//! outnumber the live entries, so removal is amortised O(1).
//!
//! Invariants (between calls): every tracked entry has exactly one queue slot whose stamp
//! matches its own;
//! `small_bytes`/`main_bytes` and `small_len`/`main_len` are the sums and counts of the tracked
//! entries in each queue; every id in the ghost set has a slot in the ghost FIFO with its stamp.

use std::collections::{HashMap, VecDeque};

use super::policy::{EntryId, EvictionPolicy, Residents};

/// Highest frequency an entry can reach.
const MAX_FREQ: u8 = 3;

/// Tombstones tolerated before a sweep, whatever the number of live entries.
const MIN_SWEEP: usize = 64;

/// Settings of an [`S3Fifo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3FifoConfig {
    /// Share of the tracked bytes that the small queue may hold before eviction takes from it,
    /// in percent (1..=100). The paper uses 10.
    pub small_percent: u8,
    /// The ghost FIFO remembers at least this many ids, however small main is.
    pub min_ghosts: usize,
}

impl Default for S3FifoConfig {
    fn default() -> S3FifoConfig {
        S3FifoConfig {
            small_percent: 10,
            min_ghosts: 64,
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
    ghost: Option<u64>,
    /// Matches the stamp of the entry's one live queue slot.
    stamp: u64,
}

/// S3-FIFO eviction by bytes. See the module documentation for the algorithm.
#[derive(Debug, Default)]
pub struct S3Fifo {
    config: S3FifoConfig,
    entries: HashMap<EntryId, Meta>,
    small: VecDeque<(EntryId, u64)>,
    main: VecDeque<(EntryId, u64)>,
    small_bytes: u64,
    main_bytes: u64,
    small_len: usize,
    main_len: usize,
    /// Queue slots whose entry was removed or replaced.
    tombstones: usize,
    next_stamp: u64,
    ghosts: VecDeque<(u64, u64)>,
    ghost_set: HashMap<u64, u64>,
    promotions: u64,
    ghost_hits: u64,
}

impl S3Fifo {
    /// An empty S3-FIFO with the paper's settings.
    pub fn new() -> S3Fifo {
        S3Fifo::with_config(S3FifoConfig::default())
    }

    /// An empty S3-FIFO with the given settings (`small_percent` is clamped to 1..=100).
    pub fn with_config(mut config: S3FifoConfig) -> S3Fifo {
        config.small_percent = config.small_percent.clamp(1, 100);
        S3Fifo {
            config,
            ..S3Fifo::default()
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
            ghosts: self.ghost_set.len(),
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

    fn ghost_capacity(&self) -> usize {
        self.main_len.max(self.config.min_ghosts)
    }

    fn remember_ghost(&mut self, ghost: u64) {
        let stamp = self.stamp();
        self.ghost_set.insert(ghost, stamp);
        self.ghosts.push_back((ghost, stamp));
        let cap = self.ghost_capacity();
        while self.ghost_set.len() > cap {
            let Some((g, s)) = self.ghosts.pop_front() else {
                break;
            };
            if self.ghost_set.get(&g) == Some(&s) {
                self.ghost_set.remove(&g);
            }
        }
        if self.ghosts.len() > 2 * self.ghost_set.len() + MIN_SWEEP {
            let set = &self.ghost_set;
            self.ghosts.retain(|(g, s)| set.get(g) == Some(s));
        }
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
}

/// What one step of `evict` did.
enum Step {
    /// An entry moved forward (promoted, or its frequency spent): progress, nothing freed.
    Moved,
    /// An entry was evicted.
    Evicted(EntryId, u64),
    /// The runtime refused to let the head go; it is out of its queue until re-enqueued.
    Refused(EntryId),
}

impl S3Fifo {
    fn step_small(&mut self, residents: &mut dyn Residents) -> Option<Step> {
        let id = self.pop_live(Queue::Small)?;
        if self.absorb_hits(id, residents) >= 1 {
            let meta = self.entries.get_mut(&id)?;
            meta.freq = 0;
            meta.queue = Queue::Main;
            let bytes = meta.bytes;
            self.account(Queue::Small, bytes, false);
            self.account(Queue::Main, bytes, true);
            self.enqueue(id);
            self.promotions += 1;
            return Some(Step::Moved);
        }
        if !residents.can_evict(id) {
            return Some(Step::Refused(id));
        }
        let meta = self.take_out(id)?;
        if let Some(g) = meta.ghost {
            self.remember_ghost(g);
        }
        Some(Step::Evicted(id, meta.bytes))
    }

    fn step_main(&mut self, residents: &mut dyn Residents) -> Option<Step> {
        let id = self.pop_live(Queue::Main)?;
        if self.absorb_hits(id, residents) > 0 {
            if let Some(meta) = self.entries.get_mut(&id) {
                meta.freq -= 1;
            }
            self.enqueue(id);
            return Some(Step::Moved);
        }
        if !residents.can_evict(id) {
            return Some(Step::Refused(id));
        }
        let meta = self.take_out(id)?;
        Some(Step::Evicted(id, meta.bytes))
    }
}

impl EvictionPolicy for S3Fifo {
    fn insert(&mut self, id: EntryId, bytes: u64, ghost: Option<u64>) {
        self.remove(id);
        let queue = match ghost {
            Some(g) if self.ghost_set.remove(&g).is_some() => {
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
                ghost,
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
        }
    }

    fn evict(&mut self, bytes: u64, residents: &mut dyn Residents) -> Vec<(EntryId, u64)> {
        let mut victims = Vec::new();
        let mut freed = 0u64;
        // Refused entries are held aside until the end of the call, so that each is looked at
        // once per call and a queue full of pinned entries is simply used up.
        let mut held: Vec<EntryId> = Vec::new();
        let (mut small_done, mut main_done) = (false, false);
        // An entry leaves after at most one step in small and MAX_FREQ + 1 in main; the bound
        // allows that for every slot and keeps the call finite even if the runtime reports hits
        // on every question.
        let mut steps = (self.small.len() + self.main.len() + 1) * (usize::from(MAX_FREQ) + 3);
        while freed < bytes && steps > 0 {
            steps -= 1;
            let from_small = match (small_done, main_done) {
                (true, true) => break,
                (false, true) => true,
                (true, false) => false,
                (false, false) => {
                    let tracked = u128::from(self.small_bytes + self.main_bytes);
                    let share = u128::from(self.small_bytes) * 100;
                    self.main_len == 0 || share >= tracked * u128::from(self.config.small_percent)
                }
            };
            let step = if from_small {
                self.step_small(residents)
            } else {
                self.step_main(residents)
            };
            match step {
                None if from_small => small_done = true,
                None => main_done = true,
                Some(Step::Moved) => {
                    // A promotion gives main new work.
                    main_done = false;
                }
                Some(Step::Refused(id)) => held.push(id),
                Some(Step::Evicted(id, size)) => {
                    freed = freed.saturating_add(size);
                    victims.push((id, size));
                }
            }
        }
        for id in held {
            self.enqueue(id);
        }
        self.sweep_if_needed();
        victims
    }

    fn tracked_bytes(&self) -> u64 {
        self.small_bytes + self.main_bytes
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
    use std::collections::{HashMap, HashSet};

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

    #[test]
    fn one_hit_wonders_leave_from_small_and_reused_entries_are_promoted() {
        let mut p = S3Fifo::new();
        let mut r = Fake::default();
        for id in 0..10 {
            p.insert(id, 10, Some(id + 100));
        }
        r.hits.insert(0, 1);
        r.hits.insert(1, 2);
        let v = p.evict(10, &mut r);
        assert_eq!(
            v,
            [(2, 10)],
            "0 and 1 were reused and go to main; 2 is the first victim"
        );
        let s = p.stats();
        assert_eq!((s.main_len, s.small_len, s.promotions), (2, 7, 2));
        assert_eq!(s.ghosts, 1);
        // 2 comes back: its ghost id sends it straight to main.
        p.insert(2, 10, Some(102));
        assert_eq!(p.stats().main_len, 3);
        assert_eq!(p.stats().ghost_hits, 1);
    }

    #[test]
    fn main_gives_a_second_chance_per_frequency_step() {
        let mut p = S3Fifo::new();
        let mut r = Fake::default();
        p.insert(1, 10, Some(1));
        p.insert(2, 10, Some(2));
        p.evict(10, &mut r); // 1 -> ghost
        p.evict(10, &mut r); // 2 -> ghost
        p.insert(1, 10, Some(1));
        p.insert(2, 10, Some(2));
        assert_eq!(p.stats().main_len, 2);
        r.hits.insert(1, 5);
        // 1 has frequency 3 (saturated): it is passed over three times before it can go.
        let v = p.evict(20, &mut r);
        assert_eq!(v, [(2, 10), (1, 10)]);
        assert!(p.is_empty());
    }

    #[test]
    fn everything_pinned_terminates_and_keeps_everything() {
        let mut p = S3Fifo::new();
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
        let mut p = S3Fifo::new();
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
        assert!(v.iter().all(|&(id, _)| id >= 990));
    }
}

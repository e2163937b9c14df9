//! Hit ratios of the eviction policies in a small simulated cache.
//!
//! The simulator is a cache of `capacity` bytes that inserts on a miss and, when an insert would
//! pass the capacity, evicts through the policy first, the way the paging runtime does. It
//! feeds S3-FIFO hit counters and LRU an access log, and hands victims that leave a ghost back
//! under their ids, as the runtime does. The assertions are properties of the algorithms on
//! fixed, seeded traces, not timings. (`pool_replay.rs` holds a pool to an independent
//! simulator.)

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use spillway::memory::{EntryId, EvictionPolicy, PolicyKind, Residents};

struct Counters<'a>(&'a mut HashMap<EntryId, u8>);

impl Residents for Counters<'_> {
    fn take_hits(&mut self, id: EntryId) -> u8 {
        self.0.insert(id, 0).unwrap_or(0)
    }
    fn can_evict(&mut self, _id: EntryId) -> bool {
        true
    }
}

struct Sim {
    policy: Box<dyn EvictionPolicy>,
    capacity: u64,
    used: u64,
    /// Resident object -> (size, hits since the policy last asked).
    sizes: HashMap<EntryId, u64>,
    hits_since: HashMap<EntryId, u8>,
    hits: u64,
    accesses: u64,
}

impl Sim {
    fn new(kind: PolicyKind, capacity: u64) -> Sim {
        Sim {
            policy: kind.build(capacity),
            capacity,
            used: 0,
            sizes: HashMap::new(),
            hits_since: HashMap::new(),
            hits: 0,
            accesses: 0,
        }
    }

    /// Accesses object `id` of `size` bytes; true on a hit.
    fn access(&mut self, id: EntryId, size: u64) -> bool {
        self.accesses += 1;
        if self.sizes.contains_key(&id) {
            self.hits += 1;
            let h = self.hits_since.entry(id).or_default();
            *h = h.saturating_add(1);
            if self.policy.wants_access_log() {
                self.policy.record_accesses(&[id]);
            }
            return true;
        }
        if size > self.capacity {
            return false;
        }
        if self.used + size > self.capacity {
            let need = self.used + size - self.capacity;
            let victims = self.policy.evict(need, &mut Counters(&mut self.hits_since));
            for v in victims {
                assert_eq!(self.sizes.remove(&v.id), Some(v.bytes));
                self.hits_since.remove(&v.id);
                self.used -= v.bytes;
                if v.ghost {
                    self.policy.remember(v.id, v.bytes);
                }
            }
            assert!(
                self.used + size <= self.capacity,
                "the policy freed too little"
            );
        }
        self.policy.insert(id, size, Some(id));
        self.sizes.insert(id, size);
        self.used += size;
        false
    }

    fn hit_ratio(&self) -> f64 {
        self.hits as f64 / self.accesses as f64
    }
}

/// A hot set that fits, accessed over and over, while a long one-time scan of cold objects goes
/// by. Returns the hit ratio on the hot accesses from the start of the scan on.
fn scan_trace(kind: PolicyKind) -> f64 {
    const KIB: u64 = 1024;
    let hot: Vec<u64> = (0..200).collect();
    let mut sim = Sim::new(kind, 256 * KIB);
    let mut rng = StdRng::seed_from_u64(7);
    let mut round = hot.clone();
    for _ in 0..10 {
        round.shuffle(&mut rng);
        for &id in &round {
            sim.access(id, KIB);
        }
    }
    let (mut hot_hits, mut hot_accesses) = (0u64, 0u64);
    let mut next_hot = 0usize;
    // The scan: 4000 objects never seen before and never seen again, one hot access every two.
    for cold in 0..4000u64 {
        sim.access(1_000_000 + cold, KIB);
        if cold % 2 == 1 {
            hot_accesses += 1;
            hot_hits += u64::from(sim.access(hot[next_hot % hot.len()], KIB));
            next_hot += 1;
        }
    }
    for _ in 0..10 {
        round.shuffle(&mut rng);
        for &id in &round {
            hot_accesses += 1;
            hot_hits += u64::from(sim.access(id, KIB));
        }
    }
    hot_hits as f64 / hot_accesses as f64
}

#[test]
fn s3fifo_keeps_the_hot_set_through_a_scan_and_lru_loses_it() {
    let s3 = scan_trace(PolicyKind::S3Fifo);
    let lru = scan_trace(PolicyKind::Lru);
    println!("hot-set hit ratio during and after a scan: S3-FIFO {s3:.3}, LRU {lru:.3}");
    assert!(s3 >= 0.95, "S3-FIFO lost the hot set: {s3:.3}");
    assert!(
        lru <= 0.6,
        "LRU should have lost the hot set during the scan: {lru:.3}"
    );
}

/// Ranks 0..n drawn with probability proportional to 1 / (rank + 1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 0..n {
            total += 1.0 / ((rank + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// A Zipf(0.99) trace over objects of varied sizes, in a cache of a tenth of the distinct bytes.
fn zipf_trace(kind: PolicyKind) -> f64 {
    const OBJECTS: usize = 20_000;
    const ACCESSES: usize = 400_000;
    let mut rng = StdRng::seed_from_u64(42);
    let sizes: Vec<u64> = (0..OBJECTS).map(|_| rng.random_range(512..=8192)).collect();
    // Popularity is independent of size: rank r is object perm[r].
    let mut perm: Vec<usize> = (0..OBJECTS).collect();
    perm.shuffle(&mut rng);
    let zipf = Zipf::new(OBJECTS, 0.99);
    let distinct: u64 = sizes.iter().sum();
    let mut sim = Sim::new(kind, distinct / 10);
    for _ in 0..ACCESSES {
        let id = perm[zipf.sample(&mut rng)];
        sim.access(id as u64, sizes[id]);
    }
    sim.hit_ratio()
}

#[test]
fn s3fifo_is_at_least_as_good_as_lru_on_zipf() {
    let s3 = zipf_trace(PolicyKind::S3Fifo);
    let lru = zipf_trace(PolicyKind::Lru);
    println!("Zipf(0.99), capacity 10 % of distinct bytes: S3-FIFO {s3:.4}, LRU {lru:.4}");
    assert!(s3 >= lru - 0.01, "S3-FIFO {s3:.4} vs LRU {lru:.4}");
}

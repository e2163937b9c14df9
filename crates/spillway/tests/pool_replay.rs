//! Trace replay: a pool's misses against a reference cache simulator's, request by request.
//!
//! A trace is a list of requests, each an object id with a size. The simulator below is a plain
//! byte-sized cache written from the algorithms' descriptions, independent of `memory`: S3-FIFO
//! as published (Yang et al., SOSP 2023) and exact LRU. The replayer drives a real [`Pool`] in
//! deterministic mode with the same requests: the first request of an object inserts it (a
//! miss), every later one reads its handle (a miss if that pages it in). The checks:
//!
//! - the pool misses within 1 % of the simulator for the same policy (in practice, exactly as
//!   often);
//! - S3-FIFO misses no more than LRU on every trace but the loop (where LRU is at its worst
//!   anyway and S3-FIFO's small queue makes no difference to speak of);
//! - resident bytes never pass the budget (the pool's measured peak);
//! - two deterministic runs of one trace give identical counts;
//! - async reads (`get_async`, awaited one at a time) miss exactly as blocking reads do;
//! - a pool with background page-out (not deterministic) holds at least 90 % of its budget
//!   under steady pressure and misses within 5 % of the simulator.
//!
//! The default run is short (a few seconds in a debug build); `SPILLWAY_REPLAY_LONG=1` replays
//! traces ten times longer over ten times more objects. `--nocapture` prints the table.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use spillway::memory::PolicyKind;
use spillway::{MemStore, Paged, Pool};

/// One request: an object and its size in bytes (an object keeps its size).
type Request = (u64, u64);

// ---------------------------------------------------------------------------------------------
// The reference simulator.
// ---------------------------------------------------------------------------------------------

/// A cache of `capacity` bytes replaying requests; counts misses.
trait Sim {
    /// Serves one request; true on a miss.
    fn request(&mut self, id: u64, size: u64) -> bool;
}

/// S3-FIFO by bytes, as published: a small FIFO of about 10 % of the capacity for newcomers, a
/// main FIFO for the rest, a ghost FIFO of ids evicted from small (as many bytes of them as
/// main may hold), and a frequency per resident object, 0 to 3.
///
/// - A hit adds one to the object's frequency (at most 3).
/// - A miss evicts until the object fits, then inserts it: into main if its id is a ghost (and
///   the ghost is dropped), else into small, with frequency 0.
/// - One eviction takes from small if small holds at least its share of the capacity (or main is
///   empty), else from main.
/// - From small: the head, if it was hit since insertion, moves to main's tail with frequency 0
///   (and if main is then over its share, one eviction from main follows), and the next head is
///   looked at; the first head that was not hit is evicted and its id becomes a ghost.
/// - From main: the head, if its frequency is positive, goes back to the tail with frequency one
///   less; the first head with frequency 0 is evicted.
struct S3FifoSim {
    capacity: u64,
    small_share: u64,
    used: u64,
    small: VecDeque<u64>,
    main: VecDeque<u64>,
    small_bytes: u64,
    main_bytes: u64,
    /// Resident objects: size and frequency.
    objects: HashMap<u64, (u64, u8)>,
    /// Ghost ids in order, with the number each was remembered under.
    ghosts: VecDeque<(u64, u64)>,
    /// Ghost id -> the number it was remembered under and its size (a slot of `ghosts` whose
    /// number differs is stale: that ghost was taken since).
    ghost_of: HashMap<u64, (u64, u64)>,
    ghost_bytes: u64,
    ghost_count: u64,
}

impl S3FifoSim {
    fn new(capacity: u64) -> S3FifoSim {
        S3FifoSim {
            capacity,
            small_share: capacity / 10,
            used: 0,
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_bytes: 0,
            main_bytes: 0,
            objects: HashMap::new(),
            ghosts: VecDeque::new(),
            ghost_of: HashMap::new(),
            ghost_bytes: 0,
            ghost_count: 0,
        }
    }

    fn main_share(&self) -> u64 {
        self.capacity - self.small_share
    }

    fn evict(&mut self) {
        if self.small_bytes >= self.small_share || self.main.is_empty() {
            self.evict_small();
        } else {
            self.evict_main();
        }
    }

    fn evict_small(&mut self) {
        while let Some(id) = self.small.pop_front() {
            let (size, freq) = self.objects[&id];
            self.small_bytes -= size;
            if freq >= 1 {
                self.objects.insert(id, (size, 0));
                self.main.push_back(id);
                self.main_bytes += size;
                if self.main_bytes > self.main_share() {
                    self.evict_main();
                }
            } else {
                self.objects.remove(&id);
                self.used -= size;
                self.remember_ghost(id, size);
                return;
            }
        }
    }

    fn evict_main(&mut self) {
        while let Some(id) = self.main.pop_front() {
            let (size, freq) = self.objects[&id];
            if freq > 0 {
                self.objects.insert(id, (size, freq - 1));
                self.main.push_back(id);
            } else {
                self.objects.remove(&id);
                self.main_bytes -= size;
                self.used -= size;
                return;
            }
        }
    }

    fn remember_ghost(&mut self, id: u64, size: u64) {
        self.ghost_count += 1;
        let before = self.ghost_of.insert(id, (self.ghost_count, size));
        assert!(before.is_none(), "object {id} was resident and a ghost");
        self.ghosts.push_back((id, self.ghost_count));
        self.ghost_bytes += size;
        while self.ghost_bytes > self.main_share() {
            let Some((g, n)) = self.ghosts.pop_front() else {
                break;
            };
            if let Some(&(m, s)) = self.ghost_of.get(&g)
                && m == n
            {
                self.ghost_of.remove(&g);
                self.ghost_bytes -= s;
            }
        }
    }

    /// True if `id` was a ghost; it no longer is.
    fn take_ghost(&mut self, id: u64) -> bool {
        match self.ghost_of.remove(&id) {
            Some((_, size)) => {
                self.ghost_bytes -= size;
                true
            }
            None => false,
        }
    }
}

impl Sim for S3FifoSim {
    fn request(&mut self, id: u64, size: u64) -> bool {
        if let Some((_, freq)) = self.objects.get_mut(&id) {
            *freq = (*freq + 1).min(3);
            return false;
        }
        while self.used + size > self.capacity {
            self.evict();
        }
        self.used += size;
        self.objects.insert(id, (size, 0));
        if self.take_ghost(id) {
            self.main.push_back(id);
            self.main_bytes += size;
        } else {
            self.small.push_back(id);
            self.small_bytes += size;
        }
        true
    }
}

/// Exact LRU by bytes: a hit makes the object the most recently used; a miss evicts the least
/// recently used objects until the new one fits.
struct LruSim {
    capacity: u64,
    used: u64,
    clock: u64,
    /// Last use -> object.
    by_use: BTreeMap<u64, u64>,
    /// Resident object -> (size, last use).
    objects: HashMap<u64, (u64, u64)>,
}

impl LruSim {
    fn new(capacity: u64) -> LruSim {
        LruSim {
            capacity,
            used: 0,
            clock: 0,
            by_use: BTreeMap::new(),
            objects: HashMap::new(),
        }
    }
}

impl Sim for LruSim {
    fn request(&mut self, id: u64, size: u64) -> bool {
        self.clock += 1;
        if let Some((_, last)) = self.objects.get_mut(&id) {
            self.by_use.remove(last);
            *last = self.clock;
            self.by_use.insert(self.clock, id);
            return false;
        }
        while self.used + size > self.capacity {
            let (_, victim) = self.by_use.pop_first().expect("something to evict");
            let (s, _) = self.objects.remove(&victim).expect("a resident victim");
            self.used -= s;
        }
        self.used += size;
        self.objects.insert(id, (size, self.clock));
        self.by_use.insert(self.clock, id);
        true
    }
}

fn simulate(kind: PolicyKind, capacity: u64, trace: &[Request]) -> u64 {
    let mut sim: Box<dyn Sim> = match kind {
        PolicyKind::S3Fifo => Box::new(S3FifoSim::new(capacity)),
        PolicyKind::Lru => Box::new(LruSim::new(capacity)),
    };
    trace
        .iter()
        .filter(|&&(id, size)| sim.request(id, size))
        .count() as u64
}

// ---------------------------------------------------------------------------------------------
// The replayer.
// ---------------------------------------------------------------------------------------------

/// What a replay through a pool counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    misses: u64,
    inserts: u64,
    page_ins: u64,
    page_outs: u64,
    hits: u64,
    peak: u64,
    resident: u64,
}

fn pool(kind: PolicyKind, budget: u64) -> Pool {
    Pool::builder()
        .budget(budget)
        .policy(kind)
        .store(Arc::new(MemStore::new()))
        .deterministic(true)
        .build()
        .expect("a pool")
}

/// How the replayer reads a handle.
#[derive(Clone, Copy)]
enum Reads<'a> {
    Blocking,
    /// `get_async`, each read awaited before the next request.
    Async(&'a tokio::runtime::Runtime),
}

/// Replays `trace` through a new pool with blocking reads.
fn replay(kind: PolicyKind, budget: u64, trace: &[Request]) -> Counts {
    replay_with(kind, budget, trace, Reads::Blocking)
}

/// Replays `trace` through a new deterministic pool.
fn replay_with(kind: PolicyKind, budget: u64, trace: &[Request], reads: Reads<'_>) -> Counts {
    replay_in(&pool(kind, budget), trace, reads)
}

/// Replays `trace` through `pool`: an object's value is its id, charged at its size.
fn replay_in(pool: &Pool, trace: &[Request], reads: Reads<'_>) -> Counts {
    let mut handles: HashMap<u64, Paged<u64>> = HashMap::new();
    let mut inserts = 0;
    for &(id, size) in trace {
        match handles.get(&id) {
            Some(h) => {
                let value = match reads {
                    Reads::Blocking => *h.get().expect("get"),
                    Reads::Async(rt) => *rt.block_on(h.get_async()).expect("get_async"),
                };
                assert_eq!(value, id);
            }
            None => {
                inserts += 1;
                let h = pool.insert_with_size(id, size).expect("insert");
                handles.insert(id, h);
            }
        }
    }
    let s = pool.stats();
    Counts {
        misses: inserts + s.page_ins,
        inserts,
        page_ins: s.page_ins,
        page_outs: s.page_outs,
        hits: s.hits,
        peak: s.peak_resident_bytes,
        resident: s.resident_bytes,
    }
}

// ---------------------------------------------------------------------------------------------
// Traces.
// ---------------------------------------------------------------------------------------------

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

/// How long the traces are.
#[derive(Clone, Copy)]
struct Scale {
    objects: u64,
    requests: usize,
}

fn scale() -> Scale {
    if std::env::var_os("SPILLWAY_REPLAY_LONG").is_some() {
        Scale {
            objects: 20_000,
            requests: 200_000,
        }
    } else {
        Scale {
            objects: 1_000,
            requests: 10_000,
        }
    }
}

/// Sizes of `n` objects, uniform in `lo..=hi`.
fn uniform_sizes(rng: &mut StdRng, n: u64, lo: u64, hi: u64) -> Vec<u64> {
    (0..n).map(|_| rng.random_range(lo..=hi)).collect()
}

/// Zipf(`s`) requests over `sizes.len()` objects (ids from `base`), popularity independent of
/// size.
fn zipf_requests(rng: &mut StdRng, sizes: &[u64], s: f64, count: usize, base: u64) -> Vec<Request> {
    let mut rank_to_object: Vec<usize> = (0..sizes.len()).collect();
    rank_to_object.shuffle(rng);
    let zipf = Zipf::new(sizes.len(), s);
    (0..count)
        .map(|_| {
            let o = rank_to_object[zipf.sample(rng)];
            (base + o as u64, sizes[o])
        })
        .collect()
}

fn zipf_trace(seed: u64, s: f64, sc: Scale) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sizes = uniform_sizes(&mut rng, sc.objects, 256, 4096);
    zipf_requests(&mut rng, &sizes, s, sc.requests, 0)
}

/// Zipf(1.0) with a one-time scan of fresh objects (a twentieth of the requests, each object
/// read once) after every tenth of the trace.
fn scan_trace(seed: u64, sc: Scale) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sizes = uniform_sizes(&mut rng, sc.objects, 256, 4096);
    let base = zipf_requests(&mut rng, &sizes, 1.0, sc.requests, 0);
    let mut out = Vec::with_capacity(sc.requests * 3 / 2);
    let mut fresh = 1_000_000u64;
    for chunk in base.chunks(sc.requests / 10) {
        out.extend_from_slice(chunk);
        for _ in 0..sc.requests / 20 {
            out.push((fresh, rng.random_range(256..=4096)));
            fresh += 1;
        }
    }
    out
}

/// Half the requests for objects never seen before or after, half Zipf(1.0) over a working set.
fn one_hit_wonder_trace(seed: u64, sc: Scale) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sizes = uniform_sizes(&mut rng, sc.objects / 2, 256, 4096);
    let hot = zipf_requests(&mut rng, &sizes, 1.0, sc.requests / 2, 0);
    let mut out = Vec::with_capacity(sc.requests);
    for (fresh, r) in (1_000_000u64..).zip(hot) {
        out.push(r);
        out.push((fresh, rng.random_range(256..=4096)));
    }
    out
}

/// Zipf(0.9) over objects of 64 B to 64 KiB, log-uniformly.
fn mixed_size_trace(seed: u64, sc: Scale) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sizes: Vec<u64> = (0..sc.objects)
        .map(|_| 2f64.powf(rng.random_range(6.0..=16.0)).round() as u64)
        .collect();
    zipf_requests(&mut rng, &sizes, 0.9, sc.requests, 0)
}

/// The same objects over and over in one order, their bytes a tenth more than `budget`.
fn loop_trace(seed: u64, budget: u64, sc: Scale) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sizes = Vec::new();
    let mut total = 0;
    while total < budget + budget / 10 {
        let s = rng.random_range(512..=2048);
        sizes.push(s);
        total += s;
    }
    let passes = (sc.requests / sizes.len()).max(3);
    (0..passes)
        .flat_map(|_| sizes.iter().enumerate().map(|(i, &s)| (i as u64, s)))
        .collect()
}

/// Distinct bytes a trace touches.
fn footprint(trace: &[Request]) -> u64 {
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for &(id, size) in trace {
        seen.insert(id, size);
    }
    seen.values().sum()
}

/// A named trace and the budgets to replay it under.
struct Case {
    name: &'static str,
    /// The trace for a budget (the same for every budget, except the loop's).
    runs: Vec<(u64, Vec<Request>)>,
}

/// Five budgets, as shares of the trace's footprint, none below the largest object.
fn budgets(trace: &[Request]) -> Vec<u64> {
    let total = footprint(trace);
    let largest = trace.iter().map(|r| r.1).max().unwrap_or(1);
    [2, 5, 10, 20, 40]
        .iter()
        .map(|pct| (total * pct / 100).max(2 * largest))
        .collect()
}

fn fixed(name: &'static str, trace: Vec<Request>) -> Case {
    let runs = budgets(&trace)
        .into_iter()
        .map(|b| (b, trace.clone()))
        .collect();
    Case { name, runs }
}

fn cases() -> Vec<Case> {
    let sc = scale();
    let loop_budgets = [64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20];
    vec![
        fixed("zipf 0.8", zipf_trace(1, 0.8, sc)),
        fixed("zipf 1.0", zipf_trace(2, 1.0, sc)),
        fixed("zipf + scans", scan_trace(3, sc)),
        Case {
            name: "loop",
            runs: loop_budgets
                .iter()
                .map(|&b| (b, loop_trace(4, b, sc)))
                .collect(),
        },
        fixed("one-hit wonders", one_hit_wonder_trace(5, sc)),
        fixed("mixed sizes", mixed_size_trace(6, sc)),
    ]
}

// ---------------------------------------------------------------------------------------------
// The checks.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_pool_misses_as_the_simulator_does() {
    let mut failures = Vec::new();
    println!(
        "| trace | budget | requests | S3-FIFO sim | S3-FIFO pool | LRU sim | LRU pool | peak ÷ budget |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for case in cases() {
        for (budget, trace) in &case.runs {
            let mut row = Vec::new();
            let mut peak = 0;
            let mut sims = HashMap::new();
            for kind in PolicyKind::ALL {
                let want = simulate(kind, *budget, trace);
                let got = replay(kind, *budget, trace);
                sims.insert(kind, want);
                row.push(format!("{want} | {}", got.misses));
                peak = peak.max(got.peak);
                let tolerance = want / 100;
                if got.misses.abs_diff(want) > tolerance {
                    failures.push(format!(
                        "{} at {budget} B, {kind}: pool {} misses, simulator {want}",
                        case.name, got.misses
                    ));
                }
                if got.peak > *budget {
                    failures.push(format!(
                        "{} at {budget} B, {kind}: peak {} over the budget",
                        case.name, got.peak
                    ));
                }
            }
            println!(
                "| {} | {budget} | {} | {} | {:.3} |",
                case.name,
                trace.len(),
                row.join(" | "),
                peak as f64 / *budget as f64
            );
            let (s3, lru) = (sims[&PolicyKind::S3Fifo], sims[&PolicyKind::Lru]);
            if case.name != "loop" && s3 > lru {
                failures.push(format!(
                    "{} at {budget} B: S3-FIFO misses {s3}, LRU {lru}",
                    case.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn two_deterministic_runs_count_the_same() {
    for case in cases() {
        let (budget, trace) = &case.runs[case.runs.len() / 2];
        for kind in PolicyKind::ALL {
            let first = replay(kind, *budget, trace);
            let second = replay(kind, *budget, trace);
            assert_eq!(first, second, "{} at {budget} B, {kind}", case.name);
        }
    }
}

#[test]
fn async_reads_miss_as_blocking_reads_do() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let case = cases().into_iter().find(|c| c.name == "zipf 1.0");
    let case = case.expect("the Zipf 1.0 trace");
    for (budget, trace) in &case.runs[..2] {
        for kind in PolicyKind::ALL {
            let got = replay_with(kind, *budget, trace, Reads::Async(&rt));
            let want = simulate(kind, *budget, trace);
            assert_eq!(got.misses, want, "{kind} at {budget} B");
            assert_eq!(got, replay(kind, *budget, trace), "{kind} at {budget} B");
        }
    }
}

/// A pool with background page-out (the default) under steady pressure holds most of its
/// budget, never more, and misses about as often as the simulator.
#[test]
fn a_busy_pool_uses_its_budget() {
    let case = cases().into_iter().find(|c| c.name == "zipf 1.0");
    let case = case.expect("the Zipf 1.0 trace");
    for (budget, trace) in &case.runs[2..] {
        for kind in PolicyKind::ALL {
            let pool = Pool::builder()
                .budget(*budget)
                .policy(kind)
                .store(Arc::new(MemStore::new()))
                .gc_after(0)
                .build()
                .expect("a pool");
            let got = replay_in(&pool, trace, Reads::Blocking);
            let want = simulate(kind, *budget, trace);
            println!(
                "{kind} at {budget} B: resident {:.3} of the budget, {} misses (simulator {want})",
                got.resident as f64 / *budget as f64,
                got.misses,
            );
            assert!(got.peak <= *budget, "{kind} at {budget} B: {got:?}");
            assert!(
                got.resident >= *budget / 10 * 9,
                "{kind} at {budget} B: {got:?}"
            );
            assert!(
                got.misses.abs_diff(want) <= want / 20,
                "{kind} at {budget} B: {} misses, simulator {want}",
                got.misses
            );
        }
    }
}

//! What the harness and the peer executables share: the job a child receives, the measurement it
//! prints, the payloads, the Zipf sampler, the graph of W3 and the resident-set readings.
//!
//! This file is compiled into the bench crate and, by path, into `bench-peers/common`, so that
//! every contender runs the same workloads over the same bytes and reports in one schema. It may
//! only use what both have: `serde`, `serde_json`, `rand` 0.9 and `blake3`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// What a child does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// W1/W2: put `count` objects of `size` bytes, flush, get them all back in a random order.
    Kv,
    /// W3: build a graph of `count` nodes (half of the child references shared), page it out,
    /// then walk it back from its root.
    Graph,
    /// W4: load `count` objects of `size` bytes (10× the budget), then `ops` reads drawn from a
    /// Zipf(0.99) distribution on `threads` threads.
    Zipf,
    /// W5: load as W4, then `ops` operations: 80 % Zipf reads, 20 % puts of new objects.
    Mixed,
    /// W6: insert `count` objects of `size` bytes (10× the budget) and keep every handle.
    Rss,
    /// Runtime: resident `Paged::get` against `Arc` deref, `ops` per thread.
    ResidentGet,
    /// Runtime: page-out then page-in of `count` values of `size` bytes through the pool.
    Paging,
    /// Runtime: memory per paged-out handle, over `count` handles.
    Handles,
}

/// Parameters of a workload, the same for every contender of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spec {
    pub kind: Kind,
    pub count: u64,
    pub size: usize,
    /// Memory budget in bytes for contenders that have one (0: none).
    pub budget: u64,
    pub threads: usize,
    pub ops: u64,
}

/// Everything a child needs to run one measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The contender's name, as on the command line (`pagable-sqlite`, `foyer`, ...).
    pub contender: String,
    pub spec: Spec,
    /// Objects per batch (already capped by bytes).
    pub batch: usize,
    pub seed: u64,
    /// Empty directory the contender owns.
    pub dir: PathBuf,
}

/// What a child reports, as one JSON line on stdout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Measurement {
    pub open_secs: f64,
    /// Kv: keys, puts and the final flush. Graph: the page-out. Zipf/Mixed/Rss: the load.
    pub put_secs: f64,
    /// The final flush alone (included in `put_secs`).
    pub flush_secs: f64,
    /// Kv: the gets. Graph: the walk. Zipf/Mixed: the operations.
    pub get_secs: f64,
    pub close_secs: f64,
    /// Reads that found nothing.
    pub missing: u64,
    /// Reads that returned other bytes than were put.
    pub mismatches: u64,
    /// Peak resident set of the child (VmHWM), bytes.
    pub peak_rss_bytes: u64,
    pub rss_after_put: Rss,
    pub rss_after_get: Rss,
    /// The contender's own counters (`hits`, `misses`, `ops`, `syncs`, ...).
    pub counters: BTreeMap<String, u64>,
    /// Derived figures that are not counts (`ns_per_get`, `bytes_per_handle`, ...).
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
}

impl Measurement {
    pub fn failed(&self) -> bool {
        self.missing > 0 || self.mismatches > 0
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    pub fn value(&self, name: &str) -> f64 {
        self.values.get(name).copied().unwrap_or(f64::NAN)
    }
}

/// Fills `out` with the payload of object `index`.
pub fn payload(seed: u64, index: u64, out: &mut [u8]) {
    let mut rng = SmallRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.fill_bytes(out);
}

/// A payload of `size` bytes whose first 8 bytes are `index` (little-endian), so that a read can
/// be checked in constant time with [`tagged_index`].
pub fn tagged_payload(seed: u64, index: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size.max(8)];
    payload(seed, index, &mut v);
    v[..8].copy_from_slice(&index.to_le_bytes());
    v
}

/// The index a [`tagged_payload`] carries.
pub fn tagged_index(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// A 128-bit key for peers that take the caller's key: BLAKE3 of the payload, as spillway's
/// content key is, so that every contender pays for a hash.
pub fn key128(payload: &[u8]) -> [u8; 16] {
    let h = blake3::hash(payload);
    let mut k = [0u8; 16];
    k.copy_from_slice(&h.as_bytes()[..16]);
    k
}

/// Draws ranks from a Zipf distribution over `0..n`: rank `r` has weight `1 / (r + 1)^s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for r in 0..n {
            sum += 1.0 / ((r + 1) as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1) as u64
    }
}

/// The object a Zipf rank reads: a fixed permutation of `0..n`, so that the hot objects are
/// spread over the load order instead of being its first ones.
pub fn rank_to_index(rank: u64, n: u64) -> u64 {
    // Multiplication by an odd constant is a bijection modulo a power of two; fold into `n` by
    // cycle-walking.
    let bits = 64 - n.saturating_sub(1).leading_zeros();
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut x = rank;
    loop {
        x = (x.wrapping_mul(0x9E37_79B9_7F4A_7C15 | 1) ^ (x >> 7)) & mask;
        x = x.wrapping_mul(0xD6E8_FEB8_6659_FD93 | 1) & mask;
        if x < n {
            return x;
        }
    }
}

/// The graph of W3: `n` nodes, node 0 the root. Node `i` has the tree children `2i + 1` and
/// `2i + 2` (when they exist) and, if it has tree children, two shared children drawn at random
/// among the nodes after it, which are also reachable through the tree: half of all child
/// references point to a subtree that is shared. Children always have larger indices, so building
/// from `n - 1` down to 0 makes children before parents.
pub fn graph_children(seed: u64, n: u64, i: u64) -> Vec<u64> {
    let mut c = Vec::with_capacity(4);
    for t in [2 * i + 1, 2 * i + 2] {
        if t < n {
            c.push(t);
        }
    }
    if !c.is_empty() && i + 1 < n {
        let mut rng = SmallRng::seed_from_u64(seed ^ i.wrapping_mul(0xA24B_AED4_963E_E407));
        for _ in 0..2 {
            c.push(rng.random_range(i + 1..n));
        }
    }
    c
}

/// Bytes of payload each graph node carries (its index in the first 8).
pub const GRAPH_NODE_BYTES: usize = 32;

/// This process's resident set, split as `/proc/self/status` splits it, in bytes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Rss {
    /// Anonymous memory: the heap and stacks (`RssAnon`).
    pub anon: u64,
    /// File pages mapped into the process (`RssFile`).
    pub file: u64,
}

impl Rss {
    pub fn now() -> Rss {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Rss {
            anon: status_field(&status, "RssAnon:").unwrap_or(0),
            file: status_field(&status, "RssFile:").unwrap_or(0),
        }
    }
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The C heap as its allocator (glibc's malloc) counts it: bytes handed out and still in use,
/// and bytes freed but kept by the allocator (holes between live blocks, which stay in the
/// resident set). `None` where the allocator cannot tell (not glibc).
#[derive(Debug, Clone, Copy, Default)]
pub struct Heap {
    pub in_use: u64,
    pub free: u64,
}

impl Heap {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[expect(
        unsafe_code,
        reason = "glibc's allocator statistics are only available through its C function"
    )]
    pub fn now() -> Option<Heap> {
        /// `struct mallinfo2` of glibc 2.33 and later.
        #[repr(C)]
        struct MallInfo2 {
            arena: usize,
            ordblks: usize,
            smblks: usize,
            hblks: usize,
            hblkhd: usize,
            usmblks: usize,
            fsmblks: usize,
            uordblks: usize,
            fordblks: usize,
            keepcost: usize,
        }
        unsafe extern "C" {
            fn mallinfo2() -> MallInfo2;
        }
        // SAFETY: mallinfo2 takes no arguments and returns a struct by value; it only reads
        // the allocator's statistics.
        let m = unsafe { mallinfo2() };
        Some(Heap {
            // Blocks in use in the arenas, plus the large blocks malloc maps on their own.
            in_use: (m.uordblks + m.hblkhd) as u64,
            free: m.fordblks as u64,
        })
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    pub fn now() -> Option<Heap> {
        None
    }
}

/// This process's peak resident set size (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_field(&status, "VmHWM:")
}

/// A random order of `0..n`.
pub fn shuffled(n: u64, seed: u64) -> Vec<u64> {
    use rand::seq::SliceRandom;
    let mut order: Vec<u64> = (0..n).collect();
    order.shuffle(&mut SmallRng::seed_from_u64(seed.rotate_left(17) ^ 0x5EED));
    order
}

/// The random generator of thread `t` of an operation phase.
pub fn thread_rng(seed: u64, t: usize) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ 0x0B5E_55ED ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The share of puts in W5.
pub const MIXED_PUT_SHARE: f64 = 0.2;

/// Reads the job from `--job <json>` on the command line of a peer executable.
pub fn job_from_args() -> Result<Job, String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--job" {
            let json = args.next().ok_or("--job needs a value")?;
            return serde_json::from_str(&json).map_err(|e| format!("bad job: {e}"));
        }
    }
    Err("usage: --job <json>".to_string())
}

/// The error type of the drivers below (both `anyhow::Error` and spillway's errors convert).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A driver result.
pub type Res<T> = Result<T, BoxError>;

/// The outcome of one read of a cache-like contender.
#[derive(Debug, Clone, Copy)]
pub struct Read {
    /// The index the returned bytes carry; `None` if the object was not found.
    pub tag: Option<u64>,
    /// True if it was served from memory.
    pub hit: bool,
}

/// A contender for the budgeted workloads (W4, W5, W6): objects are put under their index and
/// read back by it. `read` takes `&self` so that several threads can read at once.
pub trait CachePeer: Sync {
    fn insert(&mut self, index: u64, payload: Vec<u8>) -> Res<()>;
    fn read(&self, index: u64) -> Res<Read>;
    /// Waits for background work started by the inserts (write-behind, eviction).
    fn settle(&mut self) -> Res<()> {
        Ok(())
    }
    /// Counters worth showing (hits and misses are counted by the driver).
    fn counters(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}

/// Inserts objects `0..count`, timed into `m.put_secs`.
fn load<P: CachePeer>(p: &mut P, job: &Job, m: &mut Measurement) -> Res<()> {
    let mut t = std::time::Duration::ZERO;
    for i in 0..job.spec.count {
        let v = tagged_payload(job.seed, i, job.spec.size);
        let start = std::time::Instant::now();
        p.insert(i, v)?;
        t += start.elapsed();
    }
    let start = std::time::Instant::now();
    p.settle()?;
    t += start.elapsed();
    m.put_secs = t.as_secs_f64();
    m.rss_after_put = Rss::now();
    Ok(())
}

#[derive(Default)]
struct Tally {
    ops: u64,
    hits: u64,
    misses: u64,
    missing: u64,
    mismatches: u64,
    puts: u64,
}

impl Tally {
    fn read(&mut self, r: Read, want: u64) {
        self.ops += 1;
        match r.tag {
            None => self.missing += 1,
            Some(t) if t != want => self.mismatches += 1,
            Some(_) => {}
        }
        if r.hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }

    fn add(&mut self, o: &Tally) {
        self.ops += o.ops;
        self.hits += o.hits;
        self.misses += o.misses;
        self.missing += o.missing;
        self.mismatches += o.mismatches;
        self.puts += o.puts;
    }

    fn into(self, m: &mut Measurement) {
        m.missing = self.missing;
        m.mismatches = self.mismatches;
        m.counters.insert("ops".into(), self.ops);
        m.counters.insert("hits".into(), self.hits);
        m.counters.insert("misses".into(), self.misses);
        m.counters.insert("puts".into(), self.puts);
    }
}

/// W4: load, then `ops` Zipf(0.99) reads split over `threads` threads.
pub fn run_zipf<P: CachePeer>(p: &mut P, job: &Job) -> Res<Measurement> {
    let mut m = Measurement::default();
    load(p, job, &mut m)?;
    let n = job.spec.count;
    let zipf = Zipf::new(n, 0.99);
    let threads = job.spec.threads.max(1);
    let per = job.spec.ops / threads as u64;
    let p: &P = p;
    let start = std::time::Instant::now();
    let tallies: Vec<Res<Tally>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let zipf = &zipf;
                s.spawn(move || -> Res<Tally> {
                    let mut rng = thread_rng(job.seed, t);
                    let mut tally = Tally::default();
                    for _ in 0..per {
                        let i = rank_to_index(zipf.sample(&mut rng), n);
                        tally.read(p.read(i)?, i);
                    }
                    Ok(tally)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a reader panicked".into())))
            .collect()
    });
    m.get_secs = start.elapsed().as_secs_f64();
    let mut total = Tally::default();
    for t in tallies {
        total.add(&t?);
    }
    total.into(&mut m);
    m.rss_after_get = Rss::now();
    m.counters.extend(p.counters());
    m.peak_rss_bytes = peak_rss_bytes().unwrap_or(0);
    Ok(m)
}

/// W5: load, then `ops` operations on one thread: puts of new objects (20 %) and Zipf reads over
/// everything put so far (80 %).
pub fn run_mixed<P: CachePeer>(p: &mut P, job: &Job) -> Res<Measurement> {
    let mut m = Measurement::default();
    load(p, job, &mut m)?;
    let zipf = Zipf::new(job.spec.count, 0.99);
    let mut rng = thread_rng(job.seed, 0);
    let mut next = job.spec.count;
    let mut tally = Tally::default();
    let mut t = std::time::Duration::ZERO;
    for _ in 0..job.spec.ops {
        if rng.random::<f64>() < MIXED_PUT_SHARE {
            let v = tagged_payload(job.seed, next, job.spec.size);
            let start = std::time::Instant::now();
            p.insert(next, v)?;
            t += start.elapsed();
            next += 1;
            tally.ops += 1;
            tally.puts += 1;
        } else {
            let i = rank_to_index(zipf.sample(&mut rng), next);
            let start = std::time::Instant::now();
            let r = p.read(i)?;
            t += start.elapsed();
            tally.read(r, i);
        }
    }
    let start = std::time::Instant::now();
    p.settle()?;
    t += start.elapsed();
    m.get_secs = t.as_secs_f64();
    tally.into(&mut m);
    m.rss_after_get = Rss::now();
    m.counters.extend(p.counters());
    m.peak_rss_bytes = peak_rss_bytes().unwrap_or(0);
    Ok(m)
}

/// W6: insert `count` objects (10× the budget), keeping every handle; then read a sample back.
pub fn run_rss<P: CachePeer>(p: &mut P, job: &Job) -> Res<Measurement> {
    let mut m = Measurement::default();
    load(p, job, &mut m)?;
    let mut tally = Tally::default();
    let step = (job.spec.count / 1000).max(1);
    let start = std::time::Instant::now();
    let mut i = 0;
    while i < job.spec.count {
        tally.read(p.read(i)?, i);
        i += step;
    }
    m.get_secs = start.elapsed().as_secs_f64();
    tally.into(&mut m);
    m.rss_after_get = Rss::now();
    m.counters.extend(p.counters());
    m.peak_rss_bytes = peak_rss_bytes().unwrap_or(0);
    Ok(m)
}

/// A contender for W1/W2, driven by [`run_kv`].
pub trait KvPeer {
    /// Stores `payloads[j]` as object `first + j`.
    fn put_batch(&mut self, first: u64, payloads: &[&[u8]]) -> Res<()>;
    /// Returns once every put so far can be read back and has reached the peer's durability.
    fn flush(&mut self) -> Res<()>;
    fn get(&mut self, index: u64) -> Res<Option<Vec<u8>>>;
    fn close(&mut self) -> Res<()> {
        Ok(())
    }
    fn counters(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}

/// The get phase of W1/W2, the same for every contender: each object once, in a random order
/// ([`shuffled`]), timed in chunks of the job's batch size; each chunk's buffers are then
/// checked against their payloads, untimed. Fills `missing`, `mismatches` and `get_secs`.
pub fn timed_gets<E>(
    m: &mut Measurement,
    job: &Job,
    mut get: impl FnMut(u64) -> Result<Option<Vec<u8>>, E>,
) -> Result<(), E> {
    use std::time::{Duration, Instant};
    let chunk_len = job.batch.max(1);
    let order = shuffled(job.spec.count, job.seed);
    let mut got: Vec<Option<Vec<u8>>> = Vec::with_capacity(chunk_len);
    let mut expected = vec![0u8; job.spec.size];
    let mut get_time = Duration::ZERO;
    for chunk in order.chunks(chunk_len) {
        let t = Instant::now();
        for &i in chunk {
            got.push(get(i)?);
        }
        get_time += t.elapsed();
        for (&i, g) in chunk.iter().zip(got.drain(..)) {
            match g {
                None => m.missing += 1,
                Some(bytes) => {
                    payload(job.seed, i, &mut expected);
                    if bytes != expected {
                        m.mismatches += 1;
                    }
                }
            }
        }
    }
    m.get_secs = get_time.as_secs_f64();
    Ok(())
}

/// W1/W2 for a peer: the same phases, timing and checks as the harness's own contenders.
pub fn run_kv<P: KvPeer>(open: impl FnOnce() -> Res<P>, job: &Job) -> Res<Measurement> {
    use std::time::{Duration, Instant};
    let (count, size) = (job.spec.count, job.spec.size);
    let mut m = Measurement::default();
    let t = Instant::now();
    let mut store = open()?;
    m.open_secs = t.elapsed().as_secs_f64();
    let batch = job.batch.max(1);
    let mut buf = vec![0u8; batch * size];
    let mut put_time = Duration::ZERO;
    let mut next = 0u64;
    while next < count {
        let n = batch.min((count - next) as usize);
        for (i, chunk) in buf[..n * size].chunks_exact_mut(size).enumerate() {
            payload(job.seed, next + i as u64, chunk);
        }
        let t = Instant::now();
        let payloads: Vec<&[u8]> = buf[..n * size].chunks_exact(size).collect();
        store.put_batch(next, &payloads)?;
        put_time += t.elapsed();
        next += n as u64;
    }
    let t = Instant::now();
    store.flush()?;
    let flush = t.elapsed();
    m.flush_secs = flush.as_secs_f64();
    m.put_secs = (put_time + flush).as_secs_f64();
    drop(buf);
    m.rss_after_put = Rss::now();
    timed_gets(&mut m, job, |i| store.get(i))?;
    m.rss_after_get = Rss::now();
    m.counters = store.counters();
    let t = Instant::now();
    store.close()?;
    m.close_secs = t.elapsed().as_secs_f64();
    m.peak_rss_bytes = peak_rss_bytes().unwrap_or(0);
    Ok(m)
}

/// Prints the measurement as the one JSON line the harness reads, or the error and exit 1.
pub fn emit(result: Res<Measurement>) {
    match result.and_then(|m| serde_json::to_string(&m).map_err(BoxError::from)) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("peer child: {e}");
            std::process::exit(1);
        }
    }
}

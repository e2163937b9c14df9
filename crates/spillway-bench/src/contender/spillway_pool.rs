//! spillway's paging runtime: a [`Pool`] with S3-FIFO or LRU eviction over its default
//! `LogStore`, for the budgeted workloads (W3 to W6) and the runtime's own figures.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use get_size2::GetSize;
use serde::{Deserialize, Serialize};
use spillway::memory::PolicyKind;
use spillway::{Paged, Pool};

use crate::contender::Backend;
use crate::contender::spillway_stores::{Opened, open_store};
use crate::shared::{
    CachePeer, GRAPH_NODE_BYTES, Heap, Job, Kind, Measurement, Read, Res, Rss, graph_children,
    peak_rss_bytes, run_mixed, run_rss, run_zipf, shuffled, tagged_index, tagged_payload,
    thread_rng,
};

/// The pool of a job, over `backend` in the job's directory; and the S3 store behind it, if
/// any (its requests are counted).
fn open(job: &Job, policy: PolicyKind, backend: Backend) -> Res<(Pool, Opened)> {
    let budget = if job.spec.budget == 0 {
        4 << 30
    } else {
        job.spec.budget
    };
    let opened = open_store(backend, &job.dir, true).map_err(|e| e.to_string())?;
    let pool = Pool::builder()
        .budget(budget)
        .policy(policy)
        .store(Arc::clone(&opened.store))
        .gc_after(0)
        .build()?;
    Ok((pool, opened))
}

/// Objects by index in a pool; a read is a hit if the value was resident.
struct PoolPeer {
    pool: Pool,
    items: Vec<Paged<Vec<u8>>>,
}

impl CachePeer for PoolPeer {
    fn insert(&mut self, _index: u64, payload: Vec<u8>) -> Res<()> {
        self.items.push(self.pool.insert(payload)?);
        Ok(())
    }

    fn read(&self, index: u64) -> Res<Read> {
        let h = &self.items[index as usize];
        let hit = h.is_resident();
        let g = h.get()?;
        Ok(Read {
            tag: tagged_index(&g),
            hit,
        })
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        let s = self.pool.stats();
        BTreeMap::from([
            ("page_ins".to_string(), s.page_ins),
            ("page_outs".to_string(), s.page_outs),
            ("peak_resident_bytes".to_string(), s.peak_resident_bytes),
            ("budget_bytes".to_string(), s.budget_bytes),
        ])
    }
}

/// Runs `job` on a pool with `policy` over `backend`.
pub fn run(job: &Job, policy: PolicyKind, backend: Backend) -> Res<Measurement> {
    match job.spec.kind {
        Kind::Zipf | Kind::Mixed | Kind::Rss => {
            let t = Instant::now();
            let mut p = PoolPeer {
                pool: open(job, policy, backend)?.0,
                items: Vec::with_capacity(job.spec.count as usize),
            };
            let open_secs = t.elapsed().as_secs_f64();
            let mut m = match job.spec.kind {
                Kind::Zipf => run_zipf(&mut p, job)?,
                Kind::Mixed => run_mixed(&mut p, job)?,
                _ => run_rss(&mut p, job)?,
            };
            m.open_secs = open_secs;
            Ok(m)
        }
        Kind::Graph => run_graph(job, policy, backend),
        Kind::ResidentGet => run_resident_get(job, policy, backend),
        Kind::Paging => run_paging(job, policy, backend),
        Kind::Handles => run_handles(job, policy, backend),
        Kind::Kv => Err("the pool is measured on the budgeted workloads, not W1/W2".into()),
    }
}

/// A node of the W3 graph.
#[derive(Serialize, Deserialize, GetSize)]
struct Node {
    id: u64,
    data: Vec<u8>,
    children: Vec<Paged<Node>>,
}

/// W3: build the graph in the pool, page all of it out (store bottom-up, then shrink to zero),
/// and walk it back from the root, visiting every node once.
fn run_graph(job: &Job, policy: PolicyKind, backend: Backend) -> Res<Measurement> {
    let n = job.spec.count;
    let mut m = Measurement::default();
    let t = Instant::now();
    let (pool, opened) = open(job, policy, backend)?;
    m.open_secs = t.elapsed().as_secs_f64();
    let mut nodes: Vec<Option<Paged<Node>>> = (0..n).map(|_| None).collect();
    for i in (0..n).rev() {
        let children = graph_children(job.seed, n, i)
            .into_iter()
            .map(|c| nodes[c as usize].clone().ok_or("child not built"))
            .collect::<Result<Vec<_>, _>>()?;
        nodes[i as usize] = Some(pool.insert(Node {
            id: i,
            data: tagged_payload(job.seed, i, GRAPH_NODE_BYTES),
            children,
        })?);
    }
    let root = nodes[0].take().ok_or("no root")?;
    drop(nodes);
    m.rss_after_put = Rss::now();

    // Timed to `Written` (handed to the OS, no fsync): what pagable's `flush` gives with its
    // storage's SQLite settings (no journal, no sync), so both sides stop at the same point.
    let t = Instant::now();
    root.key()?;
    pool.shrink_to(0)?;
    pool.flush(spillway::Durability::Written)?;
    m.put_secs = t.elapsed().as_secs_f64();
    let s = pool.stats();
    m.counters
        .insert("stored_objects".into(), s.objects_written);
    m.counters.insert("dedup_hits".into(), s.dedup_hits);

    let fetched_before = opened.remote_gets();
    let t = Instant::now();
    let mut seen = vec![false; n as usize];
    let mut visited = 0u64;
    let mut stack = vec![root.clone()];
    drop(root);
    while let Some(h) = stack.pop() {
        let g = h.get()?;
        let id = g.id as usize;
        if id >= seen.len() || seen[id] {
            continue;
        }
        seen[id] = true;
        visited += 1;
        if tagged_index(&g.data) != Some(g.id) {
            m.mismatches += 1;
        }
        stack.extend(g.children.iter().cloned());
    }
    m.get_secs = t.elapsed().as_secs_f64();
    m.missing = n - visited;
    m.counters.insert("nodes".into(), visited);
    m.counters.insert("page_ins".into(), pool.stats().page_ins);
    if opened.remote.is_some() {
        m.counters
            .insert("remote_gets".into(), opened.remote_gets() - fetched_before);
    }
    m.rss_after_get = Rss::now();
    m.peak_rss_bytes = peak_rss_bytes().unwrap_or(0);
    Ok(m)
}

/// Rounds of R1 (see [`run_resident_get`]).
const R1_ROUNDS: u64 = 9;

/// The median of some figures (`NaN` if there are none).
fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Resident `Paged::get` and `Paged::read` against `Arc` deref, `ops` reads per thread per
/// loop over 1,024 small values, on `threads` threads reading the same values. Each figure is
/// the median of [`R1_ROUNDS`] rounds; the ratios (`get_over_clone`, `read_over_clone`) are
/// the medians of each round's own ratio.
fn run_resident_get(job: &Job, policy: PolicyKind, backend: Backend) -> Res<Measurement> {
    const VALUES: usize = 1024;
    let mut m = Measurement::default();
    let (pool, _opened) = open(job, policy, backend)?;
    let handles: Vec<Paged<u64>> = (0..VALUES as u64)
        .map(|i| pool.insert(i))
        .collect::<Result<_, _>>()?;
    let arcs: Vec<Arc<u64>> = (0..VALUES as u64).map(Arc::new).collect();
    let threads = job.spec.threads.max(1);
    let ops = job.spec.ops;
    let order: Vec<usize> = {
        use rand::Rng;
        let mut rng = thread_rng(job.seed, 0);
        (0..4096).map(|_| rng.random_range(0..VALUES)).collect()
    };

    // Each closure returns the sum it read, so that nothing is optimized away.
    let time = |f: &(dyn Fn(usize) -> Res<u64> + Sync), ops: u64| -> Res<f64> {
        let t = Instant::now();
        let sums: Vec<Res<u64>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|_| s.spawn(move || f(ops as usize)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("a reader panicked".into())))
                .collect()
        });
        let secs = t.elapsed().as_secs_f64();
        for s in sums {
            black_box(s?);
        }
        Ok(secs * 1e9 / ops as f64)
    };
    let paged = |ops: usize| -> Res<u64> {
        let mut sum = 0u64;
        for k in 0..ops {
            sum = sum.wrapping_add(*handles[order[k & 4095]].get()?);
        }
        Ok(sum)
    };
    let read = |ops: usize| -> Res<u64> {
        let mut sum = 0u64;
        for k in 0..ops {
            sum = sum.wrapping_add(*handles[order[k & 4095]].read()?);
        }
        Ok(sum)
    };
    let deref = |ops: usize| -> Res<u64> {
        let mut sum = 0u64;
        for k in 0..ops {
            sum = sum.wrapping_add(*black_box(&arcs[order[k & 4095]]).as_ref());
        }
        Ok(sum)
    };
    let clone = |ops: usize| -> Res<u64> {
        let mut sum = 0u64;
        for k in 0..ops {
            let a = Arc::clone(&arcs[order[k & 4095]]);
            sum = sum.wrapping_add(*black_box(a));
        }
        Ok(sum)
    };
    // Warm up once, then measure in rounds, each timing the four loops one after the other
    // on a share of the operations: a ratio is taken between loops timed seconds apart, not
    // minutes, so that a drift in the machine's clock speed moves both sides of it.
    time(&paged, ops)?;
    time(&read, ops)?;
    let per_round = (ops / R1_ROUNDS).max(1);
    let mut rounds: [Vec<f64>; 4] = Default::default();
    for _ in 0..R1_ROUNDS {
        rounds[0].push(time(&paged, per_round)?);
        rounds[1].push(time(&read, per_round)?);
        rounds[2].push(time(&deref, per_round)?);
        rounds[3].push(time(&clone, per_round)?);
    }
    let ratios =
        |of: &[f64]| -> Vec<f64> { of.iter().zip(&rounds[3]).map(|(a, b)| a / b).collect() };
    let get_ratio = median_of(ratios(&rounds[0]));
    let read_ratio = median_of(ratios(&rounds[1]));
    for (name, r) in [
        "ns_paged_get",
        "ns_paged_read",
        "ns_arc_deref",
        "ns_arc_clone",
    ]
    .into_iter()
    .zip(rounds)
    {
        m.values.insert(name.into(), median_of(r));
    }
    m.values.insert("get_over_clone".into(), get_ratio);
    m.values.insert("read_over_clone".into(), read_ratio);
    let s = pool.stats();
    m.counters.insert("misses".into(), s.misses);
    m.peak_rss_bytes = peak_rss_bytes().unwrap_or(0);
    Ok(m)
}

/// Page-out then page-in of `count` values of `size` bytes: insert them all (the budget holds
/// them), store and evict them all (`key` per handle, then `shrink_to(0)`), then read them all
/// back in a random order.
fn run_paging(job: &Job, policy: PolicyKind, backend: Backend) -> Res<Measurement> {
    let mut m = Measurement::default();
    let (pool, _opened) = open(job, policy, backend)?;
    let handles: Vec<Paged<Vec<u8>>> = (0..job.spec.count)
        .map(|i| pool.insert(tagged_payload(job.seed, i, job.spec.size)))
        .collect::<Result<_, _>>()?;
    m.rss_after_put = Rss::now();
    let t = Instant::now();
    for h in &handles {
        h.key()?;
    }
    pool.shrink_to(0)?;
    m.put_secs = t.elapsed().as_secs_f64();
    let order = shuffled(job.spec.count, job.seed);
    let t = Instant::now();
    for &i in &order {
        let g = handles[i as usize].get()?;
        if tagged_index(&g) != Some(i) {
            m.mismatches += 1;
        }
    }
    m.get_secs = t.elapsed().as_secs_f64();
    let s = pool.stats();
    m.counters.insert("page_outs".into(), s.page_outs);
    m.counters.insert("page_ins".into(), s.page_ins);
    m.rss_after_get = Rss::now();
    m.peak_rss_bytes = peak_rss_bytes().unwrap_or(0);
    Ok(m)
}

/// Memory per paged-out handle: the resident set before inserting `count` small values and
/// after storing and evicting all of them, with every handle kept, over `count`.
fn run_handles(job: &Job, policy: PolicyKind, backend: Backend) -> Res<Measurement> {
    let mut m = Measurement::default();
    let (pool, _opened) = open(job, policy, backend)?;
    // Warm the allocator and the store so that their fixed costs are not charged to handles.
    {
        let warm: Vec<Paged<u64>> = (0..1000u64)
            .map(|i| pool.insert(u64::MAX - i))
            .collect::<Result<_, _>>()?;
        for h in &warm {
            h.key()?;
        }
        pool.shrink_to(0)?;
    }
    let before = Rss::now();
    let heap_before = Heap::now();
    let mut handles: Vec<Paged<u64>> = Vec::with_capacity(job.spec.count as usize);
    let vec_bytes = (handles.capacity() * std::mem::size_of::<Paged<u64>>()) as f64;
    for i in 0..job.spec.count {
        handles.push(pool.insert(i)?);
    }
    for h in &handles {
        h.key()?;
    }
    pool.shrink_to(0)?;
    let after = Rss::now();
    if let (Some(b), Some(a)) = (heap_before, Heap::now()) {
        let n = job.spec.count as f64;
        m.values.insert(
            "heap_in_use_per_handle".into(),
            (a.in_use as f64 - b.in_use as f64 - vec_bytes) / n,
        );
        m.values.insert(
            "heap_free_per_handle".into(),
            (a.free as f64 - b.free as f64) / n,
        );
    }
    let stats = pool.stats();
    m.values.insert(
        "store_index_per_handle".into(),
        stats.store_index_bytes as f64 / job.spec.count as f64,
    );
    m.values.insert(
        "metadata_per_handle".into(),
        stats.metadata_bytes as f64 / job.spec.count as f64,
    );
    let evicted = handles.iter().filter(|h| !h.is_resident()).count() as u64;
    let n = job.spec.count as f64;
    let delta = after.anon as f64 - before.anon as f64;
    m.values.insert("bytes_per_handle".into(), delta / n);
    m.values.insert(
        "bytes_per_handle_without_vec".into(),
        (delta - vec_bytes) / n,
    );
    m.values.insert(
        "size_of_handle".into(),
        std::mem::size_of::<Paged<u64>>() as f64,
    );
    m.counters.insert("evicted".into(), evicted);
    m.counters
        .insert("store_disk_bytes".into(), pool.store().stats().disk_bytes);
    m.rss_after_put = before;
    m.rss_after_get = after;
    m.peak_rss_bytes = peak_rss_bytes().unwrap_or(0);
    black_box(&handles);
    Ok(m)
}

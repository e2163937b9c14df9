//! Dedup at page-out: a batch writes each distinct key once, and `PoolStats::dedup_hits`
//! counts exactly the objects not written because their key was stored or already in the
//! batch.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use spillway::{BlobStore, MemStore, Paged, Pool};

const VALUE: usize = 4096;

fn pool(budget: u64, store: Arc<dyn BlobStore>, deterministic: bool) -> Pool {
    Pool::builder()
        .budget(budget)
        .store(store)
        .deterministic(deterministic)
        .build()
        .expect("a pool over a memory store")
}

/// 1,000 inserts of one 4 KiB value, all paged out: one object is written, 999 are dedup hits,
/// and the store is handed the object once.
fn identical_inserts_write_one_object(budget: u64, deterministic: bool) {
    let store = Arc::new(MemStore::new());
    let pool = pool(budget, store.clone(), deterministic);
    // A string is encoded as its bytes: a payload of 4 KiB and a length.
    let handles: Vec<Paged<String>> = (0..1000)
        .map(|_| pool.insert("x".repeat(VALUE)).expect("insert"))
        .collect();
    pool.shrink_to(0).expect("page out everything");
    assert!(handles.iter().all(|h| !h.is_resident()), "all paged out");
    let s = pool.stats();
    assert_eq!(s.objects_written, 1, "{s:?}");
    assert_eq!(s.dedup_hits, 999, "{s:?}");
    assert!(s.bytes_written <= VALUE as u64 + 16, "{s:?}");
    let st = store.stats();
    assert_eq!((st.objects, st.puts, st.dedup_hits), (1, 1, 0), "{st:?}");
    // Every handle still reads its value, through the one record.
    let key = handles[0].key().expect("key");
    for h in &handles {
        assert_eq!(h.key().expect("key"), key);
    }
    assert_eq!(handles[999].get().expect("get").len(), VALUE);
}

#[test]
fn identical_inserts_paged_out_in_one_batch_write_one_object() {
    // Room for all of them: one page-out at the end takes them together.
    identical_inserts_write_one_object(64 << 20, true);
}

#[test]
fn identical_inserts_paged_out_under_pressure_write_one_object() {
    // Room for about 60: page-outs in the background and in the callers along the way.
    identical_inserts_write_one_object(256 << 10, false);
}

#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Node {
    id: u64,
    data: Vec<u64>,
    children: Vec<Paged<Node>>,
}

/// Several threads build trees of distinct nodes under budget pressure, then everything is
/// paged out. Returns the pool's and the store's counts.
fn distinct_graph_run() -> (u64, u64, u64) {
    const THREADS: u64 = 4;
    const TREES: u64 = 150;
    let store = Arc::new(MemStore::new());
    let pool = pool(256 << 10, store.clone(), false);
    let trees: Vec<Vec<Paged<Node>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let pool = &pool;
                s.spawn(move || {
                    (0..TREES)
                        .map(|i| {
                            let id = (t * TREES + i) * 4;
                            let leaf = |n: u64| Node {
                                id: id + n,
                                data: vec![id + n; 200],
                                children: Vec::new(),
                            };
                            let a = pool.insert(leaf(1)).expect("insert");
                            let b = pool.insert(leaf(2)).expect("insert");
                            let mid = pool
                                .insert(Node {
                                    id: id + 3,
                                    data: vec![id + 3; 200],
                                    children: vec![a],
                                })
                                .expect("insert");
                            pool.insert(Node {
                                id,
                                data: vec![id; 200],
                                children: vec![mid, b],
                            })
                            .expect("insert")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a worker"))
            .collect()
    });
    pool.shrink_to(0).expect("page out everything");
    let s = pool.stats();
    assert_eq!(s.errors, 0, "{s:?}");
    let nodes = THREADS * TREES * 4;
    assert_eq!(s.objects_written, nodes, "each node written once: {s:?}");
    assert_eq!(store.stats().objects, nodes);
    drop(trees);
    (s.dedup_hits, store.stats().puts, store.stats().dedup_hits)
}

#[test]
fn a_graph_without_duplicates_has_no_dedup_hits_run_after_run() {
    for run in 0..2 {
        let (pool_dedup, puts, store_dedup) = distinct_graph_run();
        assert_eq!(pool_dedup, 0, "run {run}: pool dedup hits");
        assert_eq!(
            store_dedup, 0,
            "run {run}: the store was handed nothing twice"
        );
        assert_eq!(puts, 4 * 150 * 4, "run {run}");
    }
}

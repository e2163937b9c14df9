//! Garbage collection: unreachable graphs go, rooted, persisted and live-handle graphs stay, also
//! while other threads build, root, drop and reload graphs during collections; background
//! collection runs by itself.
//!
//! `SPILLWAY_GC_SECS=n` runs the concurrent test for `n` seconds instead of about two.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};
use spillway::{BlobStore, ContentKey, MemStore, Paged, Pool};

#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Node {
    label: u64,
    data: Vec<u8>,
    children: Vec<Paged<Node>>,
}

fn data(label: u64) -> Vec<u8> {
    let len = (label % 97) as usize + 8;
    (0..len).map(|j| (label as usize * 13 + j) as u8).collect()
}

fn node(pool: &Pool, label: u64, children: Vec<Paged<Node>>) -> Paged<Node> {
    pool.insert(Node {
        label,
        data: data(label),
        children,
    })
    .expect("insert")
}

/// Reads the whole graph under `h` (loading what is paged out) and returns its node count,
/// checking every node's data against its label.
fn check(h: &Paged<Node>) -> usize {
    let mut stack = vec![h.clone()];
    let mut count = 0;
    while let Some(h) = stack.pop() {
        let g = h.get().unwrap_or_else(|e| panic!("reading {h:?}: {e}"));
        assert!(g.data == data(g.label), "node {} has wrong data", g.label);
        count += 1;
        stack.extend(g.children.iter().cloned());
    }
    count
}

fn setup(budget: u64) -> (Arc<MemStore>, Pool) {
    let store = Arc::new(MemStore::new());
    let pool = Pool::builder()
        .budget(budget)
        .store(Arc::clone(&store) as Arc<dyn BlobStore>)
        .gc_after(0)
        .build()
        .expect("a pool");
    (store, pool)
}

#[test]
fn gc_removes_unreachable_graphs_and_keeps_reachable_ones() {
    let (store, pool) = setup(1 << 20);
    let shared = node(&pool, 1, vec![]);
    let rooted = node(&pool, 2, vec![shared.clone(), node(&pool, 3, vec![])]);
    let persisted = node(&pool, 4, vec![shared.clone(), node(&pool, 5, vec![])]);
    let live = node(&pool, 6, vec![shared.clone(), node(&pool, 7, vec![])]);
    let garbage = node(&pool, 8, vec![shared.clone(), node(&pool, 9, vec![])]);
    pool.set_root("rooted", &rooted).expect("set_root");
    let pkey = pool.persist(&persisted).expect("persist");
    live.key().expect("key");
    garbage.key().expect("key");
    let before = store.keys().expect("keys").len();
    assert_eq!(before, 9);
    let rkey = rooted.key().expect("key");
    drop((rooted, persisted, garbage, shared));
    let report = pool.gc().expect("gc");
    assert_eq!(report.deleted, 2, "the garbage node and its own child");
    assert_eq!(store.keys().expect("keys").len(), before - 2);
    pool.shrink_to(0).expect("shrink_to");
    let rooted: Paged<Node> = pool.root("rooted").expect("root").expect("a root");
    assert_eq!(rooted.key().expect("key"), rkey);
    assert_eq!(check(&rooted), 3);
    assert_eq!(check(&pool.load::<Node>(pkey).expect("load")), 3);
    assert_eq!(check(&live), 3);
    // Without its root, the graph is garbage (its shared child is still live through others).
    pool.remove_root("rooted").expect("remove_root");
    drop(rooted);
    pool.unpersist(pkey).expect("unpersist");
    assert_eq!(pool.gc().expect("gc").deleted, 4);
    assert_eq!(check(&live), 3);
}

#[test]
fn a_live_duplicate_keeps_its_key_when_the_first_copy_is_dropped() {
    let (_store, pool) = setup(1 << 20);
    let x = node(&pool, 10, vec![]);
    let y = node(&pool, 10, vec![]);
    assert_eq!(x.key().expect("key"), y.key().expect("key"));
    drop(x);
    pool.gc().expect("gc");
    pool.shrink_to(0).expect("shrink_to");
    assert_eq!(check(&y), 1);
}

/// One worker's graphs: handles it holds, and roots it named, with their node counts.
#[derive(Default)]
struct Held {
    handles: Vec<(Paged<Node>, usize)>,
    roots: HashMap<String, (ContentKey, usize)>,
}

fn verify(pool: &Pool, held: &Held) {
    for (h, n) in &held.handles {
        assert_eq!(check(h), *n);
    }
    for (name, (key, n)) in &held.roots {
        let r: Paged<Node> = pool
            .load(*key)
            .unwrap_or_else(|e| panic!("root {name}: {e}"));
        assert_eq!(check(&r), *n);
    }
}

#[test]
fn gc_never_removes_reachable_data_under_concurrent_mutation() {
    let secs: u64 = std::env::var("SPILLWAY_GC_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let (_store, pool) = setup(64 << 10);
    let pool = Arc::new(pool);
    // Subtrees every worker shares; dropped by the main thread once the workers hold them.
    let shared: Arc<Vec<Paged<Node>>> = Arc::new(
        (0..16)
            .map(|i| {
                node(
                    &pool,
                    1_000_000 + i,
                    vec![node(&pool, 2_000_000 + i, vec![])],
                )
            })
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let pool = Arc::clone(&pool);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut runs = 0u64;
            while !stop.load(Ordering::Relaxed) {
                pool.gc().expect("gc");
                runs += 1;
            }
            runs
        })
    };
    let helds: Vec<Arc<Mutex<Held>>> = (0..3).map(|_| Arc::default()).collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = helds
        .iter()
        .enumerate()
        .map(|(t, held)| {
            let pool = Arc::clone(&pool);
            let shared = Arc::clone(&shared);
            let held = Arc::clone(held);
            std::thread::spawn(move || {
                let mut rng = rand::rng();
                let mut next = (t as u64 + 1) * 10_000_000;
                let mut step = 0u64;
                while Instant::now() < deadline {
                    step += 1;
                    let mut guard = held.lock().expect("held");
                    let held = &mut *guard;
                    match rng.random_range(0..10) {
                        0..=3 => {
                            // A small graph over shared subtrees and new leaves.
                            let mut children: Vec<Paged<Node>> =
                                shared.choose_multiple(&mut rng, 2).cloned().collect();
                            for _ in 0..rng.random_range(0..3) {
                                next += 1;
                                children.push(node(&pool, next, vec![]));
                            }
                            next += 1;
                            let root = node(&pool, next, children);
                            let n = check(&root);
                            if rng.random_bool(0.5) {
                                root.key().expect("key");
                            }
                            held.handles.push((root, n));
                        }
                        4 => {
                            if let Some((h, n)) = held.handles.choose(&mut rng) {
                                let name = format!("w{t}-{step}");
                                let key = pool.set_root(&name, h).expect("set_root");
                                held.roots.insert(name, (key, *n));
                            }
                        }
                        5 => {
                            let name = held.roots.keys().next().cloned();
                            if let Some(name) = name {
                                held.roots.remove(&name);
                                pool.remove_root(&name).expect("remove_root");
                            }
                        }
                        6 | 7 => {
                            if !held.handles.is_empty() {
                                let i = rng.random_range(0..held.handles.len());
                                held.handles.swap_remove(i);
                            }
                        }
                        8 => {
                            // Reload a rooted graph by key, and keep the handle.
                            let root = held.roots.values().next().copied();
                            if let Some((key, n)) = root {
                                let h: Paged<Node> = pool.load(key).expect("load a rooted key");
                                assert_eq!(check(&h), n);
                                held.handles.push((h, n));
                            }
                        }
                        _ => {
                            if step.is_multiple_of(50) {
                                pool.shrink_to(0).expect("shrink_to");
                                verify(&pool, held);
                            }
                        }
                    }
                    if held.handles.len() > 40 {
                        held.handles.drain(..20);
                    }
                }
            })
        })
        .collect();
    drop(shared);
    for w in workers {
        w.join().expect("a worker panicked");
    }
    stop.store(true, Ordering::Relaxed);
    let runs = collector.join().expect("the collector panicked");
    assert!(runs > 0);
    pool.gc().expect("gc");
    pool.shrink_to(0).expect("shrink_to");
    for held in &helds {
        verify(&pool, &held.lock().expect("held"));
    }
}

#[test]
fn background_gc_runs_by_itself() {
    let store = Arc::new(MemStore::new());
    let pool = Pool::builder()
        .budget(1 << 20)
        .store(Arc::clone(&store) as Arc<dyn BlobStore>)
        .gc_after(10)
        .build()
        .expect("a pool");
    let keep = node(&pool, 1, vec![]);
    keep.key().expect("key");
    for i in 0..50 {
        let h = node(&pool, 100 + i, vec![]);
        h.key().expect("key");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while pool.stats().gc_runs == 0 {
        assert!(Instant::now() < deadline, "no background collection ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Wait for a run that saw every drop.
    while store.keys().expect("keys").len() > 1 {
        assert!(
            Instant::now() < deadline,
            "garbage left: {:?}",
            pool.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    pool.shrink_to(0).expect("shrink_to");
    assert_eq!(check(&keep), 1);
}

//! Garbage collection: unreachable graphs go, rooted, persisted and live-handle graphs stay, also
//! while other threads build, root, drop and reload graphs during collections; background
//! collection runs by itself.
//!
//! `SPILLWAY_GC_SECS=n` runs the concurrent test for `n` seconds instead of about two.

mod common;

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

/// A rooted graph `root → {a → {a1, a2}, b}` plus an unrooted `junk`, all stored and with no
/// handle left; returns the keys (root, a, a1, a2, b, junk).
fn stored_graph(pool: &Pool) -> [ContentKey; 6] {
    let a1 = node(pool, 11, vec![]);
    let a2 = node(pool, 12, vec![]);
    let a = node(pool, 10, vec![a1.clone(), a2.clone()]);
    let b = node(pool, 20, vec![]);
    let root = node(pool, 1, vec![a.clone(), b.clone()]);
    let junk = node(pool, 99, vec![]);
    pool.set_root("graph", &root).expect("set_root");
    let keys = [&root, &a, &a1, &a2, &b, &junk].map(|h| h.key().expect("key"));
    pool.shrink_to(0).expect("page out");
    keys
}

#[test]
fn gc_on_a_damaged_graph_stops_and_deletes_nothing() {
    let (store, pool) = setup(1 << 20);
    let [root, a, _a1, _a2, _b, _junk] = stored_graph(&pool);
    // The interior node `a` is lost, as damage would lose it.
    store.delete(&[a]).expect("delete");
    let before = store.keys().expect("keys").len();
    let err = pool.gc().expect_err("a hole in a rooted graph");
    assert!(err.is_corruption(), "{err}");
    match &err {
        spillway::Error::IncompleteGraph {
            roots,
            missing,
            missing_count,
            ..
        } => {
            assert_eq!(roots, &vec!["graph".to_string()]);
            assert_eq!((missing.as_slice(), *missing_count), (&[a][..], 1));
        }
        other => panic!("expected IncompleteGraph, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("deleted nothing") && msg.contains("\"graph\""),
        "{msg}"
    );
    assert!(msg.contains(&a.to_string()), "{msg}");
    assert_eq!(store.keys().expect("keys").len(), before, "nothing deleted");

    // The root's own object lost: the same.
    store.delete(&[root]).expect("delete");
    let before = store.keys().expect("keys").len();
    assert!(matches!(
        pool.gc().expect_err("a root names a missing object"),
        spillway::Error::IncompleteGraph { .. }
    ));
    assert_eq!(store.keys().expect("keys").len(), before);
}

#[test]
fn forced_gc_deletes_only_what_the_surviving_parts_do_not_reach() {
    let (store, pool) = setup(1 << 20);
    let [root, a, a1, a2, b, junk] = stored_graph(&pool);
    store.delete(&[a]).expect("delete");
    let report = pool
        .gc_with(spillway::GcOptions::default().force(true))
        .expect("forced gc");
    // Kept: what is stored and reachable (root and b). Missing: a. Deleted: junk, and a1 and
    // a2, which only the lost `a` reached.
    assert_eq!(report.marked, 2, "{report:?}");
    assert_eq!(report.missing, 1);
    assert_eq!(report.missing_keys, vec![a]);
    assert_eq!(report.damaged_roots, vec!["graph".to_string()]);
    assert_eq!(report.deleted, 3);
    let mut left = store.keys().expect("keys");
    left.sort_unstable();
    let mut want = vec![root, b];
    want.sort_unstable();
    assert_eq!(left, want);
    for k in [a1, a2, junk] {
        assert!(!store.contains(&k).expect("contains"));
    }
}

#[test]
fn gc_counts_as_kept_only_what_is_stored() {
    let (store, pool) = setup(1 << 20);
    let keys = stored_graph(&pool);
    let report = pool.gc().expect("gc");
    assert_eq!((report.marked, report.deleted, report.missing), (5, 1, 0));
    assert_eq!(store.keys().expect("keys").len(), 5);
    assert!(!store.contains(&keys[5]).expect("contains"));
}

#[test]
fn gc_marks_by_child_keys_alone_and_keeps_a_stores_own_root_records() {
    // A backend with the default roots: kept in reserved records of the store itself, which
    // the collection must not sweep; and it counts the payloads it serves.
    let store = Arc::new(common::Minimal::default());
    let pool = Pool::builder()
        .budget(1 << 20)
        .store(Arc::clone(&store) as Arc<dyn BlobStore>)
        .gc_after(0)
        .build()
        .expect("a pool");
    let keys = stored_graph(&pool);
    let reads = store.payload_reads();
    let report = pool.gc().expect("gc");
    assert_eq!((report.marked, report.deleted), (5, 1), "{report:?}");
    assert_eq!(store.payload_reads(), reads, "marking read a payload");
    let root: Paged<Node> = pool
        .root("graph")
        .expect("roots")
        .expect("the root survives");
    assert_eq!(root.key().expect("key"), keys[0]);
    assert_eq!(check(&root), 5);
    drop(root);
    let again = pool.gc().expect("gc again");
    assert_eq!((again.marked, again.deleted), (5, 0));
    assert_eq!(pool.roots().expect("roots").len(), 1);
}

/// A collection deletes parents before their children: a crash part-way through its deletions
/// (a log keeps a prefix of them) leaves garbage without parents, never an object whose child
/// is gone.
#[test]
fn a_collection_deletes_parents_before_children() {
    let store = Arc::new(common::Minimal::default());
    let pool = Pool::builder()
        .budget(1 << 20)
        .store(Arc::clone(&store) as Arc<dyn BlobStore>)
        .gc_after(u64::MAX)
        .build()
        .unwrap();
    // Layers of a DAG: each node over two of the layer below, shared between parents.
    let mut layer: Vec<Paged<Node>> = (0..16).map(|i| node(&pool, i, vec![])).collect();
    for depth in 1..5u64 {
        layer = (0..layer.len() / 2 + 1)
            .map(|i| {
                let kids = vec![
                    layer[i % layer.len()].clone(),
                    layer[(i + 1) % layer.len()].clone(),
                ];
                node(&pool, depth * 100 + i as u64, kids)
            })
            .collect();
    }
    let top = node(&pool, 999, layer);
    let total = check(&top);
    top.key().unwrap();
    let mut edges = Vec::new();
    for k in store.keys().unwrap() {
        for c in store.children(&k).unwrap().unwrap_or_default() {
            edges.push((k, c));
        }
    }
    drop(top);
    let report = pool.gc().unwrap();
    assert_eq!(report.deleted as usize, store.deleted().len());
    assert!(report.deleted >= 16 + 5, "{report:?} of {total} nodes");
    let order: HashMap<ContentKey, usize> = store
        .deleted()
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, i))
        .collect();
    for (parent, child) in edges {
        if let (Some(p), Some(c)) = (order.get(&parent), order.get(&child)) {
            assert!(p < c, "child {child} deleted before its parent {parent}");
        }
    }
}

/// Children whose last handles go out of memory with their paged-out parent are still reached
/// through its record: they do not count towards `gc_after`. Dropping the last handles of
/// stored objects does, once per object.
#[test]
fn children_that_leave_with_a_paged_out_parent_do_not_count_as_dropped() {
    let (_store, pool) = setup(1 << 20);
    let (parent, kept) = {
        let children: Vec<Paged<Node>> = (0..50).map(|i| node(&pool, 10 + i, vec![])).collect();
        let kept = children[7].clone();
        (node(&pool, 1, children), kept)
    };
    parent.key().expect("key");
    assert_eq!(pool.stats().entries, 51);
    pool.shrink_to(0).expect("shrink_to");
    let s = pool.stats();
    assert_eq!(
        s.entries, 2,
        "the children's entries went with the parent's value"
    );
    assert_eq!(s.dropped_since_gc, 0, "{s:?}");
    // A child the parent's record refers to: its last handle going makes nothing garbage.
    drop(kept);
    assert_eq!(pool.stats().dropped_since_gc, 0);
    // Paged in again, the parent hands out new child handles; dropping it drops them all.
    assert_eq!(check(&parent), 51);
    drop(parent);
    let s = pool.stats();
    assert_eq!(s.entries, 0);
    assert_eq!(s.dropped_since_gc, 51, "{s:?}");
    pool.gc().expect("gc");
    assert_eq!(pool.stats().dropped_since_gc, 0);
}

//! Guards that hold more than the budget: reads go on at a steady rate (eviction sets held
//! values aside instead of asking about each of them on every reservation), every read sees its
//! value, `held_bytes` reports what is held, and once the guards are dropped every value can be
//! paged out again.

use std::collections::VecDeque;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use spillway::{Guard, MemStore, Paged, Pool};

mod common;
use common::bounded;

/// The value of object `i`: its bytes follow from `i` alone.
fn value(i: usize) -> Vec<u8> {
    (0..256).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// A well-mixed number from `x` (splitmix64's finalizer), to pick objects at random.
fn spread(x: u64) -> usize {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as usize
}

const THREADS: usize = 8;
/// Guards each thread keeps: 8 × 1,000 × about 300 bytes is about 2.4 MB, over the budget.
const HELD: usize = 1_000;
const READS: usize = 4_000;
const VALUES: usize = 12_000;
const BUDGET: u64 = 1 << 20;

#[test]
fn guards_over_the_budget_do_not_stall_reads() {
    let pool = Arc::new(
        Pool::builder()
            .budget(BUDGET)
            .store(Arc::new(MemStore::new()))
            .build()
            .unwrap(),
    );
    let handles: Arc<Vec<Paged<Vec<u8>>>> = Arc::new(
        (0..VALUES)
            .map(|i| pool.insert(value(i)).unwrap())
            .collect(),
    );
    pool.shrink_to(0).unwrap();

    let filled = Arc::new(Barrier::new(THREADS + 1));
    let go_on = Arc::new(Barrier::new(THREADS + 1));
    let h = Arc::clone(&handles);
    let (f, g) = (Arc::clone(&filled), Arc::clone(&go_on));
    let run = std::thread::spawn(move || {
        bounded(
            "reads with guards over the budget",
            Duration::from_secs(120),
            move || {
                let started = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..THREADS {
                        let (h, f, g) = (&h, &f, &g);
                        s.spawn(move || {
                            let mut kept: VecDeque<(usize, Guard<Vec<u8>>)> = VecDeque::new();
                            for n in 0..READS {
                                let i = spread((t * READS + n) as u64) % VALUES;
                                let guard = h[i].get().unwrap();
                                assert_eq!(*guard, value(i), "object {i} read back wrong");
                                kept.push_back((i, guard));
                                if kept.len() > HELD {
                                    let (j, old) = kept.pop_front().unwrap();
                                    assert_eq!(*old, value(j), "object {j} changed while held");
                                }
                                if n + 1 == HELD {
                                    f.wait();
                                    g.wait();
                                }
                            }
                        });
                    }
                });
                started.elapsed()
            },
        )
    });

    // Every thread holds its guards now: more than the budget is held, and reported.
    filled.wait();
    let stats = pool.stats();
    assert!(
        stats.held_bytes > BUDGET,
        "held_bytes {} should exceed the budget {BUDGET} while {THREADS} × {HELD} guards live",
        stats.held_bytes
    );
    assert!(stats.held_bytes <= stats.resident_bytes);
    go_on.wait();
    let took = run.join().expect("the reading threads");
    eprintln!(
        "{} reads with {} guards held over a {} byte budget took {took:?}",
        THREADS * READS,
        THREADS * HELD,
        BUDGET
    );

    // The guards are gone: nothing is held, and every value can leave memory.
    let stats = pool.stats();
    assert_eq!(stats.held_bytes, 0);
    pool.shrink_to(0).unwrap();
    assert_eq!(
        pool.stats().resident_bytes,
        0,
        "values set aside while held stayed in memory"
    );
    // And read back correctly once more.
    for (i, h) in handles.iter().enumerate().step_by(97) {
        assert_eq!(*h.get().unwrap(), value(i));
    }
}

/// A pool of `BUDGET` over a memory store that evicts only in its callers.
fn deterministic_pool() -> Pool {
    Pool::builder()
        .budget(BUDGET)
        .store(Arc::new(MemStore::new()))
        .deterministic(true)
        .build()
        .expect("a pool over a memory store builds")
}

/// Below the budget, held values do not make the pool pass it: the budget holds while other
/// values come and go around them.
#[test]
fn held_values_under_the_budget_keep_it() {
    let pool = deterministic_pool();
    let handles: Vec<Paged<Vec<u8>>> = (0..4_000).map(|i| pool.insert(value(i)).unwrap()).collect();
    pool.shrink_to(0).unwrap();
    // A third of the budget held by guards the whole time.
    let held: Vec<_> = handles[..1_000].iter().map(|h| h.get().unwrap()).collect();
    for round in 0..3 {
        for (i, h) in handles.iter().enumerate().skip(1_000) {
            assert_eq!(*h.get().unwrap(), value(i), "round {round}, object {i}");
        }
    }
    let stats = pool.stats();
    assert!(
        stats.peak_resident_bytes <= BUDGET,
        "peak {} passed the budget {BUDGET}",
        stats.peak_resident_bytes
    );
    assert!(stats.held_bytes >= 1_000 * 256, "held {}", stats.held_bytes);
    for (i, g) in held.iter().enumerate() {
        assert_eq!(**g, value(i));
    }
    drop(held);
    pool.shrink_to(0).unwrap();
    assert_eq!(pool.stats().resident_bytes, 0);
}

/// A borrowed `Ref` pins its value as a guard does: a page-out passes it over, `held_bytes`
/// counts it, and once it is dropped the value can go. A `read` of a paged-out value loads it
/// and counts as a miss; of a resident one, as a hit.
#[test]
fn a_ref_pins_its_value_and_reads_count_like_gets() {
    let pool = deterministic_pool();
    let handles: Vec<Paged<Vec<u8>>> = (0..10).map(|i| pool.insert(value(i)).unwrap()).collect();
    pool.shrink_to(0).unwrap();
    assert_eq!(pool.stats().resident_bytes, 0);

    let before = pool.stats();
    let r = handles[3].read().unwrap();
    assert_eq!(*r, value(3));
    let after = pool.stats();
    assert_eq!(
        after.misses - before.misses,
        1,
        "a read that loads is a miss"
    );
    assert_eq!(after.page_ins - before.page_ins, 1);
    assert_eq!(
        *handles[3].read().unwrap(),
        value(3),
        "a second read, same thread"
    );
    assert_eq!(*handles[3].get().unwrap(), value(3), "a get beside the ref");
    assert_eq!(
        pool.stats().hits - after.hits,
        2,
        "reads of a resident value are hits"
    );

    pool.shrink_to(0).unwrap();
    assert!(
        handles[3].is_resident(),
        "a page-out took a value a ref holds"
    );
    assert!(
        pool.stats().held_bytes >= 256,
        "held {}",
        pool.stats().held_bytes
    );
    assert_eq!(*r, value(3));
    drop(r);
    pool.shrink_to(0).unwrap();
    assert!(!handles[3].is_resident());
    assert_eq!(pool.stats().resident_bytes, 0);
}

/// A thread that holds refs keeps reading while other threads read, evict and load the same
/// values over a small budget: every read sees its value, nothing waits forever (a ref is a
/// read lock, so this is where a lock-order mistake would hang).
#[test]
fn refs_held_across_evictions_and_loads_on_other_threads() {
    let pool = Arc::new(
        Pool::builder()
            .budget(64 << 10)
            .store(Arc::new(MemStore::new()))
            .build()
            .unwrap(),
    );
    let handles: Arc<Vec<Paged<Vec<u8>>>> =
        Arc::new((0..2_000).map(|i| pool.insert(value(i)).unwrap()).collect());
    bounded(
        "refs beside evictions",
        Duration::from_secs(120),
        move || {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let (pool, handles) = (Arc::clone(&pool), Arc::clone(&handles));
                    std::thread::spawn(move || {
                        for k in 0..20_000u64 {
                            let i = spread(k * 4 + t) % handles.len();
                            let j = spread(k * 4 + t + 1) % handles.len();
                            let a = handles[i].read().unwrap();
                            let b = handles[j].read().unwrap();
                            assert_eq!(*a, value(i));
                            assert_eq!(*b, value(j));
                            assert_eq!(*handles[i].get().unwrap(), value(i));
                            if k % 1_000 == 0 {
                                pool.shrink_to(0).unwrap();
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        },
    );
}

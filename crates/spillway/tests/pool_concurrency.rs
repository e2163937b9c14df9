//! Concurrent reads, page-outs and page-ins through one pool: every read sees the value that was
//! inserted, nothing deadlocks, concurrent page-ins of one object load it once, and the measured
//! peak stays within the budget.
//!
//! `SPILLWAY_STRESS_SECS=n` runs the stress test for `n` seconds instead of about two.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use get_size2::GetSize;
use rand::Rng;
use spillway::{MemStore, Paged, Pool};

mod common;
use common::bounded;

/// The value of object `i`: its length and bytes follow from `i` alone.
fn value(i: u64) -> Vec<u8> {
    let len = 200 + (i.wrapping_mul(7919) % 1800) as usize;
    (0..len)
        .map(|j| (i.wrapping_mul(31).wrapping_add(j as u64 * 17) % 251) as u8)
        .collect()
}

fn pool(budget: u64) -> Pool {
    Pool::builder()
        .budget(budget)
        .store(Arc::new(MemStore::new()))
        .build()
        .expect("a pool over a memory store")
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
}

#[test]
fn concurrent_reads_under_constant_paging_see_their_values() {
    let secs: u64 = std::env::var("SPILLWAY_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let n_values = 4000u64;
    let data: u64 = (0..n_values).map(|i| value(i).get_size() as u64).sum();
    let budget = data / 10;
    let pool = Arc::new(pool(budget));
    let handles: Arc<Vec<Paged<Vec<u8>>>> = Arc::new(
        (0..n_values)
            .map(|i| pool.insert(value(i)).expect("insert"))
            .collect(),
    );
    let n = threads();
    let reads = bounded(
        "the stress run",
        Duration::from_secs(secs + 60),
        move || {
            let stop = Instant::now() + Duration::from_secs(secs);
            let workers: Vec<_> = (0..n)
                .map(|t| {
                    let pool = Arc::clone(&pool);
                    let handles = Arc::clone(&handles);
                    std::thread::spawn(move || {
                        let mut rng = rand::rng();
                        let mut held = Vec::new();
                        let mut reads = 0u64;
                        while Instant::now() < stop {
                            let i = rng.random_range(0..n_values);
                            let g = handles[i as usize].get().expect("get");
                            assert!(*g == value(i), "thread {t}: object {i} read back wrong");
                            reads += 1;
                            // Hold a few guards for short, random spans.
                            if rng.random_bool(0.3) {
                                held.push(g);
                            }
                            if held.len() > 2 || rng.random_bool(0.2) {
                                held.clear();
                            }
                            if rng.random_bool(0.002) {
                                let to = rng.random_range(0..=budget);
                                pool.shrink_to(to).expect("shrink_to");
                            }
                        }
                        reads
                    })
                })
                .collect();
            let reads: u64 = workers
                .into_iter()
                .map(|w| w.join().expect("a reader thread panicked"))
                .sum();
            let s = pool.stats();
            assert!(
                s.peak_resident_bytes <= budget,
                "peak {} over budget {budget}",
                s.peak_resident_bytes
            );
            assert!(s.page_ins > 0 && s.page_outs > 0, "{s:?}");
            // Everything still reads back after the run.
            for (i, h) in handles.iter().enumerate() {
                assert!(*h.get().expect("get") == value(i as u64));
            }
            reads
        },
    );
    assert!(reads > 0);
}

#[test]
fn concurrent_page_ins_of_one_object_load_it_once() {
    let k = threads().max(4);
    let pool = Arc::new(pool(16 << 20));
    bounded(
        "the single-flight rounds",
        Duration::from_secs(60),
        move || {
            for round in 0..100u64 {
                let h = pool.insert(value(round)).expect("insert");
                h.key().expect("key");
                pool.shrink_to(0).expect("shrink_to");
                assert!(!h.is_resident(), "round {round}: still resident");
                let before = pool.stats().page_ins;
                let barrier = Arc::new(Barrier::new(k));
                let readers: Vec<_> = (0..k)
                    .map(|_| {
                        let h = h.clone();
                        let barrier = Arc::clone(&barrier);
                        std::thread::spawn(move || {
                            barrier.wait();
                            h.get().expect("get")
                        })
                    })
                    .collect();
                let guards: Vec<_> = readers
                    .into_iter()
                    .map(|r| r.join().expect("a reader panicked"))
                    .collect();
                assert_eq!(
                    pool.stats().page_ins,
                    before + 1,
                    "round {round}: {k} concurrent readers loaded the object more than once"
                );
                for g in &guards {
                    assert!(
                        std::ptr::eq::<Vec<u8>>(&**g, &*guards[0]),
                        "round {round}: readers got different copies"
                    );
                    assert!(**g == value(round));
                }
            }
        },
    );
}

#[test]
fn the_budget_holds_with_every_thread_inserting_and_reading() {
    let budget = 256 << 10;
    let pool = Arc::new(pool(budget));
    let n = threads();
    bounded("the insert/read run", Duration::from_secs(60), move || {
        let workers: Vec<_> = (0..n as u64)
            .map(|t| {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for j in 0..800u64 {
                        let i = t * 1_000_000 + j;
                        mine.push((i, pool.insert(value(i)).expect("insert")));
                        if j % 3 == 0 {
                            let (i, h) = &mine[(j as usize * 7) % mine.len()];
                            assert!(*h.get().expect("get") == value(*i));
                        }
                    }
                    for (i, h) in &mine {
                        assert!(*h.get().expect("get") == value(*i));
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a worker panicked");
        }
        let s = pool.stats();
        assert!(
            s.peak_resident_bytes <= budget,
            "peak {} over budget {budget}",
            s.peak_resident_bytes
        );
    });
}

//! Model checking of the pool's own code with shuttle: a build with `--cfg spillway_shuttle`
//! makes every lock, condition variable, atomic, channel and thread of the runtime shuttle's
//! (`src/sync.rs`), so these tests run the real `Pool`, `Paged` and their entry state machine,
//! residency and page-in table, and shuttle explores the interleavings of their threads at every
//! one of those operations, reporting a deadlock or a failed assertion with its schedule.
//!
//! Checked, each over many random schedules:
//! - pin vs evict: a guard or a borrowed `Ref` taken while another thread pages everything out
//!   keeps its value; once it is gone the value can go;
//! - single flight: concurrent reads of a paged-out value, blocking and async, load it once;
//! - a reservation that evicts: inserts and page-ins that must evict to fit, on two threads,
//!   stay within the budget (plus, at most, the one value a contended reservation may be let
//!   past it with) and read back right;
//! - drop: the last handle dropped while another thread evicts or reads;
//! - held values: a value pinned while evictions run is set aside and comes back under the
//!   policy once its guard is dropped;
//! - two value types: handles loaded while collections and a page-out run keep their objects;
//! - gets without the lock: resident `get`s (under hazard slots) racing evictions and page-ins
//!   never read a slot while it is written;
//! - a failed check fails its test without taking the test process down.
//!
//! Run with
//! `CARGO_TARGET_DIR=target/shuttle RUSTFLAGS="--cfg spillway_shuttle" cargo test -p spillway --test pool_shuttle`
//! (CI does). `SPILLWAY_SHUTTLE_ITERS=n` sets the schedules per test (default 300). In a normal
//! build this file holds one test that says so.

#[cfg(not(spillway_shuttle))]
#[test]
fn runs_under_shuttle_only() {
    eprintln!(
        "pool_shuttle model-checks the pool's own code: run it with \
         RUSTFLAGS=\"--cfg spillway_shuttle\" (see the file's documentation)"
    );
}

#[cfg(spillway_shuttle)]
mod real {
    use std::sync::Arc;

    use shuttle::thread;
    use spillway::{BlobStore, MemStore, Paged, Pool};

    fn iters() -> usize {
        std::env::var("SPILLWAY_SHUTTLE_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300)
    }

    /// Values of 200 bytes or so (vectors of 24 `u64`), each different.
    fn value(i: u64) -> Vec<u64> {
        (0..24).map(|j| i * 1000 + j).collect()
    }

    fn pool(budget: u64) -> Arc<Pool> {
        Arc::new(
            Pool::builder()
                .budget(budget)
                .store(Arc::new(MemStore::new()) as Arc<dyn BlobStore>)
                .deterministic(true)
                .io_threads(1)
                .build()
                .expect("a pool"),
        )
    }

    fn stored(pool: &Pool, i: u64) -> Paged<Vec<u64>> {
        let h = pool.insert(value(i)).expect("insert");
        h.key().expect("store");
        h
    }

    #[test]
    fn pin_vs_evict() {
        shuttle::check_random(
            || {
                let pool = pool(1 << 20);
                let a = stored(&pool, 1);
                let reader = {
                    let a = a.clone();
                    thread::spawn(move || {
                        let g = a.get().expect("get");
                        assert_eq!(*g, value(1), "a guard saw another value");
                        // Held across the other thread's eviction: still there.
                        thread::yield_now();
                        assert_eq!(*g, value(1), "a held value changed");
                    })
                };
                pool.shrink_to(0).expect("shrink");
                reader.join().expect("reader");
                // No guard now: everything can go, and comes back right.
                pool.shrink_to(0).expect("shrink");
                assert_eq!(pool.stats().resident_bytes, 0);
                assert_eq!(*a.get().expect("get"), value(1));
            },
            iters(),
        );
    }

    /// A resident `get` counts its value without the slot's lock, under a hazard slot: an
    /// eviction that races it either sees the reader and leaves the value, or takes it only
    /// once the reader is done; a page-in never writes the slot while a reader reads it
    /// without the lock (the model fails on such a write, see `sync::peek`).
    #[test]
    fn gets_without_the_lock_race_evictions_and_page_ins() {
        shuttle::check_random(
            || {
                let pool = pool(1 << 20);
                let a = stored(&pool, 1);
                let readers: Vec<_> = (0..2)
                    .map(|_| {
                        let a = a.clone();
                        thread::spawn(move || {
                            for _ in 0..3 {
                                let g = a.get().expect("get");
                                assert_eq!(*g, value(1), "a guard saw another value");
                                thread::yield_now();
                                assert_eq!(*g, value(1), "a held value changed");
                            }
                        })
                    })
                    .collect();
                for _ in 0..2 {
                    pool.shrink_to(0).expect("shrink");
                    assert_eq!(*a.get().expect("get"), value(1));
                }
                for r in readers {
                    r.join().expect("reader");
                }
                pool.shrink_to(0).expect("shrink");
                assert_eq!(pool.stats().resident_bytes, 0);
                assert_eq!(*a.get().expect("get"), value(1));
            },
            iters(),
        );
    }

    /// The same with a borrowed [`spillway::Ref`], which pins by the slot's read lock rather
    /// than a reference count; and a `read` of a paged-out value racing evictions loads it and
    /// shows it whole.
    #[test]
    fn a_ref_pins_like_a_guard() {
        shuttle::check_random(
            || {
                let pool = pool(1 << 20);
                let a = stored(&pool, 1);
                let b = stored(&pool, 2);
                pool.shrink_to(0).expect("shrink");
                let reader = {
                    let (a, b) = (a.clone(), b.clone());
                    thread::spawn(move || {
                        let r = a.read().expect("read");
                        assert_eq!(*r, value(1), "a ref saw another value");
                        thread::yield_now();
                        assert_eq!(*r, value(1), "a held value changed");
                        drop(r);
                        assert_eq!(*b.read().expect("read"), value(2));
                    })
                };
                pool.shrink_to(0).expect("shrink");
                assert_eq!(*a.get().expect("get"), value(1));
                pool.shrink_to(0).expect("shrink");
                reader.join().expect("reader");
                pool.shrink_to(0).expect("shrink");
                assert_eq!(pool.stats().resident_bytes, 0);
                assert_eq!(*a.read().expect("read"), value(1));
            },
            iters(),
        );
    }

    #[test]
    fn single_flight_page_in_blocking_and_async() {
        shuttle::check_random(
            || {
                let pool = pool(1 << 20);
                let a = stored(&pool, 2);
                pool.shrink_to(0).expect("shrink");
                let before = pool.stats().page_ins;
                let blocking = {
                    let a = a.clone();
                    thread::spawn(move || assert_eq!(*a.get().expect("get"), value(2)))
                };
                let asynchronous = {
                    let a = a.clone();
                    thread::spawn(move || {
                        let g = shuttle::future::block_on(a.get_async()).expect("get_async");
                        assert_eq!(*g, value(2));
                    })
                };
                assert_eq!(*a.get().expect("get"), value(2));
                blocking.join().expect("blocking reader");
                asynchronous.join().expect("async reader");
                assert_eq!(
                    pool.stats().page_ins - before,
                    1,
                    "three concurrent reads of one paged-out value loaded it more than once"
                );
            },
            iters(),
        );
    }

    #[test]
    fn reservations_that_evict() {
        shuttle::check_random(
            || {
                // Room for about three values.
                let pool = pool(700);
                let old: Vec<_> = (10..13).map(|i| stored(&pool, i)).collect();
                let inserter = {
                    let pool = Arc::clone(&pool);
                    thread::spawn(move || {
                        let mine: Vec<_> = (20..23)
                            .map(|i| pool.insert(value(i)).expect("insert"))
                            .collect();
                        for (i, h) in (20..23).zip(&mine) {
                            assert_eq!(*h.get().expect("get"), value(i));
                        }
                    })
                };
                for (i, h) in (10..13).zip(&old) {
                    assert_eq!(*h.get().expect("get"), value(i));
                }
                inserter.join().expect("inserter");
                let stats = pool.stats();
                let one = 24 * 8 + 24;
                assert!(
                    stats.peak_resident_bytes <= stats.budget_bytes + one,
                    "peak {} past the budget {} by more than one value",
                    stats.peak_resident_bytes,
                    stats.budget_bytes
                );
            },
            iters(),
        );
    }

    #[test]
    fn last_handle_dropped_during_eviction_and_reads() {
        shuttle::check_random(
            || {
                let pool = pool(1 << 20);
                let a = stored(&pool, 3);
                let b = stored(&pool, 4);
                let dropper = {
                    let a = a.clone();
                    thread::spawn(move || drop(a))
                };
                let reader = {
                    let b = b.clone();
                    thread::spawn(move || assert_eq!(*b.get().expect("get"), value(4)))
                };
                drop(a);
                pool.shrink_to(0).expect("shrink");
                dropper.join().expect("dropper");
                reader.join().expect("reader");
                drop(b);
                let stats = pool.stats();
                assert_eq!(stats.entries, 0, "an entry outlived its last handle");
                assert_eq!(stats.resident_bytes, 0, "bytes charged for dropped values");
            },
            iters(),
        );
    }

    #[test]
    fn a_held_value_set_aside_comes_back_once_let_go() {
        shuttle::check_random(
            || {
                let pool = pool(700);
                let a = stored(&pool, 5);
                let holder = {
                    let a = a.clone();
                    thread::spawn(move || {
                        let g = a.get().expect("get");
                        thread::yield_now();
                        assert_eq!(*g, value(5));
                    })
                };
                // Inserts that evict: the held value may be set aside meanwhile.
                let others: Vec<_> = (30..34).map(|i| stored(&pool, i)).collect();
                holder.join().expect("holder");
                pool.shrink_to(0).expect("shrink");
                assert_eq!(
                    pool.stats().resident_bytes,
                    0,
                    "a value let go stayed in memory"
                );
                assert_eq!(pool.stats().held_bytes, 0);
                for (i, h) in (30..34).zip(&others) {
                    assert_eq!(*h.get().expect("get"), value(i));
                }
            },
            iters(),
        );
    }

    /// A failed check reports its schedule and fails the test, without taking the test
    /// process down: nothing of the pool's that a thread touched (its thread-locals included)
    /// panics again while the failed execution is torn down.
    #[test]
    fn a_failed_check_fails_the_test_and_nothing_else() {
        let failed = std::panic::catch_unwind(|| {
            shuttle::check_random(
                || {
                    let pool = pool(1 << 20);
                    let a = stored(&pool, 1);
                    let reader = {
                        let a = a.clone();
                        thread::spawn(move || {
                            assert_eq!(*a.read().expect("read"), value(1));
                            assert_eq!(*a.get().expect("get"), value(1));
                            // Ends the execution while this thread is alive.
                            panic!("a planted failure");
                        })
                    };
                    let _ = reader.join();
                },
                1,
            );
        });
        assert!(failed.is_err(), "the planted failure was not reported");
    }

    /// Handles of two value types (two registry tables) loaded while collections and a
    /// page-out run: a collection keeps what a loaded handle names, and the handle reads it.
    #[test]
    fn loads_of_two_types_race_collections() {
        shuttle::check_random(
            || {
                let pool = pool(1 << 20);
                let numbers = pool.insert(value(1)).expect("insert").key().expect("store");
                let text = pool
                    .insert(String::from("two"))
                    .expect("insert")
                    .key()
                    .expect("store");
                let a = {
                    let pool = Arc::clone(&pool);
                    thread::spawn(move || {
                        if let Ok(h) = pool.load::<Vec<u64>>(numbers) {
                            assert_eq!(*h.get().expect("a loaded handle reads"), value(1));
                            pool.gc().expect("gc");
                            assert_eq!(*h.get().expect("it still reads"), value(1));
                        }
                    })
                };
                let b = {
                    let pool = Arc::clone(&pool);
                    thread::spawn(move || {
                        if let Ok(h) = pool.load::<String>(text) {
                            pool.shrink_to(0).expect("shrink");
                            assert_eq!(*h.get().expect("a loaded handle reads"), "two");
                        }
                    })
                };
                pool.gc().expect("gc");
                a.join().expect("a");
                b.join().expect("b");
            },
            iters(),
        );
    }
}

//! Model checking, with shuttle, of the two protocols of a paged object (`runtime/entry.rs`):
//! pin vs evict, and single-flight page-in.
//!
//! **This runs a model, not the runtime itself.** The runtime's entry uses `parking_lot` locks
//! and lives inside a pool (store, budget, policy, I/O threads) that shuttle cannot schedule, so
//! `ModelEntry` below restates `Entry`'s state machine step for step with shuttle's primitives:
//! the same slot states, the same locks taken in the same order, the same checks under them:
//!
//! - `get`: read the slot; if `Resident`, clone its `Arc` under the read lock (the pin);
//! - `load_blocking`: under the slot's write lock, `Evicted` → `Loading` and a new load put in
//!   the loads table (this caller loads) or, on `Loading`, take the load from the table while
//!   still under the slot's lock; then take that load's wait lock and wait until it is done,
//!   then return the failure it recorded or read the slot again;
//! - `finish_load`: under the load's wait lock, then the slot's write lock, publish the value or
//!   go back to `Evicted` and take the load out of the table; mark the load done, record its
//!   failure; then wake the waiters;
//! - `try_evict`: only a stored entry; under the slot's write lock, only if the slot's `Arc` is
//!   the only one; the charged size is taken back under that same lock.
//!
//! A change to those steps in `entry.rs` must be made here too. The async path (`GetFuture`)
//! follows the same wait-lock protocol with wakers instead of the condition variable and is not
//! modelled.
//!
//! `SPILLWAY_SHUTTLE_ITERS=n` sets the number of random schedules per test (default 2000).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use shuttle::sync::{Condvar, Mutex, RwLock};
use shuttle::thread;

/// The value's size as charged to the budget.
const SIZE: u64 = 100;

enum Slot {
    Resident(Arc<u64>),
    Evicted,
    Loading,
}

#[derive(Default)]
struct LoadWait {
    done: bool,
    failure: Option<String>,
}

/// `loading::Load`: one page-in in progress.
#[derive(Default)]
struct Load {
    wait: Mutex<LoadWait>,
    cv: Condvar,
}

struct ModelEntry {
    stored: AtomicBool,
    slot: RwLock<Slot>,
    /// The pool's loads table (`loading::Loads`), for this one entry.
    table: Mutex<Option<Arc<Load>>>,
    /// Bytes charged for this entry (0 when evicted).
    size: AtomicU64,
    /// The pool's budget: bytes charged in total.
    budget: AtomicU64,
    /// Page-ins started (the store read).
    loads: AtomicUsize,
    /// Every page-in fails (the key was deleted from the store).
    fail: bool,
}

/// What one caller did, for the checks.
#[derive(Debug, Default, Clone, Copy)]
struct Trace {
    waited: bool,
    loaded: bool,
}

impl ModelEntry {
    fn new(resident: bool, fail: bool) -> Arc<ModelEntry> {
        Arc::new(ModelEntry {
            stored: AtomicBool::new(true),
            slot: RwLock::new(if resident {
                Slot::Resident(Arc::new(7))
            } else {
                Slot::Evicted
            }),
            table: Mutex::new(None),
            size: AtomicU64::new(if resident { SIZE } else { 0 }),
            budget: AtomicU64::new(if resident { SIZE } else { 0 }),
            loads: AtomicUsize::new(0),
            fail,
        })
    }

    /// `Paged::get`.
    fn get(&self, trace: &mut Trace) -> Result<Arc<u64>, String> {
        if let Slot::Resident(v) = &*self.slot.read().expect("slot") {
            return Ok(Arc::clone(v));
        }
        self.load_blocking(trace)
    }

    /// `Entry::page_in`: reads the store, reserves, decodes, sets the size.
    fn page_in(&self, trace: &mut Trace) -> Result<Arc<u64>, String> {
        trace.loaded = true;
        self.loads.fetch_add(1, Ordering::SeqCst);
        thread::yield_now();
        if self.fail {
            return Err("key 0123 is not in memory store".into());
        }
        self.budget.fetch_add(SIZE, Ordering::SeqCst);
        self.size.store(SIZE, Ordering::SeqCst);
        Ok(Arc::new(7))
    }

    /// `Entry::load_blocking`.
    fn load_blocking(&self, trace: &mut Trace) -> Result<Arc<u64>, String> {
        loop {
            let mut slot = self.slot.write().expect("slot");
            match &*slot {
                Slot::Resident(v) => return Ok(Arc::clone(v)),
                Slot::Loading => {
                    let load = self.table.lock().expect("table").clone();
                    drop(slot);
                    let load = load.expect("a loading entry has a load");
                    trace.waited = true;
                    let mut wait = load.wait.lock().expect("wait");
                    while !wait.done {
                        wait = load.cv.wait(wait).expect("wait");
                    }
                    if let Some(e) = &wait.failure {
                        return Err(e.clone());
                    }
                }
                Slot::Evicted => {
                    *slot = Slot::Loading;
                    let load = Arc::new(Load::default());
                    let old = self.table.lock().expect("table").replace(Arc::clone(&load));
                    assert!(old.is_none(), "two loads in the table at once");
                    drop(slot);
                    let loaded = self.page_in(trace);
                    return self.finish_load(&load, loaded);
                }
            }
        }
    }

    /// `Entry::finish_load`.
    fn finish_load(
        &self,
        load: &Load,
        loaded: Result<Arc<u64>, String>,
    ) -> Result<Arc<u64>, String> {
        {
            let mut wait = load.wait.lock().expect("wait");
            let mut slot = self.slot.write().expect("slot");
            *slot = match &loaded {
                Ok(v) => Slot::Resident(Arc::clone(v)),
                Err(_) => Slot::Evicted,
            };
            let ended = self.table.lock().expect("table").take();
            assert!(
                ended.is_some_and(|l| std::ptr::eq(&*l, load)),
                "the load that ends is the one in the table"
            );
            drop(slot);
            wait.done = true;
            wait.failure = loaded.as_ref().err().cloned();
        }
        load.cv.notify_all();
        loaded
    }

    /// `Entry::try_evict`.
    fn try_evict(&self) -> bool {
        if !self.stored.load(Ordering::SeqCst) {
            return false;
        }
        let size = {
            let mut slot = self.slot.write().expect("slot");
            match &*slot {
                Slot::Resident(v) if Arc::strong_count(v) == 1 => {
                    *slot = Slot::Evicted;
                    self.size.swap(0, Ordering::SeqCst)
                }
                _ => return false,
            }
        };
        self.budget.fetch_sub(size, Ordering::SeqCst);
        true
    }

    /// The budget charges the entry exactly while it is resident.
    fn check_accounting(&self) {
        let resident = matches!(&*self.slot.read().expect("slot"), Slot::Resident(_));
        let charged = self.budget.load(Ordering::SeqCst);
        assert_eq!(
            charged,
            if resident { SIZE } else { 0 },
            "budget out of step"
        );
        assert_eq!(self.size.load(Ordering::SeqCst), charged);
    }

    /// While `guard` lives, the slot holds exactly its value.
    fn check_pinned(&self, guard: &Arc<u64>) {
        match &*self.slot.read().expect("slot") {
            Slot::Resident(v) => assert!(Arc::ptr_eq(v, guard), "a guard's value was replaced"),
            _ => panic!("a value was evicted while a guard was alive"),
        }
    }
}

fn iterations() -> usize {
    std::env::var("SPILLWAY_SHUTTLE_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000)
}

#[test]
fn a_pinned_value_is_never_evicted_and_a_get_after_evict_reloads() {
    shuttle::check_random(
        || {
            let e = ModelEntry::new(true, false);
            let reader = {
                let e = Arc::clone(&e);
                thread::spawn(move || {
                    let mut t = Trace::default();
                    let g = e.get(&mut t).expect("get");
                    e.check_pinned(&g);
                    let g2 = Arc::clone(&g); // a guard clone
                    drop(g);
                    e.check_pinned(&g2);
                    assert_eq!(*g2, 7);
                    drop(g2);
                    let g3 = e.get(&mut t).expect("get again");
                    e.check_pinned(&g3);
                })
            };
            let evictor = {
                let e = Arc::clone(&e);
                thread::spawn(move || {
                    let mut evicted = 0;
                    for _ in 0..2 {
                        if e.try_evict() {
                            evicted += 1;
                        }
                    }
                    evicted
                })
            };
            reader.join().expect("reader");
            let evicted = evictor.join().expect("evictor");
            // Each eviction the reader saw afterwards was reloaded once, no more.
            assert!(e.loads.load(Ordering::SeqCst) <= evicted);
            e.check_accounting();
            let mut t = Trace::default();
            assert_eq!(*e.get(&mut t).expect("final get"), 7);
            e.check_accounting();
        },
        iterations(),
    );
}

#[test]
fn an_eviction_and_a_reload_never_release_each_others_bytes() {
    shuttle::check_random(
        || {
            let e = ModelEntry::new(true, false);
            let threads: Vec<_> = (0..3)
                .map(|i| {
                    let e = Arc::clone(&e);
                    thread::spawn(move || {
                        if i == 1 {
                            let mut t = Trace::default();
                            drop(e.get(&mut t).expect("get"));
                        } else {
                            e.try_evict();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("thread");
            }
            e.check_accounting();
        },
        iterations(),
    );
}

#[test]
fn concurrent_page_ins_load_once_and_share_the_value() {
    shuttle::check_random(
        || {
            let e = ModelEntry::new(false, false);
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    let e = Arc::clone(&e);
                    thread::spawn(move || {
                        let mut t = Trace::default();
                        e.get(&mut t).expect("get")
                    })
                })
                .collect();
            let values: Vec<Arc<u64>> = readers
                .into_iter()
                .map(|r| r.join().expect("reader"))
                .collect();
            assert_eq!(e.loads.load(Ordering::SeqCst), 1, "not single flight");
            for v in &values {
                assert!(Arc::ptr_eq(v, &values[0]));
            }
            e.check_accounting();
        },
        iterations(),
    );
}

#[test]
fn waiters_on_a_failed_page_in_get_its_error() {
    shuttle::check_random(
        || {
            let e = ModelEntry::new(false, true);
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    let e = Arc::clone(&e);
                    thread::spawn(move || {
                        let mut t = Trace::default();
                        let r = e.get(&mut t);
                        (r, t)
                    })
                })
                .collect();
            for r in readers {
                let (r, t) = r.join().expect("reader");
                let err = r.expect_err("a failed load gave a value");
                assert!(err.contains("0123"), "{err}");
                assert!(
                    !(t.waited && t.loaded),
                    "a caller that waited on a failed load loaded again: {t:?}"
                );
            }
            assert!((1..=3).contains(&e.loads.load(Ordering::SeqCst)));
            e.check_accounting();
        },
        iterations(),
    );
}

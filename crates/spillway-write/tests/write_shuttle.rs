//! Model checking, with shuttle, of group commit in the write pipeline: producers that apply
//! their own writes, waiters that lead a round (freeze, store, sync) when the flush role is
//! free, and the words blocked waiters sleep on (`src/watermark.rs`, `src/lead.rs`,
//! `src/role.rs`).
//!
//! **This runs a model, not the pipeline itself.** The pipeline sleeps on futex words through
//! `atomic-wait` and locks with `parking_lot`, which shuttle cannot schedule, so the model
//! below restates the protocol step for step with shuttle's primitives (a word is a counter
//! under a mutex with a condition variable: `wait(seen)` sleeps while the counter is `seen`,
//! `wake_all` notifies every sleeper):
//!
//! - apply: under the writer role, take the next epoch and move `applied`;
//! - freeze: under the writer role, if writes are applied since the last freeze, queue their
//!   range as a batch and record it as `frozen` under the mark lock;
//! - wait(`Durable`, e): under the mark lock, done once `durable >= e`; else note the release
//!   count, drop the lock and try to lead; look again at once if this thread led, or if the
//!   role was released meanwhile; else sleep on the role's word if the role holder found busy
//!   will not carry `e` (`e > frozen`), on the `Durable` word otherwise, reading the word and
//!   counting itself a sleeper under the mark lock;
//! - lead: `try_lock` the flush role; store the queued batches oldest first (each moves
//!   `written` and bumps its word), freeze once, store, then sync (`durable = written`, bump
//!   and wake the `Durable` word); release the role, then, under the mark lock, count the
//!   release and bump the `Written`, `Durable` and role words, and wake them.
//!
//! A change to those steps in the pipeline must be made here too. A lost wake-up shows as a
//! deadlock (every thread asleep), which shuttle reports; the marks' order and the durability
//! of every acknowledged write are asserted. The flush thread is modelled by turns that freeze
//! (as the writer thread does on a size trigger), then store one batch or sync under the role.
//! Not modelled: `Written` waiters, waits that cannot lead (`Lead::Unable`), timed and async
//! waits (they park with a waker), failures and shutdown; `write_sim` (seeded interleavings,
//! timed waits), `write_failure` and `write_shutdown` exercise those on the real code.
//!
//! `SPILLWAY_SHUTTLE_ITERS=n` sets the number of random schedules per test (default 2000).

use std::collections::VecDeque;
use std::sync::Arc;

use shuttle::sync::{Condvar, Mutex, MutexGuard};
use shuttle::thread;

const WRITTEN: usize = 0;
const DURABLE: usize = 1;
const ROLE: usize = 2;

/// A futex word.
#[derive(Default)]
struct Word {
    value: Mutex<u32>,
    changed: Condvar,
}

impl Word {
    fn get(&self) -> u32 {
        *self.value.lock().expect("lock")
    }

    fn bump(&self) {
        *self.value.lock().expect("lock") += 1;
    }

    /// Sleeps while the word is `seen` (returns at once if it moved).
    fn wait(&self, seen: u32) {
        let mut v = self.value.lock().expect("lock");
        while *v == seen {
            v = self.changed.wait(v).expect("wait");
        }
    }

    fn wake_all(&self) {
        self.changed.notify_all();
    }
}

#[derive(Default)]
struct Marks {
    applied: u64,
    written: u64,
    durable: u64,
    frozen: u64,
    released: u64,
    sleepers: [u32; 3],
}

#[derive(Default)]
struct Delta {
    /// The first epoch of the current delta.
    first: u64,
    next: u64,
}

#[derive(Default)]
struct Model {
    marks: Mutex<Marks>,
    words: [Word; 3],
    /// The writer role, with the current delta.
    writer: Mutex<Delta>,
    /// Frozen batches waiting to be stored: their last epochs.
    jobs: Mutex<VecDeque<u64>>,
    /// The flush role.
    flush: Mutex<()>,
    /// Rounds the model's flusher stored and synced, to check that syncs never go backwards.
    syncs: Mutex<Vec<u64>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lead {
    Led,
    Busy,
}

impl Model {
    fn new() -> Arc<Model> {
        let m = Model::default();
        {
            let mut d = m.writer.lock().expect("lock");
            d.first = 1;
            d.next = 1;
        }
        Arc::new(m)
    }

    /// Bumps the words in `which` under the mark lock; wakes them once it is dropped.
    fn bump_and_wake(&self, marks: MutexGuard<'_, Marks>, which: &[usize]) {
        let asleep: Vec<usize> = which
            .iter()
            .copied()
            .filter(|&i| {
                self.words[i].bump();
                marks.sleepers[i] > 0
            })
            .collect();
        drop(marks);
        for i in asleep {
            self.words[i].wake_all();
        }
    }

    /// A producer applies its own write.
    fn apply(&self) -> u64 {
        let mut d = self.writer.lock().expect("lock");
        let epoch = d.next;
        d.next += 1;
        let mut m = self.marks.lock().expect("lock");
        assert_eq!(
            m.applied + 1,
            epoch,
            "epochs are applied in order, without gaps"
        );
        m.applied = epoch;
        epoch
    }

    /// Freezes the current delta if it holds writes; true if it did.
    fn freeze(&self) -> bool {
        let mut d = self.writer.lock().expect("lock");
        if d.next == d.first {
            return false;
        }
        let last = d.next - 1;
        d.first = d.next;
        self.jobs.lock().expect("lock").push_back(last);
        let mut m = self.marks.lock().expect("lock");
        m.frozen = m.frozen.max(last);
        true
    }

    fn store(&self, last: u64) {
        let mut m = self.marks.lock().expect("lock");
        assert!(last > m.written, "batches are stored in order, once");
        m.written = last;
        self.bump_and_wake(m, &[WRITTEN]);
    }

    fn sync(&self) {
        let mut m = self.marks.lock().expect("lock");
        let written = m.written;
        self.syncs.lock().expect("lock").push(written);
        if written > m.durable {
            m.durable = written;
            self.bump_and_wake(m, &[DURABLE]);
        }
    }

    fn lead(&self, epoch: u64) -> Lead {
        let Ok(role) = self.flush.try_lock() else {
            return Lead::Busy;
        };
        let mut froze = false;
        loop {
            if self.marks.lock().expect("lock").durable >= epoch {
                break;
            }
            let next = self.jobs.lock().expect("lock").pop_front();
            if let Some(last) = next {
                self.store(last);
                continue;
            }
            let written = self.marks.lock().expect("lock").written;
            if !froze || written < epoch {
                froze = true;
                if self.freeze() {
                    continue;
                }
            }
            if self.marks.lock().expect("lock").written < epoch {
                // The flush thread froze it first: its batch is queued.
                assert!(
                    !self.jobs.lock().expect("lock").is_empty(),
                    "a leader's own write is applied, so a freeze and a store carry it"
                );
                continue;
            }
            self.sync();
            break;
        }
        drop(role);
        self.release();
        Lead::Led
    }

    /// Counts a release of the flush role and wakes who waits for it.
    fn release(&self) {
        let mut m = self.marks.lock().expect("lock");
        m.released += 1;
        self.bump_and_wake(m, &[WRITTEN, DURABLE, ROLE]);
    }

    /// One turn of the flush thread: the writer thread freezes (a size trigger), then the
    /// flush thread takes the role, stores one batch or syncs what is written, and releases.
    fn background_turn(&self) {
        self.freeze();
        let role = self.flush.lock().expect("lock");
        let next = self.jobs.lock().expect("lock").pop_front();
        match next {
            Some(last) => self.store(last),
            None => self.sync(),
        }
        drop(role);
        self.release();
    }

    /// Blocks until `epoch` is durable.
    fn wait_durable(&self, epoch: u64) {
        let mut m = self.marks.lock().expect("lock");
        loop {
            if m.durable >= epoch {
                return;
            }
            let seen = m.released;
            drop(m);
            let lead = self.lead(epoch);
            m = self.marks.lock().expect("lock");
            if lead == Lead::Led || m.released != seen {
                continue;
            }
            let i = if epoch > m.frozen { ROLE } else { DURABLE };
            let seen_word = self.words[i].get();
            m.sleepers[i] += 1;
            drop(m);
            self.words[i].wait(seen_word);
            m = self.marks.lock().expect("lock");
            m.sleepers[i] -= 1;
        }
    }
}

fn iters() -> usize {
    std::env::var("SPILLWAY_SHUTTLE_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000)
}

/// Runs `producers` threads of `writes` durable writes each (and `background` turns of the
/// flush thread), and checks the end state.
fn group_commit(producers: usize, writes: usize, background: usize) {
    let model = Model::new();
    let flush_thread = {
        let model = Arc::clone(&model);
        thread::spawn(move || {
            for _ in 0..background {
                model.background_turn();
            }
        })
    };
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let model = Arc::clone(&model);
            thread::spawn(move || {
                for _ in 0..writes {
                    let epoch = model.apply();
                    model.wait_durable(epoch);
                    let m = model.marks.lock().expect("lock");
                    assert!(m.durable >= epoch);
                    assert!(m.durable <= m.written && m.written <= m.applied);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("producer");
    }
    flush_thread.join().expect("flush thread");
    let total = (producers * writes) as u64;
    let m = model.marks.lock().expect("lock");
    assert_eq!((m.applied, m.written, m.durable), (total, total, total));
    assert_eq!(m.sleepers, [0; 3], "every sleeper woke");
    let syncs = model.syncs.lock().expect("lock");
    assert!(syncs.windows(2).all(|w| w[0] <= w[1]), "syncs: {syncs:?}");
    assert!(
        syncs.len() <= producers * writes + background,
        "at most one sync per write, and per turn of the flush thread"
    );
}

/// Three producers racing to lead: nobody sleeps through the round that covers it, and nobody
/// sleeps forever when the role is free.
#[test]
fn every_durable_waiter_returns_and_every_write_is_durable() {
    shuttle::check_random(|| group_commit(3, 2, 0), iters());
}

/// The flush thread holds the role now and then (for one store or sync, after a freeze of its
/// own): waiters asleep on the role's word wake at its releases too.
#[test]
fn waiters_share_the_role_with_the_flush_thread() {
    shuttle::check_random(|| group_commit(3, 1, 2), iters());
}

/// More waiters than rounds: most writes ride on another thread's sync.
#[test]
fn many_waiters_share_the_syncs() {
    shuttle::check_pct(|| group_commit(4, 1, 0), iters(), 3);
}

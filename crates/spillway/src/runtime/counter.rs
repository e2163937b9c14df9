//! [`ThreadCounter`]: a counter cheap enough to bump on every resident read.
//!
//! Each counter has a cache line per thread index ([`STRIPES`] of them), and a thread counts
//! in the line of its index with a plain load and store: no locked instruction, no line shared
//! with another thread. Reading sums the lines. Exact: a read sees every increment that
//! happened before it.
//!
//! A thread's index is process-wide, not per counter, so a counter needs no registration: the
//! hot path is one thread-local load (a constant-initialised `Cell`, which has no lazy state
//! to check) and the store. Indices are claimed on a thread's first increment and given back
//! when the thread ends, so a program that starts and ends threads keeps reusing the same few.
//!
//! Invariants:
//! - At most one live thread holds an index; only that thread writes its line, in every
//!   counter. An index is handed from an ending thread to a new one through [`FREE`]'s lock,
//!   so the new holder's first load sees the old holder's last store.
//! - A thread without an index (more than [`STRIPES`] threads at once, or a thread whose
//!   thread-locals are being destroyed) counts in [`ThreadCounter::shared`] with an atomic add.
//!
//! Under the model checker (`--cfg spillway_shuttle`) every increment goes to `shared`: the
//! count is statistics, not part of any protocol the checker explores, and the thread-locals
//! would be touched by their destructors after a failed execution has ended, which the
//! checker's thread-locals do not allow.

#[cfg(not(spillway_shuttle))]
use std::cell::Cell;
use std::sync::atomic::AtomicU64;
#[cfg(not(spillway_shuttle))]
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;

#[cfg(not(spillway_shuttle))]
use parking_lot::Mutex;

/// Thread indices, and so cache lines per counter: 4 KiB a counter.
pub(crate) const STRIPES: usize = 64;

/// No index: the thread has not counted yet, or has ended.
#[cfg(not(spillway_shuttle))]
const NONE: usize = usize::MAX;

/// Indices given back by ended threads.
#[cfg(not(spillway_shuttle))]
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// The next index never claimed.
#[cfg(not(spillway_shuttle))]
static NEXT: AtomicUsize = AtomicUsize::new(0);

#[cfg(not(spillway_shuttle))]
std::thread_local! {
    /// This thread's index, or [`NONE`].
    static INDEX: Cell<usize> = const { Cell::new(NONE) };
    /// Gives the index back when the thread ends.
    static CLAIM: Claim = const { Claim(Cell::new(NONE)) };
}

/// Holds this thread's index; dropped with the thread's other thread-locals.
#[cfg(not(spillway_shuttle))]
struct Claim(Cell<usize>);

#[cfg(not(spillway_shuttle))]
impl Drop for Claim {
    fn drop(&mut self) {
        let i = self.0.replace(NONE);
        if i != NONE {
            // Counted through `shared` from here on, then the index goes to the next thread.
            let _ = INDEX.try_with(|x| x.set(NONE));
            FREE.lock().push(i);
        }
    }
}

/// This thread's index, claiming one if it has none; `None` if every index is held or the
/// thread is ending.
#[cfg(not(spillway_shuttle))]
fn claim() -> Option<usize> {
    CLAIM
        .try_with(|claim| {
            if claim.0.get() == NONE {
                let i = FREE.lock().pop().or_else(|| {
                    NEXT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < STRIPES).then_some(n + 1)
                    })
                    .ok()
                })?;
                claim.0.set(i);
                let _ = INDEX.try_with(|x| x.set(i));
            }
            Some(claim.0.get())
        })
        .ok()
        .flatten()
}

/// A cache line of its own for one thread's count.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe(AtomicU64);

/// A counter bumped on the hot path by many threads (see the module docs).
///
/// The lines are inline, not behind a pointer: a bump is one load fewer on the path from its
/// owner (4 KiB in the pool's counters, which hold one).
#[derive(Debug)]
pub(crate) struct ThreadCounter {
    stripes: [Stripe; STRIPES],
    /// Increments from threads without an index.
    shared: AtomicU64,
}

impl Default for ThreadCounter {
    fn default() -> ThreadCounter {
        ThreadCounter {
            stripes: std::array::from_fn(|_| Stripe::default()),
            shared: AtomicU64::new(0),
        }
    }
}

impl ThreadCounter {
    #[cfg(not(spillway_shuttle))]
    #[inline]
    pub fn incr(&self) {
        match self.stripes.get(INDEX.with(Cell::get)) {
            Some(s) => Self::bump(s),
            None => self.incr_slow(),
        }
    }

    /// See the module docs: under the model checker, every increment is shared.
    #[cfg(spillway_shuttle)]
    pub fn incr(&self) {
        self.shared.fetch_add(1, Ordering::Relaxed);
    }

    /// Only the thread holding the stripe's index writes it. Wraps, as the shared count does.
    #[cfg(not(spillway_shuttle))]
    #[inline]
    fn bump(s: &Stripe) {
        s.0.store(
            s.0.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    #[cfg(not(spillway_shuttle))]
    #[cold]
    fn incr_slow(&self) {
        match claim().and_then(|i| self.stripes.get(i)) {
            Some(s) => Self::bump(s),
            None => {
                self.shared.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .fold(self.shared.load(Ordering::Relaxed), |sum, s| {
                sum.wrapping_add(s.0.load(Ordering::Relaxed))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_increment_of_many_threads_and_of_ended_ones() {
        let c = ThreadCounter::default();
        // More threads than stripes, in waves, so that indices are reused and some threads
        // count through the shared cell.
        for wave in 0..3u64 {
            std::thread::scope(|s| {
                for _ in 0..STRIPES + 8 {
                    s.spawn(|| {
                        for _ in 0..1000 {
                            c.incr();
                        }
                    });
                }
            });
            assert_eq!(c.get(), (wave + 1) * (STRIPES as u64 + 8) * 1000);
        }
        c.incr();
        assert_eq!(c.get(), 3 * (STRIPES as u64 + 8) * 1000 + 1);
    }

    #[test]
    fn two_counters_on_one_thread_count_apart() {
        let (a, b) = (ThreadCounter::default(), ThreadCounter::default());
        for _ in 0..5 {
            a.incr();
        }
        b.incr();
        assert_eq!((a.get(), b.get()), (5, 1));
    }
}

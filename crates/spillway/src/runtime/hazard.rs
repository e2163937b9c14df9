//! Hazard slots: how a resident [`get`](super::Paged::get) takes a count of its value without
//! the slot's lock, and how an eviction knows that no such read is under way before it takes
//! the value.
//!
//! A read without the lock costs one atomic read-modify-write (the `Arc`'s increment), where
//! under the lock it costs two more (the lock and its release): at 3 to 4 ns each on the
//! machines measured, that was most of a resident `get`.
//!
//! # The protocol
//!
//! Every thread that reads owns one slot of a fixed table ([`SLOTS`] of them; a thread beyond
//! that takes the lock, as every read did before). An entry says its slot may be read without
//! the lock with its *settled* flag (see `entry`).
//!
//! - **Reader** ([`protect`]): stores the entry's id in its slot (a plain store), then a
//!   *light* fence, then reads the settled flag (acquire). Only if it is set does it read the
//!   slot, without the lock, and count the value (`Arc::clone`). Then it clears its slot
//!   (release).
//! - **Writer** (an eviction): clears the settled flag of its victims, then one *heavy* fence
//!   for the whole batch, then reads every slot (acquire; both [`barrier`]). It takes the
//!   value only of a victim that no slot names, and only if the value's count is then 1. A
//!   victim that a slot names stays, and is settled again.
//!
//! Either the reader's store of its id is seen by the writer's read of the slots, or the
//! writer's clearing of the flag is seen by the reader's read of it: the two fences together
//! are a full barrier on each side (Dekker's pattern). So a reader that counted the value has
//! either been seen (the victim stays), or had finished and cleared its slot before the
//! writer read it, with its count visible to the writer's check of the count through the
//! slot's release and acquire. A reader that comes later sees the flag cleared and takes the
//! lock, which the eviction holds.
//!
//! # The fences
//!
//! On Linux the heavy fence is `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which runs a
//! full barrier on every CPU running a thread of the process, and the light fence costs
//! nothing at run time (a compiler fence). Elsewhere, or where the kernel refuses the
//! registration, both are full fences: correct, and a read costs one fence more. The choice is
//! made once, by [`init`], before the first pool is built, and a thread reads it when it takes
//! its slot (it is kept in the same thread-local word, so a read finds both with one load): a
//! thread that took its slot before the registration takes the full fence, which is correct
//! with either writer. A child forked from the process is not registered: its first barrier
//! fails, registers it and tries again. Should a barrier still fail, the eviction takes every
//! reader as present and evicts nothing.
//!
//! Under the model checker (`--cfg spillway_shuttle`) both fences are its sequentially
//! consistent fence, at which it may switch threads: it explores the interleavings of readers
//! and evictions, not the weak memory of the light fence, which is the kernel's contract.
//!
//! # Invariants
//!
//! - A slot holds 0 or the id of one entry that its thread is reading; a thread's slot is
//!   cleared before the thread lets go of it (when it exits, by a thread-local destructor,
//!   after which its reads take the lock). A thread keeps its slot for its life; one that
//!   found the table full reads under the lock for its life. (In a child
//!   forked while another thread read, that thread's slot stays taken, naming what it read:
//!   that one value is never evicted in the child.)
//! - An entry's value is written (taken by an eviction, put by a page-in) only while its
//!   settled flag is clear; the flag is cleared only by the one eviction that holds the entry
//!   as its victim, and an eviction takes the value only after a [`barrier`] that followed the
//!   clearing and a look at the slots that found none naming it.

use std::cell::Cell;
// The standard library's atomics even under the model checker: the table is a static of the
// process, which outlives each of the checker's executions, and a thread's slot is given back
// by a thread-local destructor that may run while the checker tears a failed execution down,
// when its atomics can no longer be touched. The checker still switches threads between a
// reader's steps: at its fence (the light fence is a full one there), at the entry's flag,
// and inside `sync::peek`.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Slots in the table: threads reading at once without the lock. A thread beyond these reads
/// under the lock.
pub(crate) const SLOTS: usize = 128;

/// One thread's slot, alone on its cache lines (two, as the adjacent-line prefetcher pairs
/// them), so that readers on different threads do not share a line.
#[repr(align(128))]
struct Slot {
    /// The id of the entry being read, or 0.
    hazard: AtomicUsize,
    /// Owned by a thread.
    taken: AtomicBool,
}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        hazard: AtomicUsize::new(0),
        taken: AtomicBool::new(false),
    }
}; SLOTS];

/// Slots ever taken: a writer reads this many.
static USED: AtomicUsize = AtomicUsize::new(0);

/// A claim's word before the thread's first read.
const UNCLAIMED: usize = 0;
/// A claim's word when the table was full at the thread's first read, or the thread is ending.
const NO_SLOT: usize = 2;
/// Set in a claim's word: the light fence is a full one. Slots are aligned to 128 bytes, so
/// the low bits of their address are free.
const FULL_FENCE: usize = 1;

crate::sync::thread_local! {
    /// This thread's claim on a slot, as one word, so that a read finds it with one load: the
    /// slot's address, with [`FULL_FENCE`] set if this thread's light fence must be a full one
    /// (chosen when the slot was taken, after [`init`]); or [`UNCLAIMED`], or [`NO_SLOT`]. A
    /// constant-initialised `Cell` without a destructor: the read path loads it with no lazy
    /// state to check first.
    static CLAIM: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// Gives the slot back when the thread ends. Touched only when the slot is taken, which
    /// registers its destructor.
    static RELEASE: Release = const { Release(Cell::new(UNCLAIMED)) };
}

/// This thread's slot and whether its light fence is a full one; the slot is taken on the
/// thread's first call.
#[inline]
fn slot() -> Option<(&'static Slot, bool)> {
    match CLAIM.try_with(Cell::get).unwrap_or(NO_SLOT) {
        UNCLAIMED => decode(claim()),
        word => decode(word),
    }
}

/// The slot a claim's word names, if it names one, and its fence.
#[inline]
fn decode(word: usize) -> Option<(&'static Slot, bool)> {
    if word == UNCLAIMED || word == NO_SLOT {
        return None;
    }
    let slot = (word & !FULL_FENCE) as *const Slot;
    // SAFETY: the word holds the address of an element of `TABLE`, a static.
    #[expect(unsafe_code, reason = "a slot of the static table, by its address")]
    let slot = unsafe { &*slot };
    Some((slot, word & FULL_FENCE != 0))
}

/// Takes a free slot for this thread, if there is one and the thread can still be told to
/// give it back (its destructor registered); the new claim's word.
#[cold]
fn claim() -> usize {
    let word = RELEASE
        .try_with(|release| {
            let found = (0..SLOTS).find(|&i| {
                TABLE[i]
                    .taken
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            });
            let word = match found {
                Some(i) => {
                    USED.fetch_max(i + 1, Ordering::AcqRel);
                    let full = if fences::expedited() { 0 } else { FULL_FENCE };
                    std::ptr::from_ref(&TABLE[i]).addr() | full
                }
                None => NO_SLOT,
            };
            release.0.set(word);
            word
        })
        // The thread is ending: a slot taken now would never be given back.
        .unwrap_or(NO_SLOT);
    let _ = CLAIM.try_with(|c| c.set(word));
    word
}

/// Gives this thread's slot back when it ends (see [`RELEASE`]): holds the same word as
/// [`CLAIM`], so that its destructor needs no other thread-local.
struct Release(Cell<usize>);

impl Drop for Release {
    fn drop(&mut self) {
        // Reads from here on (by other thread-locals' destructors) take the lock. A
        // thread-local without a destructor can be reached until the thread's end; the model
        // checker's cannot be once an execution is torn down, and its threads read nothing
        // from destructors.
        #[cfg(not(spillway_shuttle))]
        CLAIM.with(|c| c.set(NO_SLOT));
        if let Some((slot, _)) = decode(self.0.replace(NO_SLOT)) {
            slot.hazard.store(0, Ordering::Release);
            slot.taken.store(false, Ordering::Release);
        }
    }
}

/// Runs `read` with entry `id` named in this thread's slot, and clears the slot after. `None`
/// if this thread has no slot (the table is full, or the thread is exiting): the caller takes
/// the lock instead. `read` must check the entry's settled flag (acquire) before it reads the
/// entry's value, and read nothing if it is clear.
#[inline]
pub(crate) fn protect<R>(id: usize, read: impl FnOnce() -> Option<R>) -> Option<R> {
    let (slot, full_fence) = slot()?;
    debug_assert_eq!(
        slot.hazard.load(Ordering::Relaxed),
        0,
        "a read inside a read"
    );
    // Release: a writer that reads this id, and not the 0 this thread stored after its last
    // read, still sees everything that read did (its count of the value).
    slot.hazard.store(id, Ordering::Release);
    if full_fence {
        fences::full();
    } else {
        fences::light();
    }
    let out = read();
    slot.hazard.store(0, Ordering::Release);
    out
}

/// The entries that readers may be counting: those named in the slots after a barrier, or all
/// of them if the barrier failed.
pub(crate) struct Held {
    /// Sorted.
    ids: Vec<usize>,
    all: bool,
}

impl Held {
    pub fn contains(&self, id: usize) -> bool {
        self.all || self.ids.binary_search(&id).is_ok()
    }
}

/// The heavy fence, then the entries that readers name (see the module docs): after it, every
/// reader either has its slot's store seen here, or sees every store the caller made before.
pub(crate) fn barrier() -> Held {
    if !fences::heavy() {
        return Held {
            ids: Vec::new(),
            all: true,
        };
    }
    let used = USED.load(Ordering::Acquire);
    let mut ids: Vec<usize> = TABLE[..used]
        .iter()
        .map(|s| s.hazard.load(Ordering::Acquire))
        .filter(|&id| id != 0)
        .collect();
    ids.sort_unstable();
    Held { ids, all: false }
}

/// Chooses the fences, once (see the module docs). Called before a pool is built.
pub(crate) fn init() {
    fences::init();
}

#[cfg(all(target_os = "linux", not(spillway_shuttle)))]
mod fences {
    use std::sync::Once;
    use std::sync::atomic::{AtomicBool, Ordering, compiler_fence, fence};

    /// Set once the process is registered for expedited private barriers.
    static EXPEDITED: AtomicBool = AtomicBool::new(false);
    static INIT: Once = Once::new();

    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn membarrier(cmd: libc::c_int) -> bool {
        // SAFETY: the membarrier system call takes a command and two integers, and touches no
        // memory of ours.
        #[expect(unsafe_code, reason = "a system call")]
        let r = unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_uint,
                0 as libc::c_int,
            )
        };
        r == 0
    }

    pub fn init() {
        INIT.call_once(|| {
            if membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) {
                EXPEDITED.store(true, Ordering::Release);
            }
        });
    }

    /// True once the process is registered: a reader's light fence may be a compiler fence.
    pub fn expedited() -> bool {
        EXPEDITED.load(Ordering::Acquire)
    }

    /// The light fence of a registered process: the heavy fence does the rest.
    #[inline]
    pub fn light() {
        compiler_fence(Ordering::SeqCst);
    }

    #[inline]
    pub fn full() {
        fence(Ordering::SeqCst);
    }

    /// False if the barrier failed although the process is registered, so that readers
    /// with a light fence may not be seen.
    pub fn heavy() -> bool {
        if EXPEDITED.load(Ordering::Acquire) {
            // A child forked from the registered process is not registered: registering
            // again makes the command work there too.
            membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
                || (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED)
                    && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED))
        } else {
            // No reader takes the light fence alone.
            fence(Ordering::SeqCst);
            true
        }
    }
}

#[cfg(not(all(target_os = "linux", not(spillway_shuttle))))]
mod fences {
    #[cfg(not(spillway_shuttle))]
    use std::sync::atomic::fence;

    #[cfg(spillway_shuttle)]
    use shuttle::sync::atomic::fence;

    use std::sync::atomic::Ordering;

    pub fn init() {}

    pub fn expedited() -> bool {
        false
    }

    #[inline]
    pub fn light() {
        fence(Ordering::SeqCst);
    }

    #[inline]
    pub fn full() {
        fence(Ordering::SeqCst);
    }

    pub fn heavy() -> bool {
        fence(Ordering::SeqCst);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_is_seen_while_it_reads_and_not_after() {
        init();
        let id = 0x1000_usize;
        let seen = protect(id, || Some(barrier().contains(id)));
        assert_eq!(seen, Some(true));
        assert!(!barrier().contains(id));
    }

    #[test]
    fn a_thread_gives_its_slot_back_when_it_ends() {
        init();
        // More threads, one after another, than there are slots: each finds one.
        for _ in 0..SLOTS + 8 {
            let got = std::thread::spawn(|| protect(1, || Some(())))
                .join()
                .expect("a thread");
            assert_eq!(got, Some(()));
        }
    }

    #[test]
    fn a_read_from_a_destructor_after_the_slot_went_back_takes_the_lock() {
        use std::sync::Mutex;
        static SEEN: Mutex<Vec<Option<()>>> = Mutex::new(Vec::new());
        struct Late;
        impl Drop for Late {
            fn drop(&mut self) {
                SEEN.lock().expect("lock").push(protect(1, || Some(())));
            }
        }
        std::thread_local! {
            static LATE: Late = const { Late };
        }
        init();
        std::thread::spawn(|| {
            // Registered before the slot is taken, so destroyed after it is given back.
            LATE.with(|_| ());
            assert_eq!(protect(1, || Some(())), Some(()));
        })
        .join()
        .expect("a thread");
        assert_eq!(*SEEN.lock().expect("lock"), vec![None]);
    }
}

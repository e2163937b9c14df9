//! Giving back to the system the memory that paged-out values leave free in the process.
//!
//! A value paged out is freed through the global allocator, which keeps the memory for later
//! allocations: the resident set shrinks, the process does not. glibc's allocator gives back
//! only the top of its heaps on its own, and whole free pages elsewhere only when asked
//! (`malloc_trim`), so a pool that evicted many small values left their pages in the process
//! even once nothing shared those pages with anything live (entries live apart from values,
//! see `memory::cells`).
//!
//! [`Released`] counts the bytes page-outs free. The background page-out asks the allocator to
//! give back its free pages once they add up to an eighth of the budget: often enough that the
//! process follows its budget, rarely enough that the pass over the allocator's free lists
//! (which grows with the heap) stays a small share of the page-outs that paid for it. Values
//! paged in on one thread and paged out after being made on another live in different arenas
//! of glibc's allocator, so what one thread frees is not what the next allocation reuses: the
//! process grows by what was freed since the last pass. A pool of 20 MB over a million reads
//! (W4's child: values loaded on one thread, read on another) peaked 5 MiB higher at half the
//! budget than at a quarter, and at 62.2–62.6 MiB at an eighth against 63.7–65.6 MiB at a
//! quarter (three alternating runs; a sixteenth gained nothing more); the passes take about
//! 0.3 % of its time. An explicit shrink (`Pool::shrink_to`) asks once it freed a mebibyte:
//! its caller asked for memory back.
//! Elsewhere than glibc there is nothing to ask, and this does nothing.

use std::sync::atomic::{AtomicU64, Ordering};

/// The least that is worth giving back in one pass.
const LEAST: u64 = 1 << 20;

/// Bytes freed since the allocator last gave its free pages back.
#[derive(Debug, Default)]
pub(crate) struct Released {
    freed: AtomicU64,
}

impl Released {
    /// `bytes` of values were paged out and dropped.
    pub fn freed(&self, bytes: u64) {
        self.freed.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Asks the allocator to give back its free pages if at least an eighth of `budget` (and at
    /// least [`LEAST`]) was freed since it last did; true if it asked.
    pub fn release_if_due(&self, budget: u64) -> bool {
        let due = (budget / 8).max(LEAST);
        let freed = self.freed.load(Ordering::Relaxed);
        if freed < due
            || self
                .freed
                .compare_exchange(freed, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        give_back();
        true
    }
}

/// Asks the allocator to give back the free pages of its heaps.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_back() {
    // SAFETY: `malloc_trim` takes a number and only rearranges the allocator's own free memory,
    // under its own locks.
    #[expect(
        unsafe_code,
        reason = "asking glibc's allocator to give back free pages"
    )]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_once_an_eighth_of_the_budget_was_freed() {
        let r = Released::default();
        r.freed(100 << 20);
        assert!(!r.release_if_due(1 << 30));
        r.freed(50 << 20);
        assert!(r.release_if_due(1 << 30));
        assert!(!r.release_if_due(1 << 30), "the count starts again");
        r.freed(LEAST);
        assert!(
            r.release_if_due(0),
            "a small budget still waits for the least"
        );
    }
}

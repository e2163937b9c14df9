//! The process's table of pools: how an entry names its pool in two bytes rather than in an
//! eight-byte `Arc`.
//!
//! A pool claims the lowest free number when it is built ([`PoolNumber::claim`]), publishes
//! its shared part under it once that part is in its `Arc` ([`PoolNumber::publish`]), and
//! gives the number back when the shared part is dropped (the number is one of its fields).
//! An entry's `PoolHold` (in `shared`) reads the table: the table holds untyped addresses, so
//! that it comes before the pool's parts.
//!
//! Invariants:
//! - A number is held by at most one pool; the table's slot for it points to that pool's
//!   shared part from `publish` until the part is dropped, and is null otherwise.
//! - An entry holds one count of its pool's `Arc` for as long as it lives (taken in its
//!   making, given back at the end of its `drop`), as an `Arc` field did: the pool's shared
//!   part, and so its slot in the table, outlives every entry that names it, so the address
//!   [`published`] under a live entry's number is never null or dangling.
//!
//! The table is a static array of 2^16 pointers (512 KiB of zeroed memory, of which only the
//! pages of the numbers in use are ever touched): reading it is one load, with no lock.

use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::error::{Error, Result};
use crate::memory::Numbers;

/// Pools one process can have at once.
const CAPACITY: usize = 1 << 16;

/// Each pool's shared part (a `PoolShared`, kept untyped so that this table comes before it),
/// by number.
static TABLE: [AtomicPtr<()>; CAPACITY] = [const { AtomicPtr::new(null_mut()) }; CAPACITY];

/// Claiming and giving back numbers is rare (building and dropping pools): one plain lock,
/// outside the model checker's view.
static NUMBERS: std::sync::Mutex<Numbers> = std::sync::Mutex::new(Numbers::new());

fn numbers() -> std::sync::MutexGuard<'static, Numbers> {
    NUMBERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A pool's number, held by its shared part; given back when it is dropped.
#[derive(Debug)]
pub(crate) struct PoolNumber(u16);

impl PoolNumber {
    /// A free number, or an error if every number is held.
    pub fn claim() -> Result<PoolNumber> {
        numbers().take(CAPACITY).map(|n| PoolNumber(n as u16)).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{CAPACITY} pools are alive in this process, the most it can hold (a pool lives \
                 while any of its handles does): drop pools, or their handles, before building \
                 more"
            ))
        })
    }

    /// The number, for entries to keep.
    pub fn get(&self) -> u16 {
        self.0
    }

    /// Publishes `shared`, the address of the pool's shared part in its `Arc`, under the
    /// pool's number.
    pub fn publish(&self, shared: *const ()) {
        TABLE[usize::from(self.0)].store(shared.cast_mut(), Ordering::Release);
    }
}

impl Drop for PoolNumber {
    fn drop(&mut self) {
        TABLE[usize::from(self.0)].store(null_mut(), Ordering::Release);
        numbers().give_back(u32::from(self.0));
    }
}

/// The address published under `number`: a pool's shared part, or null. Inlined: it is on
/// every resident read's path.
#[inline]
pub(crate) fn published(number: u16) -> *const () {
    TABLE[usize::from(number)].load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_held_once_and_its_slot_cleared_when_given_back() {
        let held: Vec<PoolNumber> = (0..64).map(|_| PoolNumber::claim().unwrap()).collect();
        let mut seen: Vec<u16> = held.iter().map(PoolNumber::get).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 64, "no number is handed out twice");
        let n = usize::from(held[0].get());
        let marker = std::ptr::NonNull::<u64>::dangling().as_ptr().cast::<()>();
        held[0].publish(marker);
        assert_eq!(published(held[0].get()), marker.cast_const());
        drop(held);
        // Another test's pool may have taken the number since, and published itself under it:
        // what must not be there is this test's marker.
        assert_ne!(
            TABLE[n].load(Ordering::Relaxed).cast_const(),
            marker.cast_const()
        );
    }
}

//! Page-ins in progress: what the callers waiting for one share, kept in a pool-wide table
//! keyed by entry id rather than in every entry.
//!
//! Only a `Loading` entry has a [`Load`]: the thread that moves the entry's slot from `Evicted`
//! to `Loading` [`start`](Loads::start)s it, under the slot's write lock, and the end of the
//! load [`end`](Loads::end)s it under that same lock as it moves the slot on. So a caller that
//! sees `Loading` and [`get`](Loads::get)s the load while still holding the slot's lock has the
//! load it saw, and is told of exactly that load's end (see `entry`). An idle entry carries no
//! waiting state at all: a paged-out handle costs no mutex, no condition variable and no waker
//! list.
//!
//! Lock order: an entry's slot lock → a shard of this table; a load's wait lock → the entry's
//! slot lock (the end of a load, see `entry`).

use std::collections::HashMap;
use std::sync::Arc;
use std::task::Waker;

use crate::sync::{Condvar, Mutex};

use super::erased::EntryId;
use crate::error::{Error, Result};
use crate::memory::shrink_map;

const SHARDS: usize = 16;

/// One page-in in progress, shared by the loader and its waiters.
#[derive(Default)]
pub(crate) struct Load {
    /// Its outcome, and who waits for it.
    pub wait: Mutex<LoadWait>,
    /// Blocking waiters sleep here until `wait.done`.
    pub cv: Condvar,
}

/// What callers waiting for a page-in share, under its wait lock.
#[derive(Default)]
pub(crate) struct LoadWait {
    /// Async callers to wake when the load ends.
    pub wakers: Vec<Waker>,
    /// The load has ended (the entry's slot has moved on).
    pub done: bool,
    /// Its error, if it failed.
    pub failure: Option<Arc<Error>>,
}

impl LoadWait {
    /// `None` while the load runs, `Some(Ok)` once it succeeded (read the slot), `Some(Err)` if
    /// it failed.
    pub fn outcome(&self) -> Option<Result<()>> {
        if !self.done {
            return None;
        }
        Some(match &self.failure {
            Some(e) => Err(duplicate(e)),
            None => Ok(()),
        })
    }
}

/// The error for a caller that waited on a load that failed with `e`.
pub(crate) fn duplicate(e: &Arc<Error>) -> Error {
    Error::Shared(Arc::clone(e))
}

/// A pool's loads in progress, by entry id.
pub(crate) struct Loads {
    shards: Vec<Mutex<HashMap<EntryId, Arc<Load>>>>,
}

impl Loads {
    pub fn new() -> Loads {
        Loads {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, id: EntryId) -> &Mutex<HashMap<EntryId, Arc<Load>>> {
        // Ids are addresses: their low bits are the allocation's alignment.
        &self.shards[((id >> 4) % SHARDS as u64) as usize]
    }

    /// A load of entry `id` starts (its slot just became `Loading`, under its write lock).
    pub fn start(&self, id: EntryId) -> Arc<Load> {
        let load = Arc::new(Load::default());
        self.shard(id).lock().insert(id, Arc::clone(&load));
        load
    }

    /// Bytes of memory the table takes (an estimate; loads in progress are few).
    pub fn memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| crate::memory::map_bytes(&s.lock()))
            .sum()
    }

    /// The load of entry `id` in progress: there is one while its slot is `Loading`.
    pub fn get(&self, id: EntryId) -> Option<Arc<Load>> {
        self.shard(id).lock().get(&id).cloned()
    }

    /// The load of entry `id` ends (its slot leaves `Loading`, under its write lock).
    pub fn end(&self, id: EntryId) {
        let mut shard = self.shard(id).lock();
        let gone = shard.remove(&id);
        shrink_map(&mut shard);
        drop(shard);
        drop(gone);
    }

    /// Loads in progress.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_is_in_the_table_from_its_start_to_its_end() {
        let loads = Loads::new();
        assert!(loads.get(7).is_none());
        let load = loads.start(7);
        let other = loads.start(23);
        assert!(Arc::ptr_eq(&loads.get(7).unwrap(), &load));
        assert!(Arc::ptr_eq(&loads.get(23).unwrap(), &other));
        assert_eq!(loads.len(), 2);
        loads.end(7);
        assert!(loads.get(7).is_none());
        assert_eq!(loads.len(), 1);
        // A second load of the same entry is a new one, with its own outcome.
        let again = loads.start(7);
        assert!(!Arc::ptr_eq(&again, &load));
        assert!(again.wait.lock().outcome().is_none());
        load.wait.lock().done = true;
        assert!(matches!(load.wait.lock().outcome(), Some(Ok(()))));
        loads.end(7);
        loads.end(23);
        assert_eq!(loads.len(), 0);
    }
}

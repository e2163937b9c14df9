//! The registry: a pool's live entries by key, so that two handles to one key share one value
//! in memory, and the keys that live handles keep from garbage collection.
//!
//! Invariants:
//! - The registry maps each key to one live entry (the one `Pool::load` and page-in hand out,
//!   through [`find_or_add`](Registry::find_or_add)) and counts *every* live entry stored
//!   under that key: a second copy inserted with equal content is counted too, so the key stays
//!   live for collection until the last of them is dropped. A record goes when its last entry
//!   does: every key in the registry is live.
//! - An entry is counted at most once (its `registered` flag), and forgotten under its key only
//!   if it was counted.
//! - No `Arc` of an entry is dropped while a shard lock is held (dropping the last one takes
//!   that lock, through [`forget`](Registry::forget)).
//!
//! The registry also numbers its pool's entries and the pool itself: entry ids are unique only
//! within a pool, the pool id tells two pools' entries apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::erased::{EntryId, ErasedEntry};
use crate::key::{ContentKey, KeyMap};

const SHARDS: usize = 16;

/// The registry's record for one key: every live entry stored under it, usually one (more if
/// equal values were inserted separately). `load` and page-in hand out the first one of the
/// right type.
type Registered = Vec<(EntryId, Weak<dyn ErasedEntry>)>;

/// Identifies a pool among the pools of a process.
pub(crate) type PoolId = u64;

static NEXT_POOL: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Registry {
    pool: PoolId,
    shards: Vec<Mutex<KeyMap<Registered>>>,
    next_id: AtomicU64,
    /// Stored objects whose last handle was dropped since the last collection.
    garbage: AtomicU64,
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            pool: NEXT_POOL.fetch_add(1, Ordering::Relaxed),
            shards: (0..SHARDS).map(|_| Mutex::new(KeyMap::default())).collect(),
            next_id: AtomicU64::new(1),
            garbage: AtomicU64::new(0),
        }
    }

    /// The pool whose entries these are.
    pub fn pool(&self) -> PoolId {
        self.pool
    }

    /// An id for a new entry.
    pub fn next_id(&self) -> EntryId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The live entry of type `E` for `key`, or, if there is none, a new one from `make`
    /// (called under the shard lock), counted like any other; true if it is new.
    pub fn find_or_add<E: ErasedEntry + 'static>(
        &self,
        key: ContentKey,
        make: impl FnOnce() -> E,
    ) -> (Arc<E>, bool) {
        // Declared before the lock guard so that it is dropped after the guard.
        let mut existing: Vec<Arc<dyn ErasedEntry>> = Vec::new();
        let mut shard = self.shards[shard_of(&key)].lock();
        let r = shard.entry(key).or_default();
        for (_, w) in r.iter() {
            let Some(e) = w.upgrade() else { continue };
            // On a type mismatch the `Err` drops a clone: `existing` keeps the entry alive.
            existing.push(Arc::clone(&e));
            if let Ok(typed) = e.as_any().downcast::<E>() {
                return (typed, false);
            }
        }
        // No live entry of this type: a new one, counted like any other.
        let entry = Arc::new(make());
        entry.mark_registered();
        r.push((entry.id(), Arc::downgrade(&entry) as Weak<dyn ErasedEntry>));
        (entry, true)
    }

    /// Counts `entry` as a live entry of `key`, once; it becomes the entry handed out for the
    /// key unless a live one is there already.
    pub fn register(&self, entry: &Arc<dyn ErasedEntry>, key: ContentKey) {
        if !entry.mark_registered() {
            return;
        }
        let mut shard = self.shards[shard_of(&key)].lock();
        shard
            .entry(key)
            .or_default()
            .push((entry.id(), Arc::downgrade(entry)));
    }

    /// Entry `id`, counted under `key`, is gone.
    pub fn forget(&self, id: EntryId, key: ContentKey) {
        let mut shard = self.shards[shard_of(&key)].lock();
        if let Some(r) = shard.get_mut(&key) {
            r.retain(|(i, _)| *i != id);
            if r.is_empty() {
                shard.remove(&key);
                self.garbage.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Keys of the objects that have live handles.
    pub fn live_keys(&self) -> Vec<ContentKey> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock();
            // Records go when their last live entry does: every key here is live.
            out.extend(shard.keys().copied());
        }
        out
    }

    /// Stored objects whose last handle was dropped since [`reset_garbage`](Self::reset_garbage).
    pub fn garbage(&self) -> u64 {
        self.garbage.load(Ordering::Relaxed)
    }

    /// A collection starts: it reclaims what the count stood for.
    pub fn reset_garbage(&self) {
        self.garbage.store(0, Ordering::Relaxed);
    }
}

fn shard_of(key: &ContentKey) -> usize {
    (key.prefix_u64() % SHARDS as u64) as usize
}

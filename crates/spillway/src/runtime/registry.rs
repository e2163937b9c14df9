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
//! Layout: almost every key has one live entry, so a shard holds two maps: the first entry of
//! each key (a weak pointer, no allocation of its own), and, only for the rare key that has
//! more, the others in order. An entry is known by its address, which stays valid while the
//! registry holds a weak pointer to it, so that a record needs no id beside the pointer.
//!
//! The registry also numbers the pool itself, which tells two pools' batches apart.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use crate::sync::{AtomicU64, Mutex};

use super::erased::ErasedEntry;
use crate::key::{ContentKey, KeyMap};
use crate::memory::shrink_map;

const SHARDS: usize = 16;

/// A registry shard: every live entry stored under each of its keys, usually one (more if equal
/// values were inserted separately), in the order they were counted. `load` and page-in hand
/// out the first one of the right type.
#[derive(Default)]
struct Shard {
    /// The first entry counted under each key.
    first: KeyMap<Weak<dyn ErasedEntry>>,
    /// The others, for the keys that have more than one.
    more: KeyMap<Vec<Weak<dyn ErasedEntry>>>,
}

/// The address that identifies an entry in the registry.
fn addr(entry: &Weak<dyn ErasedEntry>) -> *const () {
    entry.as_ptr() as *const ()
}

/// Identifies a pool among the pools of a process.
pub(crate) type PoolId = u64;

// An id allocator shared by every pool of the process, not part of any protocol: a plain atomic
// (also under shuttle, whose atomics belong to one execution).
static NEXT_POOL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub(crate) struct Registry {
    pool: PoolId,
    shards: Vec<Mutex<Shard>>,
    /// Stored objects whose last handle was dropped since the last collection.
    garbage: AtomicU64,
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            pool: NEXT_POOL.fetch_add(1, Ordering::Relaxed),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            garbage: AtomicU64::new(0),
        }
    }

    /// The pool whose entries these are.
    pub fn pool(&self) -> PoolId {
        self.pool
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
        let Shard { first, more } = &mut *shard;
        let counted = first
            .get(&key)
            .into_iter()
            .chain(more.get(&key).into_iter().flatten());
        for w in counted {
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
        shard.add(key, Arc::downgrade(&entry) as Weak<dyn ErasedEntry>);
        (entry, true)
    }

    /// Counts `entry` as a live entry of `key`, once; it becomes the entry handed out for the
    /// key unless a live one is there already.
    pub fn register(&self, entry: &Arc<dyn ErasedEntry>, key: ContentKey) {
        if !entry.mark_registered() {
            return;
        }
        let mut shard = self.shards[shard_of(&key)].lock();
        shard.add(key, Arc::downgrade(entry));
    }

    /// The entry at `entry` (its address), counted under `key`, is gone. If it was the key's
    /// last, the key counts towards [`garbage`](Self::garbage) unless `garbage` is false: the
    /// entry went with a paged-out parent, whose stored record still refers to it.
    pub fn forget(&self, entry: *const (), key: ContentKey, garbage: bool) {
        let mut shard = self.shards[shard_of(&key)].lock();
        let Shard { first, more } = &mut *shard;
        let Some(f) = first.get_mut(&key) else {
            return;
        };
        if addr(f) != entry {
            // One of the others.
            if let Some(others) = more.get_mut(&key) {
                others.retain(|w| addr(w) != entry);
                if others.is_empty() {
                    more.remove(&key);
                }
            }
            return;
        }
        // The first: the next one counted takes its place, if there is one.
        let next = match more.get_mut(&key) {
            Some(others) => {
                let next = others.remove(0);
                if others.is_empty() {
                    more.remove(&key);
                }
                Some(next)
            }
            None => None,
        };
        let gone = match next {
            Some(next) => Some(std::mem::replace(f, next)),
            None => {
                if garbage {
                    self.garbage.fetch_add(1, Ordering::Relaxed);
                }
                first.remove(&key)
            }
        };
        shrink_map(first);
        shrink_map(more);
        drop(shard);
        drop(gone);
    }

    /// Bytes of memory the registry's tables take (an estimate from their capacities).
    pub fn memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock();
                let others: usize = s
                    .more
                    .values()
                    .map(|v| v.capacity() * std::mem::size_of::<Weak<dyn ErasedEntry>>())
                    .sum();
                crate::memory::map_bytes(&s.first) + crate::memory::map_bytes(&s.more) + others
            })
            .sum()
    }

    /// Keys of the objects that have live handles.
    pub fn live_keys(&self) -> Vec<ContentKey> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock();
            // Records go when their last live entry does: every key here is live.
            out.extend(shard.first.keys().copied());
        }
        out
    }

    /// Stored objects whose last handle was dropped since [`reset_garbage`](Self::reset_garbage),
    /// other than those whose last handle went with a paged-out parent (reachable through it).
    pub fn garbage(&self) -> u64 {
        self.garbage.load(Ordering::Relaxed)
    }

    /// A collection starts: it reclaims what the count stood for.
    pub fn reset_garbage(&self) {
        self.garbage.store(0, Ordering::Relaxed);
    }
}

impl Shard {
    /// Counts one more entry under `key`, after those already counted.
    fn add(&mut self, key: ContentKey, entry: Weak<dyn ErasedEntry>) {
        match self.first.entry(key) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(entry);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(key).or_default().push(entry);
            }
        }
    }
}

fn shard_of(key: &ContentKey) -> usize {
    (key.prefix_u64() % SHARDS as u64) as usize
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::error::Result;
    use crate::runtime::erased::{Encoded, EntryId};

    /// An entry as the registry sees it; forgets itself when dropped, like `Entry`.
    struct Fake {
        id: EntryId,
        key: ContentKey,
        registry: Arc<Registry>,
        registered: AtomicBool,
    }

    impl ErasedEntry for Fake {
        fn id(&self) -> EntryId {
            self.id
        }
        fn key(&self) -> Option<ContentKey> {
            Some(self.key)
        }
        fn is_stored(&self) -> bool {
            true
        }
        fn mark_stored(&self, _key: ContentKey) {}
        fn mark_registered(&self) -> bool {
            !self.registered.swap(true, Ordering::AcqRel)
        }
        fn set_key(&self, _key: ContentKey) {}
        fn encode(&self) -> Result<Encoded> {
            Ok(Encoded::Stored)
        }
        fn take_hits(&self) -> u8 {
            0
        }
        fn is_pinned(&self) -> bool {
            false
        }
        fn try_evict(&self) -> Option<u64> {
            None
        }
        fn resident_size(&self) -> u64 {
            0
        }
        fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
            self
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            if *self.registered.get_mut() {
                self.registry
                    .forget(self as *const Self as *const (), self.key, true);
            }
        }
    }

    static NEXT_FAKE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

    fn fake(registry: &Arc<Registry>, key: ContentKey) -> Fake {
        Fake {
            id: NEXT_FAKE.fetch_add(1, Ordering::Relaxed),
            key,
            registry: Arc::clone(registry),
            registered: AtomicBool::new(false),
        }
    }

    #[test]
    fn every_copy_of_a_key_is_counted_and_the_first_live_one_is_handed_out() {
        let registry = Arc::new(Registry::new());
        let key = ContentKey::of(b"one", &[]);
        let other = ContentKey::of(b"two", &[]);
        let (a, new) = registry.find_or_add(key, || fake(&registry, key));
        assert!(new);
        let (same, new) = registry.find_or_add(key, || fake(&registry, key));
        assert!(!new && Arc::ptr_eq(&a, &same));
        drop(same);
        // Two more copies of the same content, counted after the first.
        let b: Arc<dyn ErasedEntry> = Arc::new(fake(&registry, key));
        let c: Arc<dyn ErasedEntry> = Arc::new(fake(&registry, key));
        registry.register(&b, key);
        registry.register(&b, key);
        registry.register(&c, key);
        let (d, _) = registry.find_or_add(other, || fake(&registry, other));
        let mut live = registry.live_keys();
        live.sort();
        let mut expected = vec![key, other];
        expected.sort();
        assert_eq!(live, expected);
        // The first goes: the next counted is handed out, and the key stays live.
        drop(a);
        let (next, new) = registry.find_or_add(key, || fake(&registry, key));
        assert!(!new);
        assert_eq!(next.id(), b.id());
        drop(next);
        assert_eq!(registry.garbage(), 0);
        // A later copy goes: the first stays.
        drop(c);
        let (next, _) = registry.find_or_add(key, || fake(&registry, key));
        assert_eq!(next.id(), b.id());
        drop(next);
        assert_eq!(registry.garbage(), 0);
        // The last goes: the key is garbage, once.
        drop(b);
        assert_eq!(registry.garbage(), 1);
        assert_eq!(registry.live_keys(), vec![other]);
        drop(d);
        assert_eq!(registry.garbage(), 2);
        assert!(registry.live_keys().is_empty());
    }
}

//! Garbage collection of stored data: mark everything reachable from the named roots
//! (persisted graphs included) and the keys of live handles, walking child keys in the store,
//! then sweep the stored records left unmarked.
//!
//! Invariants:
//! - One collection runs at a time (`lock`).
//! - While a collection runs, every key the pool stores, skips as already stored, or hands out a
//!   handle for is added to the collection's protected set under `state` (page-out through
//!   [`Collector::writing`], new handles through [`Collector::protect`]), and the sweep deletes
//!   only under that same lock, after marking the protected keys: nothing in use is ever swept.
//! - A graph with holes (a root's object, or a child of a reachable stored object, missing)
//!   stops the collection with [`Error::IncompleteGraph`] and deletes nothing, unless the
//!   collection is forced.
//! - The sweep deletes parents before their children: a crash part-way through it (a log store
//!   keeps a prefix of its deletions) leaves garbage whose parents are gone, which the next
//!   collection takes, never a stored object whose child is gone, which `verify` would report
//!   as damage.
//!
//! Lock order: `lock` → `state` → a registry shard.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::Ordering;

use crate::sync::{AtomicBool, Mutex, MutexGuard};

use super::registry::Registry;
use super::stats::Counters;
use crate::error::{Error, Result};
use crate::key::{BuildKeyHasher, ContentKey};
use crate::store::BlobStore;

/// What a garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Objects found stored and reachable (kept).
    pub marked: u64,
    /// Objects deleted.
    pub deleted: u64,
    /// Objects reachable from a root or a live handle that are not stored (only with
    /// [`GcOptions::force`]: otherwise a collection that finds any stops with
    /// [`Error::IncompleteGraph`]).
    pub missing: u64,
    /// Roots whose graphs miss objects, by name (a live handle's graph as "a live handle").
    pub damaged_roots: Vec<String>,
    /// The missing objects, sorted (at most [`MAX_MISSING_LISTED`]).
    pub missing_keys: Vec<ContentKey>,
}

/// The most missing keys a [`GcReport`] lists; its count is always whole.
pub const MAX_MISSING_LISTED: usize = 100;

/// How a garbage collection treats a damaged store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcOptions {
    /// Collect even when objects that roots or live handles reach are missing (default
    /// `false`: such a collection stops and deletes nothing). Only objects that the surviving
    /// parts of the graphs do not reach are deleted; what the missing objects referred to
    /// cannot be known, so objects that only they reached are deleted too.
    pub force: bool,
}

impl GcOptions {
    /// See [`GcOptions::force`].
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }
}

#[derive(Default)]
struct GcState {
    active: bool,
    protect: HashSet<ContentKey, BuildKeyHasher>,
}

/// A pool's collector: the state that collections and the writers running beside them share.
pub(crate) struct Collector {
    /// Held for a whole collection.
    lock: Mutex<()>,
    state: Mutex<GcState>,
    /// `state.active`, readable without the lock (a hint: checked again under it).
    active: AtomicBool,
    /// Collect in the background once this many stored objects lost their last handle (0:
    /// never).
    after: u64,
}

impl Collector {
    pub fn new(after: u64) -> Collector {
        Collector {
            lock: Mutex::new(()),
            state: Mutex::new(GcState::default()),
            active: AtomicBool::new(false),
            after,
        }
    }

    /// True if enough garbage accumulated (`garbage` stored objects lost their last handle)
    /// for the background thread to collect it.
    pub fn due(&self, garbage: u64) -> bool {
        self.after > 0 && garbage >= self.after
    }

    /// Adds `key` to the protected set of a running collection.
    pub fn protect(&self, key: ContentKey) {
        if self.active.load(Ordering::SeqCst) {
            let mut gc = self.state.lock();
            if gc.active {
                gc.protect.insert(key);
            }
        }
    }

    /// Holds off the sweep while a batch is written: keys written or found stored meanwhile
    /// are protected through the returned guard.
    pub fn writing(&self) -> Writing<'_> {
        Writing(self.state.lock())
    }
}

/// A batch being written, beside a collection or not (see [`Collector::writing`]).
pub(crate) struct Writing<'a>(MutexGuard<'a, GcState>);

impl Writing<'_> {
    pub fn protect(&mut self, key: ContentKey) {
        if self.0.active {
            self.0.protect.insert(key);
        }
    }
}

/// One collection: the collector and the parts of the pool it reads.
pub(crate) struct Collection<'a> {
    pub collector: &'a Collector,
    pub store: &'a dyn BlobStore,
    pub registry: &'a Registry,
    pub stats: &'a Counters,
}

/// The state of one marking: what is marked, how many of those are stored, and what is
/// missing (with the root it was reached from).
#[derive(Default)]
struct Marking {
    marked: HashSet<ContentKey, BuildKeyHasher>,
    found: u64,
    missing: BTreeMap<ContentKey, String>,
}

impl Marking {
    fn damaged_roots(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.missing.values().collect();
        set.into_iter().cloned().collect()
    }

    fn missing_keys(&self, most: usize) -> Vec<ContentKey> {
        self.missing.keys().take(most).copied().collect()
    }
}

impl Collection<'_> {
    /// Mark and sweep: everything reachable from a named root or a live handle survives.
    pub fn gc(&self, opts: GcOptions) -> Result<GcReport> {
        let c = self.collector;
        let _one = c.lock.lock();
        {
            let mut gc = c.state.lock();
            gc.active = true;
            gc.protect.clear();
        }
        c.active.store(true, Ordering::SeqCst);
        let result = self.gc_inner(opts);
        c.active.store(false, Ordering::Release);
        {
            let mut gc = c.state.lock();
            gc.active = false;
            gc.protect.clear();
        }
        result
    }

    fn gc_inner(&self, opts: GcOptions) -> Result<GcReport> {
        self.registry.reset_garbage();
        // Reserved keys hold the store's own records (the default roots' slots), not objects.
        let candidates: Vec<ContentKey> = self
            .store
            .keys()?
            .into_iter()
            .filter(|k| !k.is_reserved())
            .collect();
        let mut marking = Marking::default();
        let roots = self.store.roots()?;
        self.mark(&roots, self.registry.live_keys(), &mut marking)?;
        // Sweep under the lock that page-outs and new handles take while a collection runs.
        // What became live during the marking (new handles, new roots, writes) is marked now,
        // with everything under it.
        let gc = self.collector.state.lock();
        let mut late: Vec<ContentKey> = self.registry.live_keys();
        late.extend(gc.protect.iter().copied());
        self.mark(&self.store.roots()?, late, &mut marking)?;
        if !marking.missing.is_empty() && !opts.force {
            // A graph with holes: the store is damaged. What the holes held cannot be known,
            // so nothing is deleted.
            return Err(Error::IncompleteGraph {
                store: self.store.describe(),
                roots: marking.damaged_roots(),
                missing_count: marking.missing.len() as u64,
                missing: marking.missing_keys(10),
            });
        }
        let garbage: Vec<ContentKey> = candidates
            .into_iter()
            .filter(|k| !marking.marked.contains(k))
            .collect();
        let garbage = self.parents_first(garbage)?;
        self.store.delete(&garbage)?;
        drop(gc);
        self.stats.gc_runs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .gc_deleted
            .fetch_add(garbage.len() as u64, Ordering::Relaxed);
        Ok(GcReport {
            marked: marking.found,
            deleted: garbage.len() as u64,
            missing: marking.missing.len() as u64,
            damaged_roots: marking.damaged_roots(),
            missing_keys: marking.missing_keys(MAX_MISSING_LISTED),
        })
    }

    /// `garbage` ordered so that every object comes before its children among them (a
    /// topological order of the graphs they form; content keys make cycles impossible, and a
    /// damaged store that seemed to have one keeps the rest in their order).
    fn parents_first(&self, garbage: Vec<ContentKey>) -> Result<Vec<ContentKey>> {
        let index: std::collections::HashMap<ContentKey, usize, BuildKeyHasher> =
            garbage.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let mut children: Vec<Vec<usize>> = Vec::with_capacity(garbage.len());
        let mut parents = vec![0u32; garbage.len()];
        for k in &garbage {
            let mine: Vec<usize> = self
                .store
                .children(k)?
                .unwrap_or_default()
                .iter()
                .filter_map(|c| index.get(c).copied())
                .collect();
            for &c in &mine {
                parents[c] += 1;
            }
            children.push(mine);
        }
        let mut ready: Vec<usize> = (0..garbage.len()).filter(|&i| parents[i] == 0).collect();
        let mut out = Vec::with_capacity(garbage.len());
        let mut placed = vec![false; garbage.len()];
        while let Some(i) = ready.pop() {
            out.push(garbage[i]);
            placed[i] = true;
            for &c in &children[i] {
                parents[c] -= 1;
                if parents[c] == 0 {
                    ready.push(c);
                }
            }
        }
        out.extend(
            (0..garbage.len())
                .filter(|&i| !placed[i])
                .map(|i| garbage[i]),
        );
        Ok(out)
    }

    /// Marks everything reachable from the named roots and from `live` (keys of live handles),
    /// walking child keys in the store. A root's object, or any child of a stored object, that
    /// is not stored is recorded as missing, with the root it was reached from. A live handle's
    /// own key need not be stored (its value may not have been paged out yet).
    fn mark(
        &self,
        roots: &[(String, ContentKey)],
        live: Vec<ContentKey>,
        m: &mut Marking,
    ) -> Result<()> {
        let starts = roots
            .iter()
            .map(|(name, k)| (Some(name.as_str()), *k))
            .chain(live.into_iter().map(|k| (None, k)));
        for (root, start) in starts {
            if m.marked.contains(&start) {
                continue;
            }
            let mut stack = vec![(start, root.is_some())];
            while let Some((k, must_exist)) = stack.pop() {
                if !m.marked.insert(k) {
                    continue;
                }
                // Child keys only: marking never reads a payload.
                match self.store.children(&k)? {
                    Some(children) => {
                        m.found += 1;
                        stack.extend(
                            children
                                .iter()
                                .filter(|c| !m.marked.contains(*c))
                                .map(|c| (*c, true)),
                        );
                    }
                    None if must_exist => {
                        let from = root.map_or_else(|| "a live handle".to_string(), str::to_string);
                        m.missing.insert(k, from);
                    }
                    // Not paged out yet: nothing stored to walk.
                    None => {}
                }
            }
        }
        Ok(())
    }
}

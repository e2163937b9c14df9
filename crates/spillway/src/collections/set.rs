//! [`PagedSet`]: a persistent ordered set, a [`PagedMap`] of keys to `()`.

use super::map::{MapOptions, PagedMap};
use super::node::Item;
use crate::error::Result;
use crate::key::ContentKey;
use crate::runtime::Pool;

/// A persistent ordered set of `K` in a [`Pool`]: a [`PagedMap`] from `K` to `()`, with its
/// paging, snapshots and persistence.
#[derive(Debug, Clone)]
pub struct PagedSet<K: Item + Ord> {
    map: PagedMap<K, ()>,
}

impl<K: Item + Ord> PagedSet<K> {
    /// An empty set in `pool`.
    pub fn new(pool: &Pool) -> PagedSet<K> {
        PagedSet {
            map: PagedMap::new(pool),
        }
    }

    /// An empty set in `pool`, with nodes of the given size.
    pub fn with_options(pool: &Pool, options: MapOptions) -> PagedSet<K> {
        PagedSet {
            map: PagedMap::with_options(pool, options),
        }
    }

    /// A set of `keys`, which must come in strictly increasing order.
    pub fn from_sorted(pool: &Pool, keys: impl IntoIterator<Item = K>) -> Result<PagedSet<K>> {
        Ok(PagedSet {
            map: PagedMap::from_sorted(pool, keys.into_iter().map(|k| (k, ())))?,
        })
    }

    /// Number of keys.
    pub fn len(&self) -> u64 {
        self.map.len()
    }

    /// True if the set is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// True if the set holds `key`.
    pub fn contains(&self, key: &K) -> Result<bool> {
        self.map.contains_key(key)
    }

    /// Adds `key`; true if it was not there.
    pub fn insert(&mut self, key: K) -> Result<bool> {
        Ok(self.map.insert(key, ())?.is_none())
    }

    /// Removes `key`; true if it was there.
    pub fn remove(&mut self, key: &K) -> Result<bool> {
        Ok(self.map.remove(key)?.is_some())
    }

    /// The keys in `range`, in order.
    pub fn range<R: std::ops::RangeBounds<K>>(
        &self,
        range: R,
    ) -> impl Iterator<Item = Result<K>> + use<K, R> {
        self.map.range(range).map(|e| e.map(|(k, ())| k))
    }

    /// Every key, in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<K>> + use<K> {
        self.map.iter().map(|e| e.map(|(k, ())| k))
    }

    /// Keeps the set under the root `name` (see [`PagedMap::save`]).
    pub fn save(&self, pool: &Pool, name: &str) -> Result<ContentKey> {
        self.map.save(pool, name)
    }

    /// The set saved under `name`, if there is one.
    pub fn open(pool: &Pool, name: &str) -> Result<Option<PagedSet<K>>> {
        Ok(PagedMap::open(pool, name)?.map(|map| PagedSet { map }))
    }
}

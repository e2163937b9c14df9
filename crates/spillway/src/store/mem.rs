//! [`MemStore`]: a store in memory, for tests and as a reference for the other backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use super::{Blob, BlobStore, Durability, Put, StoreStats};
use crate::error::Result;
use crate::format::record::record_len;
use crate::key::{ContentKey, KeyMap};

/// A store that keeps everything in memory. Every durability level is reached at once, and
/// nothing survives the process.
#[derive(Debug, Default)]
pub struct MemStore {
    map: RwLock<KeyMap<Arc<Blob>>>,
    roots: RwLock<std::collections::BTreeMap<String, ContentKey>>,
    puts: AtomicU64,
    dedup_hits: AtomicU64,
    gets: AtomicU64,
    deletes: AtomicU64,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }
}

impl BlobStore for MemStore {
    fn put_batch(&self, batch: &[Put<'_>]) -> Result<()> {
        let mut map = self.map.write();
        for p in batch {
            if map.contains_key(&p.key) {
                self.dedup_hits.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            debug_assert!(
                p.key.is_reserved() || p.key == ContentKey::of(p.payload, p.children),
                "key of a put"
            );
            map.insert(
                p.key,
                Arc::new(Blob {
                    children: p.children.to_vec(),
                    payload: p.payload.to_vec(),
                }),
            );
            self.puts.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn get(&self, key: &ContentKey) -> Result<Option<Blob>> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        Ok(self.map.read().get(key).map(|b| Blob::clone(b)))
    }

    fn contains(&self, key: &ContentKey) -> Result<bool> {
        Ok(self.map.read().contains_key(key))
    }

    fn children(&self, key: &ContentKey) -> Result<Option<Vec<ContentKey>>> {
        Ok(self.map.read().get(key).map(|b| b.children.clone()))
    }

    fn delete(&self, keys: &[ContentKey]) -> Result<()> {
        let mut map = self.map.write();
        for k in keys {
            if map.remove(k).is_some() {
                self.deletes.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn keys(&self) -> Result<Vec<ContentKey>> {
        Ok(self.map.read().keys().copied().collect())
    }

    fn flush(&self, _durability: Durability) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        let map = self.map.read();
        let live_bytes = map
            .values()
            .map(|b| record_len(b.children.len(), b.payload.len()))
            .sum();
        StoreStats {
            objects: map.len() as u64,
            live_bytes,
            puts: self.puts.load(Ordering::Relaxed),
            dedup_hits: self.dedup_hits.load(Ordering::Relaxed),
            gets: self.gets.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
            ..StoreStats::default()
        }
    }

    fn describe(&self) -> String {
        "memory store".to_string()
    }

    fn roots(&self) -> Result<Vec<(String, ContentKey)>> {
        Ok(self
            .roots
            .read()
            .iter()
            .map(|(n, k)| (n.clone(), *k))
            .collect())
    }

    fn root(&self, name: &str) -> Result<Option<ContentKey>> {
        Ok(self.roots.read().get(name).copied())
    }

    fn set_root(&self, name: &str, key: Option<ContentKey>) -> Result<()> {
        super::default_roots::check_name(name)?;
        let mut roots = self.roots.write();
        match key {
            Some(k) if !self.map.read().contains_key(&k) => Err(crate::error::Error::NotFound {
                key: k,
                store: self.describe(),
            }),
            Some(k) => {
                roots.insert(name.to_string(), k);
                Ok(())
            }
            None => {
                roots.remove(name);
                Ok(())
            }
        }
    }
}

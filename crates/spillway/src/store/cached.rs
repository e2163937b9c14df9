//! [`CachedStore`]: a local [`LogStore`] in front of a remote store (an [`S3Store`](super::S3Store),
//! say): reads go through it, writes go back from it.
//!
//! - **Writes** land in the local log ([`Durability::Applied`] at once, `Written` with the local
//!   log's) and are remembered as *pending*. [`flush`](BlobStore::flush)`(Durable)` uploads every
//!   pending object, in the order written (children before parents), and returns once the remote
//!   store has them: **`Durable` means in the remote store**, which for S3 survives the loss of
//!   this machine.
//! - **Reads** try the local log first; a miss fetches the object from the remote store and keeps
//!   a copy locally.
//! - **A disk budget** bounds the local log: once its disk use passes the budget, the oldest
//!   copies that are safely remote (never the pending ones) are dropped and the log compacted.
//!   Pending objects may take the log past its budget until the next durable flush.
//! - **Roots** are the remote store's (set after a durable flush, so a root never names an
//!   object only this machine has).
//! - **After a crash** before a durable flush, the local log may hold objects the remote store
//!   lacks. [`CachedStore::open`] finds them (the local keys the remote does not have) and counts
//!   them as pending again, so the next durable flush uploads them.
//!
//! Invariant: every key in `pending` was written to the local log and not yet uploaded; every
//! key in `order` is stored remote (its local copy may be dropped).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Blob, BlobStore, Durability, LogStore, Put, StoreStats};
use crate::error::Result;
use crate::key::{BuildKeyHasher, ContentKey};

/// A local log store in front of a remote store; see the module docs.
#[derive(Debug)]
pub struct CachedStore {
    local: LogStore,
    remote: Arc<dyn BlobStore>,
    /// Objects written locally and not yet uploaded, in the order written.
    pending: Mutex<Vec<ContentKey>>,
    /// Copies known to be remote too, oldest first: what the budget may drop.
    order: Mutex<VecDeque<ContentKey>>,
    disk_budget: u64,
}

/// What the cache did, for statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Objects written locally and not uploaded yet.
    pub pending: u64,
    /// Bytes the local log takes on disk.
    pub local_disk_bytes: u64,
    /// The local log's disk budget.
    pub disk_budget: u64,
}

impl CachedStore {
    /// A cache over `remote` kept in the log store `local`, holding its disk use near
    /// `disk_budget` bytes. Objects the local log holds and the remote lacks (written before a
    /// crash, never flushed `Durable`) become pending again.
    pub fn open(local: LogStore, remote: Arc<dyn BlobStore>, disk_budget: u64) -> Result<Self> {
        let remote_keys: HashSet<ContentKey, BuildKeyHasher> = remote.keys()?.into_iter().collect();
        let mut pending = Vec::new();
        let mut order = VecDeque::new();
        for k in local.keys()? {
            if remote_keys.contains(&k) {
                order.push_back(k);
            } else {
                pending.push(k);
            }
        }
        if !pending.is_empty() {
            tracing::warn!(remote = %remote.describe(), objects = pending.len(),
                "the local cache holds objects the remote store lacks: they will be uploaded at the next durable flush");
        }
        // Children before parents among them: a parent's children are uploaded with it anyway
        // (a durable flush uploads them all before it returns), so the order only matters to a
        // reader racing the upload, who finds a parent only once named by a root.
        Ok(CachedStore {
            local,
            remote,
            pending: Mutex::new(pending),
            order: Mutex::new(order),
            disk_budget,
        })
    }

    /// The remote store.
    pub fn remote(&self) -> &Arc<dyn BlobStore> {
        &self.remote
    }

    /// The local log store.
    pub fn local(&self) -> &LogStore {
        &self.local
    }

    /// The cache's state.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            pending: self.pending.lock().len() as u64,
            local_disk_bytes: self.local.stats().disk_bytes,
            disk_budget: self.disk_budget,
        }
    }

    /// Uploads every pending object; they are remote when it returns.
    fn upload_pending(&self) -> Result<()> {
        // One uploader at a time: holding the list keeps the order and avoids double uploads.
        let mut pending = self.pending.lock();
        if pending.is_empty() {
            return Ok(());
        }
        let mut uploaded = 0;
        for chunk in pending.chunks(256) {
            let blobs: Vec<(ContentKey, Blob)> = chunk
                .iter()
                .filter_map(|k| match self.local.get(k) {
                    Ok(Some(b)) => Some(Ok((*k, b))),
                    // Deleted since it was written: nothing to upload.
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_>>()?;
            let puts: Vec<Put<'_>> = blobs
                .iter()
                .map(|(k, b)| Put {
                    key: *k,
                    children: &b.children,
                    payload: &b.payload,
                })
                .collect();
            self.remote.put_batch(&puts)?;
            uploaded += chunk.len();
        }
        self.remote.flush(Durability::Durable)?;
        let done: Vec<ContentKey> = pending.drain(..uploaded).collect();
        drop(pending);
        self.order.lock().extend(done);
        self.keep_within_budget()
    }

    /// Drops the oldest copies that are remote until the local log is within its budget.
    fn keep_within_budget(&self) -> Result<()> {
        if self.local.stats().disk_bytes <= self.disk_budget {
            return Ok(());
        }
        // Down to half the budget in live records, so that compaction finds mostly-dead
        // segments to give back whole.
        let target = self.disk_budget / 2;
        let mut dropped = 0;
        while self.local.stats().live_bytes > target {
            let chunk: Vec<ContentKey> = {
                let mut order = self.order.lock();
                let n = order.len().min(256);
                order.drain(..n).collect()
            };
            if chunk.is_empty() {
                break;
            }
            dropped += chunk.len();
            self.local.delete(&chunk)?;
        }
        if dropped > 0 {
            self.local.compact()?;
            tracing::debug!(
                dropped,
                disk = self.local.stats().disk_bytes,
                "local cache trimmed"
            );
        }
        Ok(())
    }
}

impl BlobStore for CachedStore {
    fn put_batch(&self, batch: &[Put<'_>]) -> Result<()> {
        self.local.put_batch(batch)?;
        let mut pending = self.pending.lock();
        pending.extend(batch.iter().map(|p| p.key));
        Ok(())
    }

    /// The local store's: a page-out writes there, and uploads go in groups of their own.
    fn batch_bytes(&self) -> usize {
        self.local.batch_bytes()
    }

    fn get(&self, key: &ContentKey) -> Result<Option<Blob>> {
        if let Some(b) = self.local.get(key)? {
            return Ok(Some(b));
        }
        let Some(b) = self.remote.get(key)? else {
            return Ok(None);
        };
        self.local.put(Put {
            key: *key,
            children: &b.children,
            payload: &b.payload,
        })?;
        self.order.lock().push_back(*key);
        self.keep_within_budget()?;
        Ok(Some(b))
    }

    fn contains(&self, key: &ContentKey) -> Result<bool> {
        Ok(self.local.contains(key)? || self.remote.contains(key)?)
    }

    fn contains_many(&self, keys: &[ContentKey]) -> Result<Vec<bool>> {
        let mut found = self.local.contains_many(keys)?;
        let ask: Vec<ContentKey> = keys
            .iter()
            .zip(&found)
            .filter(|(_, local)| !**local)
            .map(|(k, _)| *k)
            .collect();
        if ask.is_empty() {
            return Ok(found);
        }
        let mut remote = self.remote.contains_many(&ask)?.into_iter();
        for f in found.iter_mut().filter(|f| !**f) {
            *f = remote.next().unwrap_or(false);
        }
        Ok(found)
    }

    fn children(&self, key: &ContentKey) -> Result<Option<Vec<ContentKey>>> {
        match self.local.children(key)? {
            Some(c) => Ok(Some(c)),
            None => Ok(self.get(key)?.map(|b| b.children)),
        }
    }

    fn delete(&self, keys: &[ContentKey]) -> Result<()> {
        self.remote.delete(keys)?;
        self.local.delete(keys)?;
        let gone: HashSet<ContentKey, BuildKeyHasher> = keys.iter().copied().collect();
        self.pending.lock().retain(|k| !gone.contains(k));
        Ok(())
    }

    fn keys(&self) -> Result<Vec<ContentKey>> {
        let mut keys: HashSet<ContentKey, BuildKeyHasher> =
            self.remote.keys()?.into_iter().collect();
        keys.extend(self.pending.lock().iter().copied());
        Ok(keys.into_iter().collect())
    }

    fn flush(&self, durability: Durability) -> Result<()> {
        match durability {
            Durability::Applied => Ok(()),
            Durability::Written => self.local.flush(Durability::Written),
            Durability::Durable => self.upload_pending(),
        }
    }

    fn stats(&self) -> StoreStats {
        let local = self.local.stats();
        let remote = self.remote.stats();
        StoreStats {
            objects: local.objects,
            live_bytes: local.live_bytes,
            disk_bytes: local.disk_bytes,
            puts: local.puts,
            dedup_hits: local.dedup_hits,
            gets: local.gets,
            deletes: local.deletes,
            bytes_written: remote.bytes_written,
            syncs: local.syncs,
            segments: local.segments,
            index_bytes: local.index_bytes,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} cached in {}",
            self.remote.describe(),
            self.local.describe()
        )
    }

    /// The remote store's: the local log holds copies of its objects.
    fn untagged_values(&self) -> Option<crate::error::Error> {
        self.remote.untagged_values()
    }

    fn roots(&self) -> Result<Vec<(String, ContentKey)>> {
        self.remote.roots()
    }

    fn root(&self, name: &str) -> Result<Option<ContentKey>> {
        self.remote.root(name)
    }

    fn set_root(&self, name: &str, key: Option<ContentKey>) -> Result<()> {
        // The graph first, remote, then the name.
        self.flush(Durability::Durable)?;
        self.remote.set_root(name, key)
    }
}

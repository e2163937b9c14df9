//! [`StoreWriter`]: a store's writes on the [write pipeline](crate::write).
//!
//! For a store whose own write path does not run on the pipeline ([`MemStore`](crate::MemStore),
//! or a user's [`BlobStore`]). A [`LogStore`](crate::LogStore) needs none: its writes already
//! run on a pipeline, and [`LogStore::submit_puts`](crate::LogStore::submit_puts) returns the
//! same kind of handle.
//!
//! Producers send puts and deletes through bounded channels; the pipeline applies them to an
//! in-memory delta (readable at once: [`Durability::Applied`]), freezes it by size, by timer or
//! on demand, and a flush thread stores each frozen batch with one `put_batch` and one
//! `flush(Written)`, and makes the store durable with one `flush(Durable)` for every writer
//! waiting on it. So `put` + [`WriteHandle::wait`] is the durability API, and group commit
//! falls out of the pipeline: with many writers waiting for `Durable`, each sync covers all
//! of them.
//!
//! Reads through [`StoreWriter::get`] see every applied write: the live delta and the frozen
//! ones not yet stored (newest first), then the store.
//!
//! Invariant: a key's newest write wins in every layer (a delete shadows older puts), and a
//! batch reaches the store whole before its layer leaves the view.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::key::{ContentKey, KeyMap};
use crate::store::{Blob, BlobStore, Durability, Put};
use spillway_write::{
    Config, Coordinator, Delta, Epoch, EpochRange, Flusher, Freeze, Frozen, Layer, WriteChannel,
    WriteHandle,
};

/// One write: objects to store, or keys to delete.
#[derive(Debug)]
pub enum StoreWrite {
    /// Store these objects.
    Put(Vec<Blob>),
    /// Delete these keys.
    Delete(Vec<ContentKey>),
}

/// The latest write per key since the last freeze: `None` is a delete.
#[derive(Debug, Default)]
pub struct PutDelta {
    map: KeyMap<Option<Arc<Blob>>>,
    bytes: usize,
}

impl PutDelta {
    /// What this delta says of `key`: `Some(Some(blob))` stored, `Some(None)` deleted, `None`
    /// unknown here.
    pub fn lookup(&self, key: &ContentKey) -> Option<Option<&Blob>> {
        self.map.get(key).map(|b| b.as_deref())
    }
}

impl Delta for PutDelta {
    type Write = StoreWrite;
    type Applied = ();

    fn apply(&mut self, _epoch: Epoch, write: StoreWrite) {
        match write {
            StoreWrite::Put(blobs) => {
                for b in blobs {
                    self.bytes += b.payload.len() + 16 * (b.children.len() + 1);
                    self.map.insert(b.key(), Some(Arc::new(b)));
                }
            }
            StoreWrite::Delete(keys) => {
                for k in keys {
                    self.bytes += 16;
                    self.map.insert(k, None);
                }
            }
        }
    }

    fn size_bytes(&self) -> usize {
        self.bytes
    }
}

impl Freeze for PutDelta {
    type Batch = Arc<KeyMap<Option<Arc<Blob>>>>;
    type FrozenView = Arc<KeyMap<Option<Arc<Blob>>>>;

    fn freeze(self) -> Frozen<Self> {
        let map = Arc::new(self.map);
        Frozen {
            batch: Arc::clone(&map),
            view: map,
            next: PutDelta::default(),
        }
    }
}

/// Stores frozen batches into a [`BlobStore`].
#[derive(Debug)]
pub struct StoreFlusher {
    store: Arc<dyn BlobStore>,
}

impl Flusher for StoreFlusher {
    type Batch = Arc<KeyMap<Option<Arc<Blob>>>>;
    type Snapshot = ();
    type Error = Error;

    fn write(&mut self, batch: &Self::Batch, _epochs: EpochRange) -> Result<()> {
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        for (key, blob) in batch.iter() {
            match blob {
                Some(b) => puts.push(Put {
                    key: *key,
                    children: &b.children,
                    payload: &b.payload,
                }),
                None => deletes.push(*key),
            }
        }
        // Content-addressed puts and deletes of absent keys are idempotent, so a retried batch
        // that was half stored is stored whole.
        self.store.put_batch(&puts)?;
        self.store.delete(&deletes)?;
        self.store.flush(Durability::Written)
    }

    fn sync(&mut self) -> Result<()> {
        self.store.flush(Durability::Durable)
    }
}

/// A store whose writes run on the write pipeline. See the module docs.
///
/// ```
/// use std::sync::Arc;
/// use spillway::store::{Blob, StoreWriter};
/// use spillway::write::Config;
/// use spillway::{Durability, MemStore};
///
/// let writer = StoreWriter::new(Arc::new(MemStore::new()), Config::default())?;
/// let blob = Blob { children: vec![], payload: b"hello".to_vec() };
/// let key = blob.key();
/// let handle = writer.put(vec![blob])?;
/// handle.wait(Durability::Applied)?;
/// assert!(writer.get(&key)?.is_some()); // visible once applied
/// handle.wait(Durability::Durable)?; // and durable once this returns
/// # Ok::<(), spillway::Error>(())
/// ```
pub struct StoreWriter {
    coordinator: Coordinator<PutDelta, StoreFlusher>,
    channel: WriteChannel<StoreWrite, (), Error>,
    store: Arc<dyn BlobStore>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWriter")
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

impl StoreWriter {
    /// Starts the pipeline in front of `store`.
    pub fn new(store: Arc<dyn BlobStore>, config: Config) -> Result<StoreWriter> {
        let coordinator = Coordinator::start(
            PutDelta::default(),
            StoreFlusher {
                store: Arc::clone(&store),
            },
            (),
            config,
        )?;
        let channel = coordinator.channel("store", 1024);
        Ok(StoreWriter {
            coordinator,
            channel,
            store,
        })
    }

    fn send(&self, write: StoreWrite) -> Result<WriteHandle<(), Error>> {
        self.channel
            .write(write)
            .map_err(|rejected| match rejected.reason {
                spillway_write::RejectReason::Stopped(e) => e.into(),
                other => Error::InvalidArgument(format!("write refused: {other:?}")),
            })
    }

    /// Queues objects to store; the handle waits for the level the caller needs.
    pub fn put(&self, blobs: Vec<Blob>) -> Result<WriteHandle<(), Error>> {
        self.send(StoreWrite::Put(blobs))
    }

    /// Queues deletes.
    pub fn delete(&self, keys: Vec<ContentKey>) -> Result<WriteHandle<(), Error>> {
        self.send(StoreWrite::Delete(keys))
    }

    /// Another bounded channel into the same pipeline, for a producer of its own.
    pub fn channel(&self, name: &str, capacity: usize) -> WriteChannel<StoreWrite, (), Error> {
        self.coordinator.channel(name, capacity)
    }

    /// Reads an object, seeing every applied write.
    pub fn get(&self, key: &ContentKey) -> Result<Option<Blob>> {
        {
            let view = self.coordinator.view();
            let read = view.read();
            for layer in read.layers() {
                let found = match layer {
                    Layer::Live(delta) => delta.lookup(key).map(|b| b.cloned()),
                    Layer::Frozen(map) => map.get(key).map(|b| b.as_deref().cloned()),
                };
                if let Some(result) = found {
                    return Ok(result);
                }
            }
        }
        self.store.get(key)
    }

    /// Freezes what was applied and waits until it reached `level`; returns the epoch covered.
    pub fn flush(&self, level: Durability) -> Result<Epoch> {
        match level {
            Durability::Applied => Ok(self.coordinator.watermark(Durability::Applied)),
            Durability::Written => Ok(self.coordinator.flush(false)?),
            Durability::Durable => Ok(self.coordinator.flush(true)?),
        }
    }

    /// The pipeline itself (watermarks, views, subscriptions).
    pub fn coordinator(&self) -> &Coordinator<PutDelta, StoreFlusher> {
        &self.coordinator
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    /// Stores everything applied and stops the pipeline.
    pub fn shutdown(self) -> Result<()> {
        let out = self.coordinator.shutdown();
        out.result?;
        match out.unflushed.first() {
            Some(u) => Err(Error::Internal(format!(
                "the write pipeline stopped cleanly but handed back batches (first epochs {:?})",
                u.epochs
            ))),
            None => Ok(()),
        }
    }
}

//! A [`BlobStore`] behind the pipeline: `put_batch` + `flush(Written)` is the flusher's write,
//! `flush(Durable)` its sync, and the store itself is the snapshot readers fall back to.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

use std::collections::HashMap;
use std::sync::Arc;

use spillway::write::{
    Config, Coordinator, Delta, Epoch, EpochRange, Flusher, Freeze, Frozen, Layer,
};
use spillway::{Blob, BlobStore, ContentKey, Durability, MemStore, Put, Result};

/// Objects written and not yet stored, by key.
#[derive(Default)]
struct Pending {
    objects: HashMap<ContentKey, Blob>,
    bytes: usize,
}

impl Delta for Pending {
    type Write = Blob;
    type Applied = ContentKey;

    fn apply(&mut self, _epoch: Epoch, blob: Blob) -> ContentKey {
        let key = blob.key();
        self.bytes += blob.payload.len() + 16 * blob.children.len();
        self.objects.insert(key, blob);
        key
    }

    fn size_bytes(&self) -> usize {
        self.bytes
    }
}

impl Freeze for Pending {
    type Batch = Arc<HashMap<ContentKey, Blob>>;
    type FrozenView = Arc<HashMap<ContentKey, Blob>>;

    fn freeze(self) -> Frozen<Self> {
        let objects = Arc::new(self.objects);
        Frozen {
            batch: objects.clone(),
            view: objects,
            next: Pending::default(),
        }
    }
}

/// The flusher over any store.
struct StoreFlusher(Arc<dyn BlobStore>);

impl Flusher for StoreFlusher {
    type Batch = Arc<HashMap<ContentKey, Blob>>;
    type Snapshot = Arc<dyn BlobStore>;
    type Error = spillway::Error;

    fn write(&mut self, batch: &Self::Batch, _epochs: EpochRange) -> Result<Arc<dyn BlobStore>> {
        let puts: Vec<Put<'_>> = batch
            .iter()
            .map(|(key, b)| Put {
                key: *key,
                children: &b.children,
                payload: &b.payload,
            })
            .collect();
        self.0.put_batch(&puts)?;
        self.0.flush(Durability::Written)?;
        Ok(self.0.clone())
    }

    fn sync(&mut self) -> Result<()> {
        self.0.flush(Durability::Durable)
    }
}

fn get(db: &Coordinator<Pending, StoreFlusher>, key: &ContentKey) -> Option<Blob> {
    let view = db.view();
    let read = view.read();
    for layer in read.layers() {
        let found = match layer {
            Layer::Live(p) => p.objects.get(key).cloned(),
            Layer::Frozen(m) => m.get(key).cloned(),
        };
        if found.is_some() {
            return found;
        }
    }
    read.snapshot().get(key).unwrap()
}

#[test]
fn a_blob_store_runs_behind_the_pipeline() {
    let store: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let config = Config {
        freeze_bytes: 1_000,
        ..Config::default()
    };
    let db = Coordinator::start(
        Pending::default(),
        StoreFlusher(store.clone()),
        store.clone(),
        config,
    )
    .unwrap();
    let ch = db.channel("objects", 32);
    let mut keys = Vec::new();
    for i in 0..100u32 {
        let blob = Blob {
            children: keys.last().copied().into_iter().collect(),
            payload: i.to_le_bytes().repeat(10),
        };
        let h = ch.write(blob).unwrap();
        h.wait(Durability::Applied).unwrap();
        keys.push(h.take_result().unwrap());
    }
    // Readable through the view whether stored yet or not.
    for (i, k) in keys.iter().enumerate() {
        let b = get(&db, k).unwrap();
        assert_eq!(b.payload, (i as u32).to_le_bytes().repeat(10));
    }
    let covered = db.flush(true).unwrap();
    assert_eq!(covered, Epoch::new(100));
    for k in &keys {
        assert!(store.contains(k).unwrap());
    }
    db.shutdown().result.unwrap();
    assert_eq!(store.stats().objects, 100);
}

//! spillway's `LogStore` with default options.

use std::collections::BTreeMap;
use std::path::Path;

use spillway::{BlobStore, ContentKey, Durability, LogStore};

use super::{Contender, FlushLevel, get_payload, put_objects};

/// A `LogStore` opened with `LogStoreOptions::default()`.
#[derive(Debug)]
pub struct LogContender {
    store: LogStore,
}

impl LogContender {
    pub fn open(dir: &Path) -> anyhow::Result<LogContender> {
        Ok(LogContender {
            store: LogStore::open(dir)?,
        })
    }
}

impl Contender for LogContender {
    fn put_batch(&mut self, keys: &[ContentKey], payloads: &[&[u8]]) -> anyhow::Result<()> {
        put_objects(&self.store, keys, payloads)
    }

    fn get(&mut self, key: &ContentKey) -> anyhow::Result<Option<Vec<u8>>> {
        get_payload(&self.store, key)
    }

    fn flush(&mut self, level: FlushLevel) -> anyhow::Result<()> {
        let level = match level {
            FlushLevel::Written => Durability::Written,
            FlushLevel::Durable => Durability::Durable,
        };
        Ok(self.store.flush(level)?)
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        Ok(self.store.close()?)
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        let s = self.store.stats();
        BTreeMap::from([
            ("syncs".to_string(), s.syncs),
            ("bytes_written".to_string(), s.bytes_written),
            ("segments".to_string(), s.segments),
            ("disk_bytes".to_string(), s.disk_bytes),
        ])
    }
}

//! spillway's `MemStore`: the same trait with no I/O, a floor for the harness's own costs.

use spillway::{BlobStore, ContentKey, MemStore, Put};

use super::{Contender, FlushLevel};

#[derive(Debug, Default)]
pub struct MemContender {
    store: MemStore,
}

impl MemContender {
    pub fn new() -> MemContender {
        MemContender::default()
    }
}

impl Contender for MemContender {
    fn put_batch(&mut self, keys: &[ContentKey], payloads: &[&[u8]]) -> anyhow::Result<()> {
        let puts: Vec<Put<'_>> = keys
            .iter()
            .zip(payloads)
            .map(|(key, payload)| Put {
                key: *key,
                children: &[],
                payload,
            })
            .collect();
        Ok(self.store.put_batch(&puts)?)
    }

    fn get(&mut self, key: &ContentKey) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.store.get(key)?.map(|blob| blob.payload))
    }

    fn flush(&mut self, _level: FlushLevel) -> anyhow::Result<()> {
        Ok(())
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}

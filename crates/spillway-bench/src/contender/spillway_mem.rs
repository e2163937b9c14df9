//! spillway's `MemStore`: the same trait with no I/O, a floor for the harness's own costs.

use spillway::{ContentKey, MemStore};

use super::{Contender, FlushLevel, get_payload, put_objects};

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
        put_objects(&self.store, keys, payloads)
    }

    fn get(&mut self, key: &ContentKey) -> anyhow::Result<Option<Vec<u8>>> {
        get_payload(&self.store, key)
    }

    fn flush(&mut self, _level: FlushLevel) -> anyhow::Result<()> {
        Ok(())
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}

//! Peer contender: `file_backed` 0.6: an `FBPool` (an LRU of items, its capacity counted in
//! items) over a `BackingStore`, with either its `FBStore` (one file per item) or its
//! `RedbStore`.
//!
//! Contenders (the `contender` field of the job):
//! - `file-backed-fbstore`: `FBStore` with a raw codec that writes each value with one
//!   `write_all` and reads it with one `read_to_end`;
//! - `file-backed-fbstore-bincode`: `FBStore` with the crate's shipped `BinCodec` (bincode
//!   writing straight into the file: one small write per field element);
//! - `file-backed-redb`: `RedbStore` with a raw byte codec.
//!
//! The pool's capacity is `budget / size` items, so that the same bytes fit in memory as in the
//! budgeted contenders. Run by the harness as `peer-file-backed --job <json>`.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::sync::Arc;

use file_backed::backing_store::Strategy;
use file_backed::fbstore::{BinCodec, Codec, FBStore, PreparedPath};
use file_backed::redbstore::{BlobCodec, RedbPath, RedbStore};
use file_backed::{BackingStore, FBPool, Fb};
use peer_common::{
    CachePeer, Job, Kind, KvPeer, Measurement, Read, Res, emit, job_from_args, run_kv, run_mixed,
    run_rss, run_zipf, tagged_index,
};

/// One `write_all` per value, one `read_to_end` per load.
struct RawCodec;

impl Codec<Vec<u8>> for RawCodec {
    fn encode(&self, data: &Vec<u8>, file: &mut File) -> anyhow::Result<()> {
        file.write_all(data)?;
        Ok(())
    }

    fn decode(&self, file: &mut File) -> anyhow::Result<Vec<u8>> {
        let mut v = Vec::new();
        file.read_to_end(&mut v)?;
        Ok(v)
    }
}

/// The value's bytes as they are.
struct RawBlob;

impl BlobCodec<Vec<u8>> for RawBlob {
    fn encode(&self, data: &Vec<u8>) -> anyhow::Result<Vec<u8>> {
        Ok(data.clone())
    }

    fn encode_with<R>(
        &self,
        data: &Vec<u8>,
        use_bytes: impl FnOnce(&[u8]) -> R,
    ) -> anyhow::Result<R> {
        Ok(use_bytes(data))
    }

    fn decode(&self, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        Ok(data.to_vec())
    }
}

struct Peer<B: Strategy<Vec<u8>>> {
    rt: tokio::runtime::Runtime,
    pool: Arc<FBPool<Vec<u8>, B>>,
    items: Vec<Fb<Vec<u8>, B>>,
}

impl<B: Strategy<Vec<u8>>> Peer<B> {
    fn new(rt: tokio::runtime::Runtime, backing: B, capacity: usize) -> Peer<B> {
        let store = Arc::new(BackingStore::new(backing, rt.handle().clone()));
        Peer {
            pool: Arc::new(FBPool::new(store, capacity.max(2))),
            rt,
            items: Vec::new(),
        }
    }

    /// Waits for the background writes of evicted items.
    fn wait(&self) {
        let store = self.pool.store();
        self.rt.block_on(store.finished());
        store.task_tracker().reopen();
    }
}

impl<B: Strategy<Vec<u8>>> KvPeer for Peer<B> {
    fn put_batch(&mut self, _first: u64, payloads: &[&[u8]]) -> Res<()> {
        for p in payloads {
            self.items.push(self.pool.insert(p.to_vec()));
        }
        Ok(())
    }

    fn flush(&mut self) -> Res<()> {
        self.wait();
        Ok(())
    }

    fn get(&mut self, index: u64) -> Res<Option<Vec<u8>>> {
        Ok(Some(self.items[index as usize].blocking_load().to_vec()))
    }

    fn close(&mut self) -> Res<()> {
        self.items.clear();
        self.wait();
        Ok(())
    }
}

impl<B: Strategy<Vec<u8>>> CachePeer for Peer<B> {
    fn insert(&mut self, _index: u64, payload: Vec<u8>) -> Res<()> {
        self.items.push(self.pool.insert(payload));
        Ok(())
    }

    fn read(&self, index: u64) -> Res<Read> {
        let fb = &self.items[index as usize];
        if let Some(g) = fb.try_load() {
            return Ok(Read {
                tag: tagged_index(&g),
                hit: true,
            });
        }
        let g = fb.blocking_load();
        Ok(Read {
            tag: tagged_index(&g),
            hit: false,
        })
    }

    fn settle(&mut self) -> Res<()> {
        self.wait();
        Ok(())
    }
}

fn run_with<B: Strategy<Vec<u8>>>(job: &Job, backing: impl FnOnce() -> B) -> Res<Measurement> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let capacity = (job.spec.budget / job.spec.size.max(1) as u64) as usize;
    match job.spec.kind {
        Kind::Kv => run_kv(|| Ok(Peer::new(rt, backing(), capacity)), job),
        Kind::Zipf => run_zipf(&mut Peer::new(rt, backing(), capacity), job),
        Kind::Mixed => run_mixed(&mut Peer::new(rt, backing(), capacity), job),
        Kind::Rss => run_rss(&mut Peer::new(rt, backing(), capacity), job),
        k => Err(format!("file_backed: workload {k:?} is not measured for this contender").into()),
    }
}

fn run(job: &Job) -> Res<Measurement> {
    std::fs::create_dir_all(&job.dir)?;
    let dir = job.dir.clone();
    match job.contender.as_str() {
        "file-backed-fbstore" => run_with(job, || {
            FBStore::new(RawCodec, PreparedPath::blocking_new(dir, vec![]))
        }),
        "file-backed-fbstore-bincode" => run_with(job, || {
            FBStore::new(BinCodec, PreparedPath::blocking_new(dir, vec![]))
        }),
        "file-backed-redb" => run_with(job, || RedbStore::new(RawBlob, RedbPath::in_dir(&dir))),
        other => Err(format!("unknown file_backed contender {other:?}").into()),
    }
}

fn main() {
    emit(job_from_args().map_err(Into::into).and_then(|j| run(&j)));
}

//! Helpers shared by the integration tests: deterministic objects and small store options.

#![allow(dead_code)]

pub mod graph;
pub mod proxy;

use std::sync::atomic::{AtomicU64, Ordering};

use spillway::{
    Blob, BlobStore, ContentKey, Durability, LogStoreOptions, MemStore, Put, StoreStats,
};

/// A container change: section `name` of type `kind`, version 1, holding `bytes`; required
/// and mmap-able data, or (with `required` false) an optional index.
pub fn section<'a>(
    name: &'a str,
    kind: u32,
    required: bool,
    bytes: &'a [u8],
) -> spillway::container::Change<'a> {
    spillway::container::Change::Put(spillway::container::SectionData {
        name,
        kind,
        version: 1,
        required,
        mmap: required,
        index: !required,
        bytes: bytes.into(),
    })
}

/// A deterministic pool (no background thread) over a memory store, with `budget` bytes.
pub fn mem_pool(budget: u64) -> spillway::Pool {
    spillway::Pool::builder()
        .budget(budget)
        .store(std::sync::Arc::new(MemStore::new()))
        .deterministic(true)
        .build()
        .expect("a pool over a memory store")
}

/// An object to store: payload, children and the key they give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obj {
    pub key: ContentKey,
    pub payload: Vec<u8>,
    pub children: Vec<ContentKey>,
}

impl Obj {
    pub fn new(payload: Vec<u8>, children: Vec<ContentKey>) -> Obj {
        Obj {
            key: ContentKey::of(&payload, &children),
            payload,
            children,
        }
    }

    /// An object whose bytes follow from `seed` alone, so another process can rebuild it.
    pub fn generated(seed: u64, len: usize, children: Vec<ContentKey>) -> Obj {
        Obj::new(bytes(seed, len), children)
    }

    pub fn put(&self) -> Put<'_> {
        Put::new(&self.payload, &self.children)
    }

    pub fn blob(&self) -> Blob {
        Blob {
            children: self.children.clone(),
            payload: self.payload.clone(),
        }
    }
}

/// `n` objects of 1000 bytes without children: three fit in a 4 KiB segment.
pub fn objects_of_1000(n: u64) -> Vec<Obj> {
    (0..n)
        .map(|i| Obj::generated(i, 1000, Vec::new()))
        .collect()
}

/// `len` pseudo-random bytes determined by `seed` (splitmix64).
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ len as u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Options that make segments roll and compaction run after a few kilobytes.
/// Options under which a few hundred objects roll segments, checkpoint and compact often.
pub fn busy_opts() -> LogStoreOptions {
    LogStoreOptions::default()
        .segment_size(16 << 10)
        .write_buffer(4096)
        .checkpoint_every(64 << 10)
        .compact_below(0.9)
}

/// Options for crash tests on a simulated file system: small segments, a small write buffer and
/// frequent checkpoints and compaction, so that a short workload crosses every kind of write.
pub fn crash_opts() -> LogStoreOptions {
    LogStoreOptions::default()
        .segment_size(4096)
        .write_buffer(1500)
        .checkpoint_every(6000)
        .compact_below(0.9)
}

pub fn small_opts(segment_size: u64) -> LogStoreOptions {
    LogStoreOptions::default()
        .segment_size(segment_size)
        .write_buffer(2048)
        .compact_below(0.9)
}

/// An iteration count from the environment, for long sweeps.
pub fn env_count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A backend with only the required part of `BlobStore`, over a `MemStore`: it gets named
/// roots, batched reads and its description from the trait's defaults. It counts the objects'
/// payloads it serves (`get` of a key that is not reserved), and records the keys it deletes in
/// the order it is asked to.
#[derive(Debug, Default)]
pub struct Minimal {
    inner: MemStore,
    pub gets: AtomicU64,
    pub deleted: std::sync::Mutex<Vec<ContentKey>>,
}

impl Minimal {
    pub fn payload_reads(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
    }

    /// The keys deleted so far, in order.
    pub fn deleted(&self) -> Vec<ContentKey> {
        self.deleted.lock().expect("deleted keys").clone()
    }
}

impl BlobStore for Minimal {
    fn put_batch(&self, batch: &[Put<'_>]) -> spillway::Result<()> {
        self.inner.put_batch(batch)
    }
    fn get(&self, key: &ContentKey) -> spillway::Result<Option<Blob>> {
        if !key.is_reserved() {
            self.gets.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.get(key)
    }
    fn contains(&self, key: &ContentKey) -> spillway::Result<bool> {
        self.inner.contains(key)
    }
    fn children(&self, key: &ContentKey) -> spillway::Result<Option<Vec<ContentKey>>> {
        self.inner.children(key)
    }
    fn delete(&self, keys: &[ContentKey]) -> spillway::Result<()> {
        self.deleted
            .lock()
            .expect("deleted keys")
            .extend_from_slice(keys);
        self.inner.delete(keys)
    }
    fn keys(&self) -> spillway::Result<Vec<ContentKey>> {
        self.inner.keys()
    }
    fn flush(&self, durability: Durability) -> spillway::Result<()> {
        self.inner.flush(durability)
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

/// A fresh S3 location for one test, `s3://<bucket>/<unique prefix>`, on the server that
/// `.ci/s3-server` starts (`SPILLWAY_S3_URL` names its bucket; the `AWS_*` variables, the
/// endpoint and credentials). `None`, with a message, when run by hand without it; in CI
/// (`CI` set) a missing server is a failure, not a skip.
pub fn s3_location(test: &str) -> Option<String> {
    match std::env::var("SPILLWAY_S3_URL") {
        Ok(base) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            Some(format!(
                "{}/{test}-{}-{nanos}",
                base.trim_end_matches('/'),
                std::process::id()
            ))
        }
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("SPILLWAY_S3_URL is not set: CI must start the S3 test server (.ci/s3-server)")
        }
        Err(_) => {
            eprintln!("skipped {test}: no S3 test server (run `eval \"$(.ci/s3-server)\"` first)");
            None
        }
    }
}

/// Runs `f` on its own thread and fails the test if it does not finish within `limit`: a
/// deadlock shows as a failure naming `what`, not as a hung test run.
pub fn bounded<R: Send + 'static>(
    what: &str,
    limit: std::time::Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => {
            t.join().expect("the bounded thread");
            r
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not finish within {limit:?}: deadlock or livelock")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // The closure panicked: surface its panic.
            match t.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => panic!("{what} ended without a result"),
            }
        }
    }
}

//! spillway's stores as contenders: the log store (with default options), the directory store,
//! the SQLite store, and an S3 prefix with and without a local log-store cache in front of it. The S3 ones need a server:
//! `SPILLWAY_S3_URL` (`s3://BUCKET`) and the `AWS_*` variables, as the tests read them (the
//! harness starts the local test server when they are missing and it can).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use spillway::store::CachedStore;
use spillway::{BlobStore, ContentKey, Durability, LogStore, LogStoreOptions};

use super::{Contender, FlushLevel, get_payload, put_objects};

/// Which spillway store a contender runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The log store (the default): the pool's `dir`.
    Log,
    /// `DirStore`: a file per object.
    Dir,
    /// `SqliteStore`: one database file.
    Sqlite,
    /// `S3Store` straight to the server.
    S3,
    /// `S3Store` behind a `CachedStore` whose local log store can hold the whole data set.
    S3Cached,
}

/// The environment variable naming the S3 bucket (`s3://BUCKET`).
pub const S3_URL_VAR: &str = "SPILLWAY_S3_URL";

/// True if an S3 server is configured for this process.
pub fn s3_configured() -> bool {
    std::env::var_os(S3_URL_VAR).is_some()
}

/// A prefix of its own for one job: the bucket is shared by every job of every run.
fn s3_url(dir: &Path) -> anyhow::Result<String> {
    let base = std::env::var(S3_URL_VAR)
        .map_err(|_| anyhow::anyhow!("{S3_URL_VAR} is not set: no S3 server to measure"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tag = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(format!(
        "{}/bench-{}-{nanos}-{tag}",
        base.trim_end_matches('/'),
        std::process::id()
    ))
}

/// A store opened for a job, and the S3 store behind it (if any), whose requests are counted.
pub struct Opened {
    pub store: Arc<dyn BlobStore>,
    pub remote: Option<Arc<dyn BlobStore>>,
}

impl Opened {
    /// Objects fetched from S3 so far (0 for a local store).
    pub fn remote_gets(&self) -> u64 {
        self.remote.as_ref().map_or(0, |r| r.stats().gets)
    }
}

/// Opens `backend` in the empty directory `dir` (a fresh prefix for S3). A log store (also the
/// local cache in front of S3) opens with its defaults, or `for_pool` with the options a pool
/// built with `.dir()` gives it ([`LogStoreOptions::for_pool`]: reads by `pread`, so that the
/// page cache stays outside the resident set the pool rows report).
pub fn open_store(backend: Backend, dir: &Path, for_pool: bool) -> anyhow::Result<Opened> {
    let log = |dir: &Path| {
        let opts = if for_pool {
            LogStoreOptions::for_pool()
        } else {
            LogStoreOptions::default()
        };
        LogStore::open_with(dir, opts)
    };
    std::fs::create_dir_all(dir)?;
    let s3 = || -> anyhow::Result<Arc<dyn BlobStore>> {
        Ok(Arc::new(spillway::S3Store::open(
            &s3_url(dir)?,
            spillway::S3StoreOptions::default(),
        )?))
    };
    let local = |store: Arc<dyn BlobStore>| Opened {
        store,
        remote: None,
    };
    Ok(match backend {
        Backend::Log => local(Arc::new(log(dir)?)),
        Backend::Dir => local(Arc::new(spillway::DirStore::open(dir)?)),
        Backend::Sqlite => local(Arc::new(spillway::SqliteStore::open(
            dir.join("store.sqlite"),
        )?)),
        Backend::S3 => {
            let remote = s3()?;
            Opened {
                store: Arc::clone(&remote),
                remote: Some(remote),
            }
        }
        Backend::S3Cached => {
            let remote = s3()?;
            let cache = log(&dir.join("cache"))?;
            Opened {
                store: Arc::new(CachedStore::open(cache, Arc::clone(&remote), 64 << 30)?),
                remote: Some(remote),
            }
        }
    })
}

/// A key-value contender over any of spillway's stores.
pub struct StoreContender {
    opened: Opened,
}

impl StoreContender {
    pub fn open(backend: Backend, dir: &Path) -> anyhow::Result<StoreContender> {
        Ok(StoreContender {
            opened: open_store(backend, dir, false)?,
        })
    }
}

impl Contender for StoreContender {
    fn put_batch(&mut self, keys: &[ContentKey], payloads: &[&[u8]]) -> anyhow::Result<()> {
        put_objects(self.opened.store.as_ref(), keys, payloads)
    }

    fn get(&mut self, key: &ContentKey) -> anyhow::Result<Option<Vec<u8>>> {
        get_payload(self.opened.store.as_ref(), key)
    }

    fn flush(&mut self, level: FlushLevel) -> anyhow::Result<()> {
        let level = match level {
            FlushLevel::Written => Durability::Written,
            FlushLevel::Durable => Durability::Durable,
        };
        Ok(self.opened.store.flush(level)?)
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        // Dropping the last handle closes the store; a clean close writes what it must first.
        self.opened.store.flush(Durability::Written)?;
        Ok(())
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        let s = self.opened.store.stats();
        BTreeMap::from([
            ("syncs".to_string(), s.syncs),
            ("bytes_written".to_string(), s.bytes_written),
            ("disk_bytes".to_string(), s.disk_bytes),
            ("segments".to_string(), s.segments),
            ("remote_gets".to_string(), self.opened.remote_gets()),
        ])
    }
}

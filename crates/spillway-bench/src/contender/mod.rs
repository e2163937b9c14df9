//! Contenders: the stores the harness measures, behind one small trait.
//!
//! Every contender is opened in a fresh directory of its own inside a child process, so its peak
//! RSS and its files are its own. The harness hands it objects already named by their
//! [`ContentKey`] (hashing is timed as part of the put, the same for everyone); a peer that names
//! objects its own way keeps a map from our key to its own and pays for that map, as a user would.
//!
//! Adding a contender: a file here implementing [`Contender`], a variant of [`ContenderId`], and
//! an arm in [`open`]. Peers run as their own executables (the projects under `bench-peers/`,
//! each with its own lock file, since their dependency graphs cannot share this workspace's)
//! behind the same child protocol: a job as JSON in, one line of measurement JSON out.

use std::collections::BTreeMap;
use std::path::Path;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use spillway::ContentKey;

mod spillway_mem;
pub mod spillway_pool;
pub mod spillway_stores;

pub use spillway_stores::Backend;

/// How far the flush at the end of the put phase must carry the writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlushLevel {
    /// Handed to the operating system: survives a crash of the process.
    Written,
    /// On stable storage: survives power loss.
    Durable,
}

/// A store under test.
pub trait Contender {
    /// Stores `payloads[i]` under `keys[i]`. The two slices have the same length.
    fn put_batch(&mut self, keys: &[ContentKey], payloads: &[&[u8]]) -> anyhow::Result<()>;

    /// Reads the payload stored under `key`.
    fn get(&mut self, key: &ContentKey) -> anyhow::Result<Option<Vec<u8>>>;

    /// Returns once every put so far has reached `level`.
    fn flush(&mut self, level: FlushLevel) -> anyhow::Result<()>;

    /// Closes the store the way a program shutting down cleanly would.
    fn close(self: Box<Self>) -> anyhow::Result<()>;

    /// Counters worth showing next to the timings (syncs made, bytes written, ...).
    fn counters(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}

/// The contenders the harness knows, each with the durability level it is measured at.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ContenderId {
    /// spillway's `LogStore`, flushed to `Durability::Written` after the puts.
    SpillwayLogWritten,
    /// spillway's `LogStore`, flushed to `Durability::Durable` after the puts.
    SpillwayLogDurable,
    /// spillway's `MemStore`: no I/O at all, the reference for the harness's own overhead.
    SpillwayMem,
    /// spillway's `DirStore` (a file per object), flushed to `Written`.
    SpillwayDir,
    /// spillway's `SqliteStore`, flushed to `Written`.
    SpillwaySqlite,
    /// spillway's `S3Store` against the local S3 server, flushed to `Durable` (in the bucket).
    SpillwayS3,
    /// The same behind a `CachedStore` (a local log store), flushed to `Durable` (in the bucket).
    SpillwayS3Cached,
    /// spillway's `Pool` with S3-FIFO eviction over its default `LogStore`.
    SpillwayPoolS3fifo,
    /// spillway's `Pool` with LRU eviction.
    SpillwayPoolLru,
    /// The S3-FIFO pool over a `DirStore`.
    SpillwayPoolDir,
    /// The S3-FIFO pool over a `SqliteStore`.
    SpillwayPoolSqlite,
    /// The S3-FIFO pool over an `S3Store`.
    SpillwayPoolS3,
    /// The S3-FIFO pool over an `S3Store` behind a `CachedStore`.
    SpillwayPoolS3Cached,
    /// `pagable` 0.3.3 with its SQLite storage (no journal, no sync).
    PagableSqlite,
    /// `file_backed` 0.6 `FBPool` over `FBStore` (a file per item), raw codec.
    FileBackedFbstore,
    /// The same with the crate's shipped bincode codec.
    FileBackedFbstoreBincode,
    /// `file_backed` 0.6 `FBPool` over `RedbStore`, raw codec.
    FileBackedRedb,
    /// `foyer` 0.22 hybrid cache: memory budget plus a disk device, default settings.
    Foyer,
    /// The same, with the write buffers foyer's documentation names as the limit on what it
    /// takes (`buffer_pool_size`, `submit_queue_size_threshold`) sized to the data, and two
    /// flushers, so that a bulk load drops as little as it allows.
    FoyerTuned,
    /// SQLite through `rusqlite`: WAL, `synchronous=NORMAL`, a transaction per batch.
    Sqlite,
}

impl ContenderId {
    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            ContenderId::SpillwayLogWritten => "spillway-log-written",
            ContenderId::SpillwayLogDurable => "spillway-log-durable",
            ContenderId::SpillwayMem => "spillway-mem",
            ContenderId::SpillwayDir => "spillway-dir",
            ContenderId::SpillwaySqlite => "spillway-sqlite",
            ContenderId::SpillwayS3 => "spillway-s3",
            ContenderId::SpillwayS3Cached => "spillway-s3-cached",
            ContenderId::SpillwayPoolS3fifo => "spillway-pool-s3fifo",
            ContenderId::SpillwayPoolLru => "spillway-pool-lru",
            ContenderId::SpillwayPoolDir => "spillway-pool-dir",
            ContenderId::SpillwayPoolSqlite => "spillway-pool-sqlite",
            ContenderId::SpillwayPoolS3 => "spillway-pool-s3",
            ContenderId::SpillwayPoolS3Cached => "spillway-pool-s3-cached",
            ContenderId::PagableSqlite => "pagable-sqlite",
            ContenderId::FileBackedFbstore => "file-backed-fbstore",
            ContenderId::FileBackedFbstoreBincode => "file-backed-fbstore-bincode",
            ContenderId::FileBackedRedb => "file-backed-redb",
            ContenderId::Foyer => "foyer",
            ContenderId::FoyerTuned => "foyer-tuned",
            ContenderId::Sqlite => "sqlite",
        }
    }

    /// The contender named `name`.
    pub fn from_name(name: &str) -> Option<ContenderId> {
        ContenderId::all().into_iter().find(|c| c.name() == name)
    }

    /// The level the put phase ends with (spillway's own stores).
    pub fn flush_level(self) -> FlushLevel {
        match self {
            ContenderId::SpillwayLogDurable
            | ContenderId::SpillwayS3
            | ContenderId::SpillwayS3Cached => FlushLevel::Durable,
            _ => FlushLevel::Written,
        }
    }

    /// What the end of the put phase guarantees for this contender, for the tables.
    pub fn level_label(self) -> &'static str {
        match self {
            ContenderId::SpillwayLogWritten
            | ContenderId::SpillwayDir
            | ContenderId::SpillwaySqlite => "Written",
            ContenderId::SpillwayS3 | ContenderId::SpillwayS3Cached => "Durable (in the bucket)",
            ContenderId::SpillwayLogDurable => "Durable",
            ContenderId::SpillwayMem => "none (memory)",
            ContenderId::SpillwayPoolS3fifo
            | ContenderId::SpillwayPoolLru
            | ContenderId::SpillwayPoolDir
            | ContenderId::SpillwayPoolSqlite
            | ContenderId::SpillwayPoolS3
            | ContenderId::SpillwayPoolS3Cached => "Applied",
            ContenderId::PagableSqlite => "written (no journal, no sync)",
            ContenderId::FileBackedFbstore
            | ContenderId::FileBackedFbstoreBincode
            | ContenderId::FileBackedRedb => "evicted items written; resident ones in memory only",
            ContenderId::Foyer | ContenderId::FoyerTuned => {
                "cache: evicted entries written, some dropped"
            }
            ContenderId::Sqlite => "committed (WAL, synchronous=NORMAL)",
        }
    }

    /// True if the contender's put phase ends with a sync to stable storage (`fdatasync`), so
    /// that its puts are read against the disk's write + sync bandwidth, not its plain writes.
    pub fn put_ends_with_sync(self) -> bool {
        matches!(self, ContenderId::SpillwayLogDurable)
    }

    /// True if the contender writes to disk, so that comparing it with disk limits makes sense.
    pub fn uses_disk(self) -> bool {
        !matches!(
            self,
            ContenderId::SpillwayMem | ContenderId::SpillwayS3 | ContenderId::SpillwayS3Cached
        )
    }

    /// The store a spillway contender runs on.
    pub fn backend(self) -> Backend {
        match self {
            ContenderId::SpillwayDir | ContenderId::SpillwayPoolDir => Backend::Dir,
            ContenderId::SpillwaySqlite | ContenderId::SpillwayPoolSqlite => Backend::Sqlite,
            ContenderId::SpillwayS3 | ContenderId::SpillwayPoolS3 => Backend::S3,
            ContenderId::SpillwayS3Cached | ContenderId::SpillwayPoolS3Cached => Backend::S3Cached,
            _ => Backend::Log,
        }
    }

    /// True if the contender needs the S3 server.
    pub fn needs_s3(self) -> bool {
        matches!(self.backend(), Backend::S3 | Backend::S3Cached)
    }

    /// The peer project (under `bench-peers/`) whose executable runs this contender, if any.
    pub fn peer_project(self) -> Option<&'static str> {
        match self {
            ContenderId::PagableSqlite => Some("pagable"),
            ContenderId::FileBackedFbstore
            | ContenderId::FileBackedFbstoreBincode
            | ContenderId::FileBackedRedb => Some("file_backed"),
            ContenderId::Foyer | ContenderId::FoyerTuned => Some("foyer"),
            ContenderId::Sqlite => Some("sqlite"),
            _ => None,
        }
    }

    /// True for spillway's own contenders.
    pub fn is_spillway(self) -> bool {
        self.peer_project().is_none()
    }

    /// All contenders, in table order.
    pub fn all() -> Vec<ContenderId> {
        ContenderId::value_variants().to_vec()
    }
}

/// Opens contender `id` in the empty directory `dir`.
pub fn open(id: ContenderId, dir: &Path) -> anyhow::Result<Box<dyn Contender>> {
    Ok(match id {
        ContenderId::SpillwayMem => Box::new(spillway_mem::MemContender::new()),
        ContenderId::SpillwayLogWritten
        | ContenderId::SpillwayLogDurable
        | ContenderId::SpillwayDir
        | ContenderId::SpillwaySqlite
        | ContenderId::SpillwayS3
        | ContenderId::SpillwayS3Cached => {
            Box::new(spillway_stores::StoreContender::open(id.backend(), dir)?)
        }
        other => anyhow::bail!(
            "{} is not a key-value contender of this process",
            other.name()
        ),
    })
}

/// Puts `payloads` under `keys` (objects without children) into any spillway store.
pub(crate) fn put_objects(
    store: &dyn spillway::BlobStore,
    keys: &[spillway::ContentKey],
    payloads: &[&[u8]],
) -> anyhow::Result<()> {
    let puts: Vec<spillway::Put<'_>> = keys
        .iter()
        .zip(payloads)
        .map(|(key, payload)| spillway::Put {
            key: *key,
            children: &[],
            payload,
        })
        .collect();
    Ok(store.put_batch(&puts)?)
}

/// The payload stored under `key` in any spillway store.
pub(crate) fn get_payload(
    store: &dyn spillway::BlobStore,
    key: &spillway::ContentKey,
) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(store.get(key)?.map(|blob| blob.payload))
}

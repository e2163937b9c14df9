//! Stores: where paged-out objects live.
//!
//! A store maps [`ContentKey`]s to objects (payload bytes plus the keys of their children) behind
//! the small, synchronous, object-safe [`BlobStore`] trait. Backends, one per file:
//!
//! - [`LogStore`]: the embedded default, an append-only crash-safe segment log in a directory,
//!   whose own write path runs on the [write pipeline](crate::write) (its `flush(level)` is a
//!   wait on the pipeline's watermarks, with group commit);
//! - [`DirStore`]: one file per object in sharded directories, each with a checksummed
//!   header; durable by syncing the files written and their directories; graphs kept aside by
//!   hard links ([`DirStore::persist`]) and brought back after a restart
//!   ([`DirStore::register`]);
//! - `SqliteStore` (feature `sqlite`, off by default): one SQLite database file in WAL mode,
//!   whose durable flush is a synced commit;
//! - [`MemStore`]: in memory, for tests and as a fast reference.
//!
//! Which failure each level survives, per backend:
//!
//! | backend | `Applied` | `Written` | `Durable` |
//! |---|---|---|---|
//! | `LogStore` | in the write buffer: nothing | in the segment file: a process crash | `fdatasync`ed: a power loss |
//! | `DirStore` | = `Written` | renamed into place: a process crash | files and directories synced: a power loss |
//! | `SqliteStore` | = `Written` | committed to the `-wal` file: a process crash | a synced commit: a power loss |
//! | `MemStore` | nothing survives the process | | |
//!
//! [`StoreWriter`] puts any other store's writes on the [write pipeline](crate::write): `put`
//! plus `wait(level)` as the durability API, with group commit for many concurrent writers.
//!
//! Contract every backend keeps (checked for each by the same tests):
//! - writes are visible to readers as soon as `put_batch` returns ([`Durability::Applied`]),
//!   before any flush;
//! - `flush(level)` returns once every write made before it has reached `level`;
//! - the store is content-addressed: putting a key that is already stored writes nothing;
//! - a corrupted record is reported as an error naming where it is, never returned as data.

use std::fmt;

use crate::error::{Error, Result};
use crate::key::ContentKey;

mod cached;
pub mod check;
pub mod default_roots;
pub mod dir;
pub(crate) mod lock;
pub mod log;
mod mem;
pub mod pack;
mod roots_file;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod writer;

pub use crate::format::roots::MAX_ROOT_NAME;
pub use cached::{CacheStats, CachedStore};
pub use check::CheckReport;
pub use dir::{DirStore, DirStoreOptions, KeptGraph};
pub use log::{LogStore, LogStoreOptions, RecoveryReport};
pub use mem::MemStore;
pub use pack::{ExportReport, ImportReport, PackReport, PackStore, export_pack, import_pack};
#[cfg(feature = "s3")]
pub use s3::{S3Store, S3StoreOptions};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SqliteStoreOptions};
pub use writer::{PutDelta, StoreFlusher, StoreWrite, StoreWriter};

/// The durability levels, from the write pipeline: for a store, `Applied` is in the store's
/// memory and visible to its readers, `Written` is handed to the OS, `Durable` is synced.
pub use spillway_write::Durability;

/// An object as stored: its payload and the keys of the objects it refers to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Blob {
    /// Keys of the child objects, in the order the payload refers to them.
    pub children: Vec<ContentKey>,
    /// The serialized value.
    pub payload: Vec<u8>,
}

impl Blob {
    /// The content key of this object.
    pub fn key(&self) -> ContentKey {
        ContentKey::of(&self.payload, &self.children)
    }
}

/// One object to store, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct Put<'a> {
    /// The object's key; must equal `ContentKey::of(payload, children)` (checked in debug builds
    /// and by `verify`).
    pub key: ContentKey,
    /// Child keys.
    pub children: &'a [ContentKey],
    /// Payload bytes.
    pub payload: &'a [u8],
}

impl<'a> Put<'a> {
    /// A put of `payload` with `children`, computing its key.
    pub fn new(payload: &'a [u8], children: &'a [ContentKey]) -> Put<'a> {
        Put {
            key: ContentKey::of(payload, children),
            children,
            payload,
        }
    }

    /// `Ok` if a store whose payloads hold at most `max_payload` bytes can take this put (and
    /// its child list is within the record format's limit), else [`Error::TooLarge`].
    pub(crate) fn check_limits(&self, max_payload: usize) -> Result<()> {
        use crate::format::record::MAX_CHILDREN;
        use crate::key::KEY_LEN;
        if self.payload.len() > max_payload {
            return Err(Error::TooLarge {
                what: "object payload",
                len: self.payload.len() as u64,
                limit: max_payload as u64,
            });
        }
        if self.children.len() > MAX_CHILDREN as usize {
            return Err(Error::TooLarge {
                what: "child key list",
                len: (self.children.len() * KEY_LEN) as u64,
                limit: u64::from(MAX_CHILDREN) * KEY_LEN as u64,
            });
        }
        debug_assert!(
            self.key.is_reserved() || self.key == ContentKey::of(self.payload, self.children),
            "key of a put"
        );
        Ok(())
    }
}

/// Counters a store keeps; cheap to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Live objects.
    pub objects: u64,
    /// Bytes of live records (headers included).
    pub live_bytes: u64,
    /// Bytes the store occupies on its medium (live and dead).
    pub disk_bytes: u64,
    /// Objects written (puts of keys already stored are not counted).
    pub puts: u64,
    /// Puts skipped because the key was already stored.
    pub dedup_hits: u64,
    /// Lookups served.
    pub gets: u64,
    /// Objects deleted.
    pub deletes: u64,
    /// Bytes handed to the OS.
    pub bytes_written: u64,
    /// `fsync`/`fdatasync` calls made.
    pub syncs: u64,
    /// Segment files.
    pub segments: u64,
    /// Memory the store's in-memory index takes (key table and locations), in bytes; 0 for a
    /// store that keeps none (SQLite's and S3's are the database's and the service's).
    pub index_bytes: u64,
}

/// A content-addressed object store.
///
/// Small, synchronous and object-safe: `Arc<dyn BlobStore>` is how the runtime holds a store.
///
/// A backend implements the required part: [`put_batch`](Self::put_batch),
/// [`get`](Self::get), [`contains`](Self::contains), [`children`](Self::children),
/// [`delete`](Self::delete), [`keys`](Self::keys), [`flush`](Self::flush) and
/// [`stats`](Self::stats). The rest has defaults it may override:
/// - batched reads, [`get_many`](Self::get_many) (one `get` per key by default);
/// - **named roots**, [`roots`](Self::roots), [`root`](Self::root) and
///   [`set_root`](Self::set_root): by default kept in two reserved records of the store
///   itself, written alternately, so that a crash while one is rewritten leaves the other (see
///   [`default_roots`]). A backend with a better place overrides them (the log store keeps a
///   `ROOTS` file; a shared object store would use conditional puts).
///
/// Reserved keys ([`ContentKey::is_reserved`]) hold a store's own records, not objects:
/// [`keys`](Self::keys) may list them, and garbage collection and verification skip them.
///
/// `tests/store_conformance.rs` runs the same contract tests over every backend of this crate
/// and over a backend that implements only the required part.
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores a batch of objects. Keys already stored are skipped. On return the objects are
    /// visible to readers ([`Durability::Applied`]); call [`flush`](Self::flush) for more.
    fn put_batch(&self, batch: &[Put<'_>]) -> Result<()>;

    /// Reads an object; `Ok(None)` if the key is not stored.
    fn get(&self, key: &ContentKey) -> Result<Option<Blob>>;

    /// True if the key is stored.
    fn contains(&self, key: &ContentKey) -> Result<bool>;

    /// The keys of an object's children, without its payload; `Ok(None)` if the key is not
    /// stored. Garbage collection and graph walks use it: a backend that keeps child keys apart
    /// from payloads (as records do) answers without reading or copying the payload.
    fn children(&self, key: &ContentKey) -> Result<Option<Vec<ContentKey>>>;

    /// Deletes objects; keys not stored are ignored.
    fn delete(&self, keys: &[ContentKey]) -> Result<()>;

    /// Every stored key, in no particular order (a snapshot).
    fn keys(&self) -> Result<Vec<ContentKey>>;

    /// Returns once every write made before the call has reached `durability`. Concurrent
    /// callers share one sync (group commit).
    fn flush(&self, durability: Durability) -> Result<()>;

    /// Current counters.
    fn stats(&self) -> StoreStats;

    /// A short description for messages, such as `log store /data/cache`.
    fn describe(&self) -> String {
        format!("{self:?}")
    }

    /// Why a pool cannot use this store's values, for a store written by a format version
    /// whose values carry no type tag (see `docs/FORMAT.md`, "Value payload"): a pool refuses
    /// to open over it with this error. `None` (the default) for a store whose format has the
    /// tag, or that does not record the format of its values.
    fn untagged_values(&self) -> Option<Error> {
        None
    }

    /// Reads several objects: one answer per key, in order (`None` where a key is not stored).
    /// A remote backend overrides it to issue the reads concurrently.
    fn get_many(&self, keys: &[ContentKey]) -> Result<Vec<Option<Blob>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Which of several keys are stored: one answer per key, in order. The pool asks once per
    /// page-out batch (to skip what is stored already); a remote backend overrides it to ask
    /// concurrently rather than one round trip after another.
    fn contains_many(&self, keys: &[ContentKey]) -> Result<Vec<bool>> {
        keys.iter().map(|k| self.contains(k)).collect()
    }

    /// About how many bytes a pool's page-out groups into one [`put_batch`](Self::put_batch):
    /// it sends a batch once its objects reach this many, counting each one's payload, the rest
    /// of its record (header and child keys) and its place in the batch. A batch is held in
    /// memory outside the budget while it is written, so this bounds what a page-out holds
    /// beyond the values, give or take its last object; a backend that pays per batch (a
    /// transaction, a round of concurrent uploads) wants it large. The default is 1 MiB; the
    /// log store asks for 64 KiB (see [`LogStore`]), and a [`CachedStore`] for what its local
    /// store asks.
    fn batch_bytes(&self) -> usize {
        1 << 20
    }

    /// Stores one object.
    fn put(&self, put: Put<'_>) -> Result<()> {
        self.put_batch(std::slice::from_ref(&put))
    }

    /// The named roots, sorted by name: names that keep graphs alive across restarts and
    /// garbage collection.
    fn roots(&self) -> Result<Vec<(String, ContentKey)>> {
        default_roots::roots(self)
    }

    /// The key of the named root `name`, if there is one. The default looks it up in
    /// [`roots`](Self::roots); the crate's backends find it without listing the others (in
    /// the table they keep in memory, or with a query by name).
    fn root(&self, name: &str) -> Result<Option<ContentKey>> {
        Ok(self
            .roots()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k))
    }

    /// Sets (`Some`) or removes (`None`) a named root. The store is made durable first, so a
    /// root never outlives the data it names; the change itself is durable on return. A key
    /// that is not stored is [`Error::NotFound`]; a name must be 1 to
    /// [`MAX_ROOT_NAME`] bytes long.
    fn set_root(&self, name: &str, key: Option<ContentKey>) -> Result<()> {
        default_roots::set_root(self, name, key)
    }
}

/// For [`BlobStore::untagged_values`]: the refusal of a store (or pack), `what`, whose format
/// version `found` is older than `tagged_since`, the first whose values carry a type tag;
/// `current` is the version this build writes, `still_reads` what still reads it as blobs.
pub(crate) fn untagged_before(
    what: String,
    found: u32,
    tagged_since: u32,
    current: u32,
    still_reads: &str,
) -> Option<Error> {
    (found < tagged_since).then(|| Error::OldFormat {
        what,
        found,
        current,
        detail: format!(
            "its values were stored before values carried a type tag (version {tagged_since}), \
             so a pool cannot check their types. It still reads as blobs ({still_reads}); to \
             use its values in a pool, read them with the spillway release that wrote it and \
             insert them into a pool over a new store"
        ),
    })
}

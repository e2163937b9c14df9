//! [`DirStore`]: one file per object, in sharded directories.
//!
//! # Layout
//! A store directory holds `DIRSTORE` (the marker), `LOCK`, `ROOTS` (the named roots, in the
//! log store's roots format), `CLEAN` (present only while no writer has the store open, after
//! a clean close), `objects/` and `kept/`. An object with key `k` (32 hex digits) lives in
//! `objects/<first 2 digits>/<other 30 digits>`; a kept graph `name` in `kept/<name>/`, as hard
//! links named by the objects' keys beside its `MANIFEST`. `docs/FORMAT.md` gives every byte.
//!
//! # Write path and durability
//! A put writes the object file under a temporary name (`<30 digits>.tmp`) beside its final
//! name and renames it: a reader, or a process that finds the store after a crash, sees a whole
//! object file or none. From then on it is visible to readers and handed to the OS: put_batch
//! returns at [`Durability::Written`] (which is also `Applied`); a process crash loses nothing.
//! `flush(Durable)` `fdatasync`s every file written since the last durable flush, then `fsync`s
//! every directory whose entries changed (shards with new or removed files, `objects/` when a
//! shard was created): nothing else, no whole-file-system sync. Concurrent durable flushes
//! share one round of syncs (group commit).
//!
//! # After a power loss
//! Between a put and the next durable flush, a power loss can leave an object's name durable
//! and its bytes not (a file cut short or zero-filled). Such a file is never returned as data:
//! every read checks the file's length and checksums. To keep content addressing from
//! skipping the put of an object whose file is torn, the store trusts the files it finds on
//! open only after a clean close (the `CLEAN` file); otherwise, the first put of a key already
//! stored checks the file it would skip and writes it again if it does not check out.
//!
//! # Invariants
//! - The index maps every stored key to its file's length; a key is in the index only once its
//!   file has its final name, and leaves it once the file is removed.
//! - Writes (puts, deletes, register) are serialised by the writer lock; lock order: the
//!   durable lock, then the writer lock, then the index.
//! - The store only ever removes files it creates: temporary files left by a crash, object
//!   files on delete, a kept graph's links and manifest. Anything else found in its directory
//!   is left alone and reported ([`DirStore::open_report`]).
//! - After a failed sync the store is poisoned: writes fail with [`Error::Poisoned`], reads go
//!   on. A failed write before the rename changes nothing and is an error, not poison.

use std::any::Any;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::format::object::{self, MAX_OBJECT_FILE_LEN, OBJECT_HEADER_LEN};
use crate::format::record::MAX_PAYLOAD_LEN;
use crate::key::{ContentKey, KeyMap};
use crate::store::{Blob, BlobStore, Durability, Put, StoreStats};
use crate::vfs::{OpenMode, OsFs, Vfs};

mod check;
mod kept;
mod open;

pub use kept::{KeptGraph, MAX_KEPT_NAME};
pub use open::OpenReport;

/// Name of the marker file that makes a directory a directory store (what tools look for to
/// tell it from a log store's directory).
pub const MARKER_FILE: &str = crate::format::object::DIR_MARKER_FILE;
/// Name of the directory of object files.
pub const OBJECTS_DIR: &str = "objects";
/// Name of the directory of kept graphs.
pub const KEPT_DIR: &str = "kept";
/// Name of the file that marks a clean close.
pub const CLEAN_FILE: &str = "CLEAN";
/// Name of the lock file.
pub const LOCK_FILE: &str = "LOCK";
/// Suffix of an object file being written.
pub const TMP_SUFFIX: &str = ".tmp";

/// Settings of a [`DirStore`]. `DirStoreOptions::default()` suits most uses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DirStoreOptions {
    /// Open without the write lock; every write fails with [`Error::ReadOnly`], and nothing in
    /// the directory is changed (a crash's temporary files are reported, not removed).
    pub read_only: bool,
    /// Create the store if the directory does not exist or is empty (default `true`).
    pub create: bool,
}

impl Default for DirStoreOptions {
    fn default() -> Self {
        DirStoreOptions {
            read_only: false,
            create: true,
        }
    }
}

impl DirStoreOptions {
    /// Read-only access.
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// Whether a missing store is created.
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }
}

/// What the index knows of a stored object.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Length of its file.
    len: u64,
    /// Known whole: written by this process, read back whole, or found after a clean close.
    trusted: bool,
}

/// What the writer lock guards: the shard directories known to exist, and what the next
/// durable flush must sync.
#[derive(Debug)]
struct Pending {
    shards: Vec<bool>,
    files: Vec<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            shards: vec![false; 256],
            files: Vec::new(),
            dirs: BTreeSet::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    puts: AtomicU64,
    dedup_hits: AtomicU64,
    gets: AtomicU64,
    deletes: AtomicU64,
    bytes_written: AtomicU64,
    syncs: AtomicU64,
    live_bytes: AtomicU64,
}

/// A store of one file per object in a directory: simple, inspectable with ordinary tools,
/// and able to keep a graph aside by hard links ([`persist`](DirStore::persist)) and bring it
/// back after a restart ([`register`](DirStore::register)).
pub struct DirStore {
    dir: PathBuf,
    /// The format version in the store's marker.
    format_version: u32,
    vfs: Arc<dyn Vfs>,
    read_only: bool,
    index: RwLock<KeyMap<Entry>>,
    writer: Mutex<Pending>,
    /// Writes made (bumped under the writer lock).
    written: AtomicU64,
    /// Writes known durable; held while a durable flush syncs.
    durable: Mutex<u64>,
    poison: RwLock<Option<Arc<Error>>>,
    counters: Counters,
    roots: crate::store::roots_file::RootsFile,
    report: OpenReport,
    closed: AtomicBool,
    _lock: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for DirStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirStore")
            .field("dir", &self.dir)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// The two halves of a key's hex form: the shard directory and the file name.
fn split_hex(key: &ContentKey) -> (String, String) {
    let hex = key.to_string();
    (hex[..2].to_string(), hex[2..].to_string())
}

/// True if `s` is `len` lowercase hexadecimal digits, as the store names its files.
pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl DirStore {
    /// Opens (creating if needed) the store in `dir` on the real file system.
    pub fn open(dir: impl AsRef<Path>) -> Result<DirStore> {
        DirStore::open_with(dir, DirStoreOptions::default())
    }

    /// Opens the store in `dir` with `opts`.
    pub fn open_with(dir: impl AsRef<Path>, opts: DirStoreOptions) -> Result<DirStore> {
        DirStore::open_vfs(Arc::new(OsFs), dir.as_ref(), opts)
    }

    /// Opens the store in `dir` on the given file system (tests pass a simulated one, which
    /// fails on demand and keeps what a crash would leave). Public with the `testing` feature.
    #[cfg(feature = "testing")]
    pub fn open_on(vfs: Arc<dyn Vfs>, dir: &Path, opts: DirStoreOptions) -> Result<DirStore> {
        DirStore::open_vfs(vfs, dir, opts)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The format version of the store, from its marker: this build's for a store it created.
    /// A version 1 store reads and writes as blobs like any other, but holds values without a
    /// type tag, which a pool refuses (see [`BlobStore::untagged_values`]).
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// What opening found: temporary files of a crash removed, files the store did not create.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The failure that poisoned the store, if any.
    pub fn poisoned(&self) -> Option<Arc<Error>> {
        self.poison.read().clone()
    }

    /// The path of the object file of `key`.
    pub fn object_path(&self, key: &ContentKey) -> PathBuf {
        let (shard, name) = split_hex(key);
        self.dir.join(OBJECTS_DIR).join(shard).join(name)
    }

    /// Flushes everything durably, marks the store as closed cleanly and releases the lock.
    /// Dropping the store does the same, logging any failure.
    pub fn close(self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&self) -> Result<()> {
        if self.read_only || self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.writable()?;
        self.flush(Durability::Durable)?;
        // The next writer may trust every file it finds: all of them are durable and whole.
        let clean = self.dir.join(CLEAN_FILE);
        self.vfs
            .open(&clean, OpenMode::Create)
            .and_then(|f| f.sync_data())
            .and_then(|()| self.vfs.sync_dir(&self.dir))
            .map_err(|e| Error::io("create", clean, e))
    }

    /// Refuses writes on a read-only or poisoned store.
    fn writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly {
                path: self.dir.clone(),
            });
        }
        if let Some(cause) = self.poison.read().clone() {
            return Err(Error::Poisoned {
                path: self.dir.clone(),
                cause,
            });
        }
        Ok(())
    }

    /// Records a failed sync: the store refuses writes from now on.
    fn poison(&self, e: Error) -> Error {
        let cause = Arc::new(e);
        let mut p = self.poison.write();
        if p.is_none() {
            tracing::error!(store = %self.dir.display(), error = %cause, "the directory store refuses writes from now on");
            *p = Some(Arc::clone(&cause));
        }
        Error::Poisoned {
            path: self.dir.clone(),
            cause,
        }
    }

    /// Creates the shard directory of `key` if this process has not seen it yet.
    fn shard_dir(&self, pending: &mut Pending, key: &ContentKey) -> Result<PathBuf> {
        let (shard, _) = split_hex(key);
        let objects = self.dir.join(OBJECTS_DIR);
        let path = objects.join(shard);
        let i = usize::from(key.as_bytes()[0]);
        if !pending.shards[i] {
            self.vfs
                .create_dir_all(&path)
                .map_err(|e| Error::io("create directory", &path, e))?;
            pending.shards[i] = true;
            pending.dirs.insert(objects);
        }
        Ok(path)
    }

    /// Writes the object file of `p` under a temporary name and renames it into place.
    fn write_object(&self, pending: &mut Pending, p: &Put<'_>) -> Result<u64> {
        let bytes = object::encode(&p.key, p.children, p.payload);
        let shard = self.shard_dir(pending, &p.key)?;
        let (_, name) = split_hex(&p.key);
        let tmp = shard.join(format!("{name}{TMP_SUFFIX}"));
        let dst = shard.join(name);
        let written = self
            .vfs
            .open(&tmp, OpenMode::Create)
            .and_then(|f| f.write_at(&bytes, 0))
            .map_err(|e| Error::io("write", &tmp, e))
            .and_then(|()| {
                self.vfs
                    .rename(&tmp, &dst)
                    .map_err(|e| Error::io("rename", &tmp, e))
            });
        if let Err(e) = written {
            // Nothing changed but the temporary file (a full disk, say): remove it and report.
            let _ = self.vfs.remove_file(&tmp);
            return Err(e);
        }
        pending.files.push(dst);
        pending.dirs.insert(shard);
        Ok(bytes.len() as u64)
    }

    /// Reads and checks the object file of `key`; `None` if there is none.
    fn read_object(&self, key: &ContentKey) -> Result<Option<Blob>> {
        let path = self.object_path(key);
        let f = match self.vfs.open(&path, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let len = f.len().map_err(|e| Error::io("read", &path, e))?;
        if len > MAX_OBJECT_FILE_LEN {
            return Err(Error::Corrupted {
                what: "object file",
                location: path.display().to_string(),
                detail: format!(
                    "{len} bytes, more than any object file holds ({MAX_OBJECT_FILE_LEN})"
                ),
            });
        }
        let mut buf = vec![0u8; len as usize];
        f.read_at(&mut buf, 0)
            .map_err(|e| Error::io("read", &path, e))?;
        let (head, children, payload) =
            object::decode(&buf).map_err(|e| e.at("object file", path.display().to_string()))?;
        check_key(&path, &head.key, key)?;
        Ok(Some(Blob {
            children,
            payload: payload.to_vec(),
        }))
    }

    /// Reads and checks the header and child keys of `key`'s object file, not its payload.
    fn read_children(&self, key: &ContentKey) -> Result<Option<Vec<ContentKey>>> {
        let path = self.object_path(key);
        let f = match self.vfs.open(&path, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let at = |e: crate::format::DecodeError| e.at("object file", path.display().to_string());
        let len = f.len().map_err(|e| Error::io("read", &path, e))?;
        let mut header = [0u8; OBJECT_HEADER_LEN];
        if len < OBJECT_HEADER_LEN as u64 {
            return Err(at(crate::format::DecodeError::Truncated {
                needed: OBJECT_HEADER_LEN as u64,
                available: len,
            }));
        }
        f.read_at(&mut header, 0)
            .map_err(|e| Error::io("read", &path, e))?;
        let head = object::decode_header(&header).map_err(at)?;
        if head.file_len() != len {
            return Err(Error::Corrupted {
                what: "object file",
                location: path.display().to_string(),
                detail: format!(
                    "the file is {len} bytes long, its header says {}",
                    head.file_len()
                ),
            });
        }
        let mut buf = vec![0u8; head.head_len()];
        f.read_at(&mut buf, 0)
            .map_err(|e| Error::io("read", &path, e))?;
        let (head, children) = object::decode_head(&buf).map_err(at)?;
        check_key(&path, &head.key, key)?;
        Ok(Some(children))
    }

    /// True if the file of a key found stored checks out whole; used before a put skips it.
    fn file_is_whole(&self, key: &ContentKey) -> bool {
        matches!(self.read_object(key), Ok(Some(_)))
    }

    /// Makes every write so far durable: syncs the files and directories written since the
    /// last durable flush. Concurrent callers share one round of syncs.
    fn sync(&self) -> Result<()> {
        let target = self.written.load(Ordering::Acquire);
        let mut durable = self.durable.lock();
        if *durable >= target {
            return Ok(());
        }
        self.writable()?;
        let (files, dirs, upto) = {
            let mut w = self.writer.lock();
            (
                std::mem::take(&mut w.files),
                std::mem::take(&mut w.dirs),
                self.written.load(Ordering::Acquire),
            )
        };
        let mut syncs = 0;
        let result = (|| -> Result<()> {
            for f in &files {
                match self.vfs.open(f, OpenMode::ReadWrite) {
                    Ok(h) => h.sync_data().map_err(|e| Error::io("fsync", f, e))?,
                    // Deleted since: its directory's sync makes the removal durable.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io("open", f, e)),
                }
                syncs += 1;
            }
            for d in &dirs {
                self.vfs
                    .sync_dir(d)
                    .map_err(|e| Error::io("fsync directory", d, e))?;
                syncs += 1;
            }
            Ok(())
        })();
        self.counters.syncs.fetch_add(syncs, Ordering::Relaxed);
        match result {
            Ok(()) => {
                *durable = upto;
                Ok(())
            }
            // A failed fsync leaves the page cache in an unknown state: never retry it.
            Err(e) => Err(self.poison(e)),
        }
    }

    /// Counts one write (a batch of puts or deletes), for the durable flush's bookkeeping.
    fn wrote(&self) {
        self.written.fetch_add(1, Ordering::AcqRel);
    }
}

/// Refuses a file that holds another object than its name says.
fn check_key(path: &Path, found: &ContentKey, wanted: &ContentKey) -> Result<()> {
    if found == wanted {
        Ok(())
    } else {
        Err(Error::Corrupted {
            what: "object file",
            location: path.display().to_string(),
            detail: format!("it holds object {found}, not {wanted} as its name says"),
        })
    }
}

impl BlobStore for DirStore {
    fn put_batch(&self, batch: &[Put<'_>]) -> Result<()> {
        self.writable()?;
        batch
            .iter()
            .try_for_each(|p| p.check_limits(MAX_PAYLOAD_LEN as usize))?;
        let mut pending = self.writer.lock();
        let mut wrote = false;
        let result = (|| -> Result<()> {
            for p in batch {
                let known = self.index.read().get(&p.key).copied();
                match known {
                    Some(e) if e.trusted => {
                        self.counters.dedup_hits.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    // Found on open after an unclean close: skip it only if its file is whole.
                    Some(_) if self.file_is_whole(&p.key) => {
                        if let Some(e) = self.index.write().get_mut(&p.key) {
                            e.trusted = true;
                        }
                        self.counters.dedup_hits.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    _ => {}
                }
                let len = self.write_object(&mut pending, p)?;
                wrote = true;
                let old = self
                    .index
                    .write()
                    .insert(p.key, Entry { len, trusted: true });
                let c = &self.counters;
                c.puts.fetch_add(1, Ordering::Relaxed);
                c.bytes_written.fetch_add(len, Ordering::Relaxed);
                c.live_bytes.fetch_add(len, Ordering::Relaxed);
                if let Some(old) = old {
                    c.live_bytes.fetch_sub(old.len, Ordering::Relaxed);
                }
            }
            Ok(())
        })();
        if wrote {
            self.wrote();
        }
        result
    }

    fn get(&self, key: &ContentKey) -> Result<Option<Blob>> {
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        if !self.index.read().contains_key(key) {
            return Ok(None);
        }
        self.read_object(key)
    }

    fn contains(&self, key: &ContentKey) -> Result<bool> {
        Ok(self.index.read().contains_key(key))
    }

    fn children(&self, key: &ContentKey) -> Result<Option<Vec<ContentKey>>> {
        if !self.index.read().contains_key(key) {
            return Ok(None);
        }
        self.read_children(key)
    }

    fn delete(&self, keys: &[ContentKey]) -> Result<()> {
        self.writable()?;
        let mut pending = self.writer.lock();
        let mut wrote = false;
        let result = (|| -> Result<()> {
            for k in keys {
                let Some(entry) = self.index.read().get(k).copied() else {
                    continue;
                };
                let path = self.object_path(k);
                match self.vfs.remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove", path, e)),
                }
                wrote = true;
                self.index.write().remove(k);
                if let Some(shard) = path.parent() {
                    pending.dirs.insert(shard.to_path_buf());
                }
                self.counters.deletes.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .live_bytes
                    .fetch_sub(entry.len, Ordering::Relaxed);
            }
            Ok(())
        })();
        if wrote {
            self.wrote();
        }
        result
    }

    fn keys(&self) -> Result<Vec<ContentKey>> {
        Ok(self.index.read().keys().copied().collect())
    }

    fn flush(&self, durability: Durability) -> Result<()> {
        match durability {
            // Every write is in the OS once put_batch returns.
            Durability::Applied | Durability::Written => Ok(()),
            Durability::Durable => self.sync(),
        }
    }

    fn stats(&self) -> StoreStats {
        let c = &self.counters;
        let live = c.live_bytes.load(Ordering::Relaxed);
        StoreStats {
            objects: self.index.read().len() as u64,
            // A hash table's buckets (key and entry) and control bytes.
            index_bytes: (self.index.read().capacity()
                * (std::mem::size_of::<(ContentKey, Entry)>() + 1)) as u64,
            live_bytes: live,
            disk_bytes: live,
            puts: c.puts.load(Ordering::Relaxed),
            dedup_hits: c.dedup_hits.load(Ordering::Relaxed),
            gets: c.gets.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            segments: 0,
        }
    }

    fn describe(&self) -> String {
        format!("directory store {}", self.dir.display())
    }

    fn untagged_values(&self) -> Option<Error> {
        super::untagged_before(
            self.describe(),
            self.format_version,
            object::DIR_TAGGED_VALUES_VERSION,
            object::DIR_STORE_VERSION,
            "`DirStore`, `spillway verify`, `export`",
        )
    }

    fn roots(&self) -> Result<Vec<(String, ContentKey)>> {
        self.roots.all(&*self.vfs, &self.dir)
    }

    fn root(&self, name: &str) -> Result<Option<ContentKey>> {
        self.roots.get(&*self.vfs, &self.dir, name)
    }

    fn set_root(&self, name: &str, key: Option<ContentKey>) -> Result<()> {
        crate::store::default_roots::check_name(name)?;
        self.writable()?;
        self.roots.set(
            self,
            (&*self.vfs, &self.dir),
            name,
            key,
            // Whether the rename reached the disk is unknown: refuse writes from now on.
            |dst, e| self.poison(Error::io("write", dst, e)),
        )
    }
}

impl Drop for DirStore {
    fn drop(&mut self) {
        if self.poison.read().is_some() {
            // Already reported when it happened; the store stays marked unclean.
            return;
        }
        if let Err(e) = self.close_inner() {
            tracing::error!(store = %self.dir.display(), error = %e, "closing the directory store failed");
        }
    }
}

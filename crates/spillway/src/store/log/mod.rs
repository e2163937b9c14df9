//! [`LogStore`]: the embedded default store, an append-only log of checksummed records in a
//! directory.
//!
//! # Layout
//! A store directory holds `STORE` (the marker), `LOCK`, `index.ckpt` (the index checkpoint)
//! and segment files `seg-<id>.log`. `docs/FORMAT.md` gives every byte.
//!
//! # Write path
//! `put_batch` encodes records into the writer's pending buffer and points the index at them:
//! from then on readers see them ([`Durability::Applied`]). `flush(Written)` writes the pending
//! bytes to the active segment; `flush(Durable)` then `fdatasync`s it (and the directory when a
//! segment was created). Concurrent durable flushes are grouped (group commit): one caller at a
//! time is the leader, which writes out and syncs everything appended so far; the others wait on
//! a condition variable and return as soon as a sync covers their writes. A segment is sealed by syncing it before
//! the next one is created, so only the last segment can ever have a torn tail.
//!
//! # Invariants
//! - The index maps each live key to the location of its newest put record.
//! - Sealed segments are never modified; they are only deleted whole by compaction, after a
//!   durable checkpoint no longer refers to them.
//! - After any failed write or sync the store is poisoned: writes fail with
//!   [`Error::Poisoned`], reads go on. Data acknowledged at `Durable` stays intact on disk.
//! - Lock order: `maintenance` → `writer` → `index` → `segments`. The group-commit state
//!   (`durable`) is taken either with no lock held or under `maintenance` alone (a checkpoint
//!   syncs the log through its tail), and is never held while taking another: the leader of a
//!   sync marks it busy, releases it, then takes `writer` briefly.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{Error, Result};
use crate::format::checkpoint::{Location, LogPosition};
use crate::format::record::{self, MAX_CHILDREN, MAX_PAYLOAD_LEN, RecordKind};
use crate::format::segment;
use crate::key::ContentKey;
use crate::store::{Blob, BlobStore, Durability, Put, StoreStats};
use crate::vfs::{OsFs, Vfs};

mod compact;
mod index;
mod open;
mod roots;
mod segments;
mod verify;
mod writer;

pub use compact::CompactionReport;
pub use open::{RecoveryReport, TornTail};
pub use verify::{VerifyReport, verify};

use index::Index;
use segments::SegmentReader;
use writer::Writer;

/// Settings of a [`LogStore`]. `LogStoreOptions::default()` suits most uses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LogStoreOptions {
    /// Open without the write lock; every write fails with [`Error::ReadOnly`].
    pub read_only: bool,
    /// Create the store if the directory does not exist or is empty (default `true`).
    pub create: bool,
    /// A segment is sealed and a new one started once it would grow past this (default 64 MiB).
    pub segment_size: u64,
    /// Pending bytes are handed to the OS once they exceed this (default 1 MiB).
    pub write_buffer: usize,
    /// A durable flush writes a new index checkpoint once this many log bytes were appended
    /// since the last one (default 256 MiB), bounding the scan on the next open.
    pub checkpoint_every: u64,
    /// Compaction rewrites sealed segments whose live fraction is below this (default 0.5).
    pub compact_below: f64,
    /// Read sealed segments through a memory map (default `true`): the fastest reads, but the
    /// pages read count in the process's resident set (as reclaimable file pages). With `false`
    /// reads use `pread`, and the page cache stays outside the process's RSS: the choice of the
    /// paging runtime, whose users watch RSS against a budget.
    pub map_sealed: bool,
    /// Cut the last segment at the first bad record even when valid records follow it
    /// (default `false`: such damage is reported as corruption, since it is not a torn write).
    pub truncate_corrupt_tail: bool,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        LogStoreOptions {
            read_only: false,
            create: true,
            segment_size: 64 << 20,
            write_buffer: 1 << 20,
            checkpoint_every: 256 << 20,
            compact_below: 0.5,
            truncate_corrupt_tail: false,
            map_sealed: true,
        }
    }
}

impl LogStoreOptions {
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

    /// Segment size in bytes (at least 4 KiB).
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes.max(4096);
        self
    }

    /// Bytes buffered before a write to the OS.
    pub fn write_buffer(mut self, bytes: usize) -> Self {
        self.write_buffer = bytes;
        self
    }

    /// Log bytes between automatic index checkpoints.
    pub fn checkpoint_every(mut self, bytes: u64) -> Self {
        self.checkpoint_every = bytes;
        self
    }

    /// Live fraction under which compaction rewrites a segment.
    pub fn compact_below(mut self, fraction: f64) -> Self {
        self.compact_below = fraction;
        self
    }

    /// Whether sealed segments are read through a memory map.
    pub fn map_sealed(mut self, yes: bool) -> Self {
        self.map_sealed = yes;
        self
    }

    /// Repair mode: cut a damaged last segment at its first bad record.
    pub fn truncate_corrupt_tail(mut self, yes: bool) -> Self {
        self.truncate_corrupt_tail = yes;
        self
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
}

/// Group-commit state.
#[derive(Debug, Default)]
struct SyncState {
    /// Everything before this position is durable.
    durable: LogPosition,
    /// A leader is syncing; others wait for it on `durable_changed`.
    syncing: bool,
}

fn active_reader(
    vfs: &dyn Vfs,
    opts: &LogStoreOptions,
    path: &Path,
    file: Arc<dyn crate::vfs::VfsFile>,
) -> Result<SegmentReader> {
    if opts.map_sealed
        && !opts.read_only
        && let Some(view) = vfs
            .map_growing(path, opts.segment_size)
            .map_err(|e| Error::io("map", path, e))?
    {
        return Ok(SegmentReader::Active(file, view));
    }
    Ok(SegmentReader::File(file))
}

/// The writer's progress, published for lock-free readers: the active segment id and the bytes
/// of it already written to the file. Both change under the writer lock; a reader trusts a
/// (segment, length) pair only if the segment id is the same before and after it reads the
/// length, and falls back to the writer lock otherwise.
#[derive(Debug, Default)]
struct Published {
    active: AtomicU64,
    written: AtomicU64,
}

impl Published {
    fn publish(&self, active: u64, written: u64) {
        if self.active.load(Ordering::Relaxed) != active {
            // A new segment: reset the length first, so that no reader pairs the new id with
            // the old segment's length.
            self.written.store(0, Ordering::Release);
            self.active.store(active, Ordering::Release);
        }
        self.written.store(written, Ordering::Release);
    }

    /// True if the bytes of `segment` up to `end` are known to be in the file.
    fn covers(&self, segment: u64, end: u64) -> bool {
        let a1 = self.active.load(Ordering::Acquire);
        if segment != a1 {
            // A sealed segment: always in the file.
            return segment < a1;
        }
        let written = self.written.load(Ordering::Acquire);
        let a2 = self.active.load(Ordering::Acquire);
        a1 == a2 && end <= written
    }
}

/// The embedded default store: a crash-safe segment log in a directory.
pub struct LogStore {
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    opts: LogStoreOptions,
    _lock: Option<Box<dyn Any + Send + Sync>>,
    index: RwLock<Index>,
    segments: RwLock<BTreeMap<u64, SegmentReader>>,
    /// `None` for a read-only store.
    writer: Option<Mutex<Writer>>,
    /// How far the log is durable, and whether a sync is under way (group commit).
    durable: Mutex<SyncState>,
    /// Signalled when a sync ends.
    durable_changed: Condvar,
    maintenance: Mutex<()>,
    poison: RwLock<Option<String>>,
    counters: Counters,
    recovery: RecoveryReport,
    closed: std::sync::atomic::AtomicBool,
    /// The active segment and how much of it is in the file, readable without the writer lock.
    written: Published,
    roots: roots::RootsCache,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.dir)
            .field("read_only", &self.opts.read_only)
            .finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens (creating if needed) the store in `dir` on the real file system.
    pub fn open(dir: impl AsRef<Path>) -> Result<LogStore> {
        LogStore::open_with(dir, LogStoreOptions::default())
    }

    /// Opens the store in `dir` with `opts`.
    pub fn open_with(dir: impl AsRef<Path>, opts: LogStoreOptions) -> Result<LogStore> {
        LogStore::open_on(Arc::new(OsFs), dir.as_ref(), opts)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What recovery found when the store was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The failure that poisoned the store, if any.
    pub fn poisoned(&self) -> Option<String> {
        self.poison.read().clone()
    }

    /// Flushes everything durably, writes an index checkpoint and releases the lock.
    ///
    /// A poisoned store returns [`Error::Poisoned`]: writes that were not yet durable when it
    /// was poisoned may be lost. Dropping the store closes it too, logging any failure.
    pub fn close(self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) || self.writer.is_none() {
            return Ok(());
        }
        // Refuses (with the first failure named) if the store is poisoned.
        self.writable()?;
        self.flush(Durability::Durable)?;
        if self.writer_lock()?.lock().since_checkpoint > 0 {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn writer_lock(&self) -> Result<&Mutex<Writer>> {
        self.writer.as_ref().ok_or_else(|| Error::ReadOnly {
            path: self.dir.clone(),
        })
    }

    /// The writer, or why writes are refused.
    fn writable(&self) -> Result<&Mutex<Writer>> {
        let w = self.writer_lock()?;
        if let Some(cause) = self.poison.read().clone() {
            return Err(Error::Poisoned {
                path: self.dir.clone(),
                cause,
            });
        }
        Ok(w)
    }

    /// Records an I/O failure: from now on the store refuses writes.
    fn poison(&self, op: &'static str, path: PathBuf, e: std::io::Error) -> Error {
        let err = Error::io(op, path, e);
        let mut p = self.poison.write();
        if p.is_none() {
            tracing::error!(store = %self.dir.display(), error = %err, "log store poisoned");
            *p = Some(err.to_string());
        }
        err
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(segment::file_name(id))
    }

    /// Writes pending bytes to the OS, poisoning the store on failure.
    fn write_out(&self, w: &mut Writer) -> Result<()> {
        match w.write_pending() {
            Ok(n) => {
                self.counters.bytes_written.fetch_add(n, Ordering::Relaxed);
                self.written.publish(w.active, w.written_len);
                Ok(())
            }
            Err(e) => Err(self.poison("write", self.segment_path(w.active), e)),
        }
    }

    /// Appends one encoded record (built by `encode`) to the active segment, sealing it first
    /// if the record would not fit. Returns the record's location.
    fn append(
        &self,
        w: &mut Writer,
        len: u64,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Location> {
        let header = segment::SEGMENT_HEADER_LEN as u64;
        if w.end() > header && w.end() + len > self.opts.segment_size {
            self.roll(w)?;
        }
        let offset = w.end();
        let before = w.pending.len();
        encode(&mut w.pending);
        debug_assert_eq!((w.pending.len() - before) as u64, len);
        w.since_checkpoint += len;
        Ok(Location {
            segment: w.active,
            offset,
            len: len as u32,
        })
    }

    /// Seals the active segment (write + sync) and starts the next one.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        self.write_out(w)?;
        let old = w.active;
        if let Err(e) = w.file.sync_data() {
            return Err(self.poison("fsync", self.segment_path(old), e));
        }
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        let sealed = if self.opts.map_sealed {
            SegmentReader::Mapped(
                self.vfs
                    .map(&self.segment_path(old))
                    .map_err(|e| Error::io("map", self.segment_path(old), e))?,
            )
        } else {
            SegmentReader::File(Arc::clone(&w.file))
        };
        let new = old + 1;
        let path = self.segment_path(new);
        let file = self
            .vfs
            .open(&path, crate::vfs::OpenMode::Create)
            .map_err(|e| self.poison("create", path.clone(), e))?;
        // Everything that can fail comes before the writer switches to `new`: a mapping that
        // fails here leaves the old segment active and the store as it was.
        let reader = self.active_reader(&path, Arc::clone(&file))?;
        let sealed_len = w.written_len;
        w.active = new;
        w.file = Arc::clone(&file);
        w.written_len = 0;
        w.pending.extend_from_slice(&segment::encode_header(new));
        w.dir_dirty = true;
        w.since_checkpoint += segment::SEGMENT_HEADER_LEN as u64;
        {
            let mut idx = self.index.write();
            // Records appended to the old segment since the caller last updated its size.
            idx.sizes.insert(old, sealed_len);
            idx.sizes.insert(new, segment::SEGMENT_HEADER_LEN as u64);
        }
        let mut segs = self.segments.write();
        segs.insert(old, sealed);
        segs.insert(new, reader);
        drop(segs);
        // Only now, with both segments readable, may readers learn that `new` is active.
        self.written.publish(new, 0);
        Ok(())
    }

    /// The reader of a new active segment: mapped ahead of its end when sealed segments are
    /// mapped too, else positioned reads.
    fn active_reader(
        &self,
        path: &Path,
        file: Arc<dyn crate::vfs::VfsFile>,
    ) -> Result<SegmentReader> {
        active_reader(self.vfs.as_ref(), &self.opts, path, file)
    }

    /// Reads the record at `loc`, from the pending buffer if it has not been written yet.
    fn read_at(&self, loc: Location, key: &ContentKey) -> Result<Option<Blob>> {
        // Records already handed to the OS are read without the writer lock, so that reads do
        // not queue behind a writer in the middle of a `write(2)`.
        let in_file = self
            .written
            .covers(loc.segment, loc.offset + u64::from(loc.len));
        if let (Some(w), false) = (&self.writer, in_file) {
            let w = w.lock();
            if loc.segment == w.active && loc.offset >= w.written_len {
                let start = usize::try_from(loc.offset - w.written_len).unwrap_or(usize::MAX);
                let bytes = start
                    .checked_add(loc.len as usize)
                    .and_then(|end| w.pending.get(start..end))
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| Error::Corrupted {
                        what: "index",
                        location: segments::describe(&self.dir, loc),
                        detail: format!("the record of key {key} is past the end of the log"),
                    })?;
                drop(w);
                return segments::blob_from_record_bytes(bytes, &self.dir, loc, key).map(Some);
            }
        }
        let reader = self.segments.read().get(&loc.segment).cloned();
        match reader {
            Some(r) => r.read_blob(&self.dir, loc, key).map(Some),
            // Compaction removed the segment after we looked the key up: look again.
            None => Ok(None),
        }
    }

    /// Returns once the log is durable through `target`.
    ///
    /// Group commit: one caller at a time is the leader and syncs everything written so far;
    /// the others wait on a condition variable and return as soon as a sync covered them. They
    /// never queue behind a leader whose sync they do not need.
    fn sync_to(&self, target: LogPosition) -> Result<()> {
        {
            let mut st = self.durable.lock();
            loop {
                if st.durable >= target {
                    return Ok(());
                }
                if !st.syncing {
                    st.syncing = true;
                    break;
                }
                self.durable_changed.wait(&mut st);
            }
        }
        let result = self.sync_written();
        let mut st = self.durable.lock();
        st.syncing = false;
        if let Ok(pos) = result {
            st.durable = st.durable.max(pos);
        }
        drop(st);
        // Waiters that are covered return; one of the others becomes the next leader (and
        // finds the store poisoned if this sync failed).
        self.durable_changed.notify_all();
        result.map(|_| ())
    }

    /// The leader's part of [`sync_to`](Self::sync_to): writes out pending bytes, syncs the
    /// active segment (and the directory if a segment was created), and returns the position
    /// now durable.
    fn sync_written(&self) -> Result<LogPosition> {
        let (file, pos, dir_dirty, active) = {
            let mut w = self.writable()?.lock();
            self.write_out(&mut w)?;
            let dirty = std::mem::take(&mut w.dir_dirty);
            (Arc::clone(&w.file), w.written_position(), dirty, w.active)
        };
        if let Err(e) = file.sync_data() {
            return Err(self.poison("fsync", self.segment_path(active), e));
        }
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        if dir_dirty {
            if let Err(e) = self.vfs.sync_dir(&self.dir) {
                return Err(self.poison("fsync directory", self.dir.clone(), e));
            }
            self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(pos)
    }
}

impl BlobStore for LogStore {
    fn put_batch(&self, batch: &[Put<'_>]) -> Result<()> {
        for p in batch {
            if p.payload.len() > MAX_PAYLOAD_LEN as usize {
                return Err(Error::TooLarge {
                    what: "object payload",
                    len: p.payload.len() as u64,
                    limit: u64::from(MAX_PAYLOAD_LEN),
                });
            }
            if p.children.len() > MAX_CHILDREN as usize {
                return Err(Error::TooLarge {
                    what: "child key list",
                    len: (p.children.len() * 16) as u64,
                    limit: u64::from(MAX_CHILDREN) * 16,
                });
            }
            debug_assert_eq!(p.key, ContentKey::of(p.payload, p.children), "key of a put");
        }
        let mut w = self.writable()?.lock();
        // Only this thread appends while it holds the writer lock, so what is absent now stays
        // absent until we insert it.
        let fresh: Vec<&Put<'_>> = {
            let idx = self.index.read();
            let mut seen = std::collections::HashSet::with_capacity_and_hasher(
                batch.len(),
                crate::key::BuildKeyHasher::default(),
            );
            batch
                .iter()
                .filter(|p| !idx.map.contains_key(&p.key) && seen.insert(p.key))
                .collect()
        };
        self.counters
            .dedup_hits
            .fetch_add((batch.len() - fresh.len()) as u64, Ordering::Relaxed);
        let mut placed = Vec::with_capacity(fresh.len());
        for p in fresh {
            let len = record::record_len(p.children.len(), p.payload.len());
            let loc = self.append(&mut w, len, |out| {
                record::encode(out, RecordKind::Put, &p.key, p.children, p.payload)
            })?;
            placed.push((p.key, loc));
        }
        {
            let mut idx = self.index.write();
            for (k, loc) in &placed {
                idx.insert(*k, *loc);
            }
            idx.sizes.insert(w.active, w.end());
        }
        self.counters
            .puts
            .fetch_add(placed.len() as u64, Ordering::Relaxed);
        if w.pending.len() >= self.opts.write_buffer {
            self.write_out(&mut w)?;
        }
        Ok(())
    }

    fn get(&self, key: &ContentKey) -> Result<Option<Blob>> {
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        // A miss in `read_at` means compaction moved the record between our lookup and our
        // read; the index then points at the new place. Compaction finishes a segment before it
        // removes it, so a few retries always suffice.
        for _ in 0..8 {
            let Some(loc) = self.index.read().map.get(key).copied() else {
                return Ok(None);
            };
            if let Some(blob) = self.read_at(loc, key)? {
                return Ok(Some(blob));
            }
        }
        Err(Error::Corrupted {
            what: "index",
            location: self.dir.display().to_string(),
            detail: format!("key {key} points at a segment that no longer exists"),
        })
    }

    fn contains(&self, key: &ContentKey) -> Result<bool> {
        Ok(self.index.read().map.contains_key(key))
    }

    fn delete(&self, keys: &[ContentKey]) -> Result<()> {
        let mut w = self.writable()?.lock();
        let present: Vec<ContentKey> = {
            let idx = self.index.read();
            keys.iter()
                .filter(|k| idx.map.contains_key(k))
                .copied()
                .collect()
        };
        let len = record::record_len(0, 0);
        for k in &present {
            self.append(&mut w, len, |out| {
                record::encode(out, RecordKind::Tombstone, k, &[], &[])
            })?;
        }
        let mut idx = self.index.write();
        for k in &present {
            idx.remove(k);
        }
        idx.sizes.insert(w.active, w.end());
        self.counters
            .deletes
            .fetch_add(present.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn keys(&self) -> Result<Vec<ContentKey>> {
        Ok(self.index.read().map.keys().copied().collect())
    }

    fn flush(&self, durability: Durability) -> Result<()> {
        if durability == Durability::Applied || self.writer.is_none() {
            return Ok(());
        }
        if durability == Durability::Written {
            let mut w = self.writable()?.lock();
            return self.write_out(&mut w);
        }
        // A durable flush leaves the write to the leader of its sync group: writing here could
        // block (the kernel may hold back writes to pages under writeback) while holding the
        // writer lock, and so serialize the very flushes that group commit should merge.
        let target = {
            let w = self.writable()?.lock();
            LogPosition {
                segment: w.active,
                offset: w.end(),
            }
        };
        {
            self.sync_to(target)?;
            if self.writer_lock()?.lock().since_checkpoint >= self.opts.checkpoint_every {
                self.checkpoint()?;
            }
        }
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        let idx = self.index.read();
        let c = &self.counters;
        StoreStats {
            objects: idx.map.len() as u64,
            live_bytes: idx.live_bytes(),
            disk_bytes: idx.disk_bytes(),
            puts: c.puts.load(Ordering::Relaxed),
            dedup_hits: c.dedup_hits.load(Ordering::Relaxed),
            gets: c.gets.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            segments: idx.sizes.len() as u64,
        }
    }

    fn describe(&self) -> String {
        format!("log store {}", self.dir.display())
    }

    fn roots(&self) -> Result<Vec<(String, ContentKey)>> {
        self.roots_impl()
    }

    fn set_root(&self, name: &str, key: Option<ContentKey>) -> Result<()> {
        self.set_root_impl(name, key)
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        if self.poison.read().is_some() {
            // Already reported when it happened; there is nothing left to flush.
            return;
        }
        if let Err(e) = self.close_inner() {
            tracing::error!(store = %self.dir.display(), error = %e, "closing the log store failed");
        }
    }
}

//! [`LogStore`]: the embedded default store, an append-only log of checksummed records in a
//! directory.
//!
//! # Layout
//! A store directory holds `STORE` (the marker), `LOCK`, `index.ckpt` (the index checkpoint)
//! and segment files `seg-<id>.log`. `docs/FORMAT.md` gives every byte.
//!
//! # Write path
//! Writes run on the [write pipeline](crate::write) (module `pipeline`). `put_batch` encodes its
//! records (outside any lock), then the pipeline's delta copies the ones not yet stored into
//! its buffer and points the index at them: from then on readers see them
//! ([`Durability::Applied`]). `flush(Written)` freezes the delta and the flusher writes it to
//! the active segment; `flush(Durable)` then `fdatasync`s it (and the directory when a segment
//! was created). Concurrent durable flushes share one sync: group commit is the pipeline's.
//! A full buffer ([`LogStoreOptions::write_buffer`]) is frozen and written in the background
//! while the next one fills. A segment is sealed by syncing it before the next one is created,
//! so only the last segment can ever have a torn tail.
//!
//! A pool pages out to the store in batches of about `BATCH_BYTES` (64 KiB, see
//! [`BlobStore::batch_bytes`]). Each is one `put_batch`, whose records are encoded into one
//! buffer that becomes a chunk of the delta as it is and is freed once the flusher has written
//! it. Below 128 KiB, glibc's default threshold for mappings, such a buffer comes from the heap,
//! where the next batch reuses it; it passes 128 KiB only when the batch's last object is
//! larger than about 64 KiB (and the page-out's own buffer when that object is larger than
//! about 32 KiB, see `runtime::page_out`). A larger buffer is a mapping of glibc's, and freeing
//! that raises glibc's thresholds for the whole process, after which each of its heaps keeps
//! that much more freed memory (see `memory::mapped`). A batch costs the pipeline one apply; in
//! alternating runs of the W3 and W4 children, batches of 64 KiB paged out within the noise of
//! batches of 1 MiB (BENCHMARKS.md gives the figures), and a pool holds less outside its budget
//! while they are written.
//!
//! # Invariants
//! - The index maps each live key to the location of its newest put record; a location past
//!   the written part of the log is in the pipeline's live delta or in a frozen batch not yet
//!   written, where readers find it.
//! - Sealed segments are never modified; they are only deleted whole by compaction, after a
//!   durable checkpoint no longer refers to them.
//! - After any failed write or sync the store is poisoned: writes fail with
//!   [`Error::Poisoned`], reads go on. Data acknowledged at `Durable` stays intact on disk.
//! - Lock order: `maintenance` → the pipeline's writer role → `index` → `segments`; the
//!   pipeline's flusher takes `segments`, never `index`. A reader takes `index`, releases it,
//!   then reads a segment (a record of at most 64 KiB under a read lock of `segments`, a
//!   longer one through a clone of its reader) or the pipeline's view.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::format::checkpoint::Location;
use crate::format::marker;
use crate::format::record::{self, MAX_PAYLOAD_LEN, RecordKind};
use crate::key::ContentKey;
use crate::store::{Blob, BlobStore, Durability, Put, StoreStats};
use crate::vfs::OsFs;
use spillway_write::WriteHandle;

mod compact;
mod core;
mod delta;
mod flusher;
mod index;
mod open;
mod pipeline;
mod recover;
mod segments;
mod table;
mod verify;
mod window;

/// Bytes a pool's page-out groups into one batch for this store, payloads, records and the
/// batch's own bookkeeping counted (see the module docs).
const BATCH_BYTES: usize = 64 << 10;

pub use compact::CompactionReport;
pub use delta::Appended;
pub use recover::{DamagedRange, MissingData, RecoveryReport, SalvageReport, TornTail};
/// The file name of segment `id` in a store directory (`seg-<id, 16 digits>.log`).
pub fn segment_file_name(id: u64) -> String {
    crate::format::segment::file_name(id)
}

#[cfg(feature = "testing")]
pub use verify::verify_on;
pub use verify::{MAX_LISTED, RootCheck, VerifyReport, verify};

use self::core::Core;
use delta::{EncodedPuts, LogWrite};
use pipeline::Pipeline;
use segments::RecordBytes;

/// A read of a record up to this long runs under the segment readers' lock; a longer one
/// clones its reader and releases the lock first, so that it never holds up the flusher.
const HOLD_SEGMENTS_UP_TO: u32 = 64 << 10;

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
    /// Applied records are frozen and handed to the OS in the background once they exceed this
    /// (default 1 MiB).
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
    /// Repair mode (default `false`): the whole log is scanned, trusting no index checkpoint;
    /// damage is stepped over instead of refused, and every record a checksum still vouches
    /// for is kept. Writable, a torn tail is cut, damaged segments are salvaged (their verified
    /// live records copied to the end of the log, made durable, and only then the segments
    /// removed), and a new checkpoint is written; read-only, nothing changes and
    /// [`LogStore::recovery`] tells what repair would do. Either way the report names what is
    /// lost. Without it, an open refuses a store whose durable data is damaged or gone.
    pub repair: bool,
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
            repair: false,
            map_sealed: true,
        }
    }
}

impl LogStoreOptions {
    /// The options [`PoolBuilder::dir`](crate::PoolBuilder::dir) opens its store with: the
    /// defaults, with every segment read by `pread` ([`map_sealed`](Self::map_sealed) off), so
    /// that the page cache stays outside the process's resident set, which users compare with
    /// the pool's budget. Use them to open a store yourself for a pool (to share it, say).
    pub fn for_pool() -> Self {
        LogStoreOptions::default().map_sealed(false)
    }

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

    /// Repair mode (see [`LogStoreOptions::repair`]).
    pub fn repair(mut self, yes: bool) -> Self {
        self.repair = yes;
        self
    }
}

/// The embedded default store: a crash-safe segment log in a directory.
pub struct LogStore {
    /// `None` for a read-only store. Dropped before the lock: its threads end first.
    pipeline: Option<Pipeline>,
    core: Arc<Core>,
    maintenance: Mutex<()>,
    recovery: RecoveryReport,
    closed: std::sync::atomic::AtomicBool,
    roots: crate::store::roots_file::RootsFile,
    /// The format version in the store's marker.
    format_version: u32,
    _lock: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.core.dir)
            .field("read_only", &self.core.opts.read_only)
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
        LogStore::open_vfs(Arc::new(OsFs), dir.as_ref(), opts)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.core.dir
    }

    /// The format version of the store's files, from its marker: this build's for a store it
    /// created. A version 1 store reads and writes as blobs like any other, but holds values
    /// without a type tag, which a pool refuses (see [`BlobStore::untagged_values`]).
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// What recovery found when the store was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The failure that poisoned the store, if any.
    pub fn poisoned(&self) -> Option<Arc<Error>> {
        self.core.poisoned()
    }

    /// Flushes everything durably, writes an index checkpoint and releases the lock.
    ///
    /// A poisoned store returns [`Error::Poisoned`]: writes that were not yet durable when it
    /// was poisoned may be lost. Dropping the store closes it too, logging any failure.
    pub fn close(self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) || self.pipeline.is_none() {
            return Ok(());
        }
        // Refuses (with the first failure named) if the store is poisoned.
        self.writable()?;
        self.flush(Durability::Durable)?;
        if self.core.index.read().since_checkpoint > 0 {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// The write pipeline, or why writes are refused.
    fn writable(&self) -> Result<&Pipeline> {
        let p = self.pipeline.as_ref().ok_or_else(|| Error::ReadOnly {
            path: self.core.dir.clone(),
        })?;
        self.core.check_poison()?;
        Ok(p)
    }

    /// Runs `f` on the bytes of the record at `loc`, from the pipeline if it has not been
    /// written yet; `None` if compaction removed its segment meanwhile.
    fn with_record_at<T>(
        &self,
        loc: Location,
        key: &ContentKey,
        f: impl FnOnce(RecordBytes<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let core = &self.core;
        let end = loc.offset.saturating_add(u64::from(loc.len));
        if let Some(p) = &self.pipeline
            && !core.written.covers(loc.segment, end)
        {
            if let Some(bytes) = p.find_unwritten(loc) {
                return f(RecordBytes::Owned(bytes)).map(Some);
            }
            // The flusher publishes what it wrote before the batch leaves the pipeline's view:
            // a record that is in neither has been written by now.
            if !core.written.covers(loc.segment, end) {
                return Err(Error::Corrupted {
                    what: "index",
                    location: segments::describe(&core.dir, loc),
                    detail: format!("the record of key {key} is past the end of the log"),
                });
            }
        }
        let segments = core.segments.read();
        let Some(reader) = segments.get(&loc.segment) else {
            // Compaction removed the segment after we looked the key up: look again.
            return Ok(None);
        };
        if loc.len <= HOLD_SEGMENTS_UP_TO {
            // Cheaper than cloning the reader (two atomic operations on a shared count); the
            // flusher and compaction, the only writers of `segments`, wait microseconds at most.
            return reader.with_record(&core.dir, loc, f).map(Some);
        }
        let reader = reader.clone();
        drop(segments);
        reader.with_record(&core.dir, loc, f).map(Some)
    }

    /// Looks `key` up and runs `f` on its record's bytes; `None` if it is not stored.
    fn with_record<T>(
        &self,
        key: &ContentKey,
        f: impl Fn(RecordBytes<'_>, Location) -> Result<T>,
    ) -> Result<Option<T>> {
        // A miss in `with_record_at` means compaction moved the record between our lookup and
        // our read; the index then points at the new place. Compaction finishes a segment
        // before it removes it, so a few retries always suffice.
        for _ in 0..8 {
            let Some(loc) = self.core.index.read().map.get(key) else {
                return Ok(None);
            };
            if let Some(found) = self.with_record_at(loc, key, |b| f(b, loc))? {
                return Ok(Some(found));
            }
        }
        Err(Error::Corrupted {
            what: "index",
            location: self.core.dir.display().to_string(),
            detail: format!("key {key} points at a segment that no longer exists"),
        })
    }
}

/// Writes with a handle: the store's durability API on its write pipeline.
impl LogStore {
    /// Stores a batch like [`put_batch`](BlobStore::put_batch) and returns the write's handle,
    /// once the batch is applied (visible to readers). [`WriteHandle::wait`] (or
    /// [`wait_async`](WriteHandle::wait_async), which never blocks an executor) returns once
    /// the batch has reached the level asked for; waiters for `Durable` share syncs (group
    /// commit). Keys already stored are skipped, and the handle then also covers their earlier
    /// puts: they come before it in the log.
    ///
    /// ```
    /// use spillway::{Durability, LogStore, Put};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = LogStore::open(dir.path())?;
    /// let handle = store.submit_puts(&[Put::new(b"hello", &[])])?;
    /// assert_eq!(handle.take_result().map(|a| a.puts), Some(1));
    /// handle.wait(Durability::Durable)?; // survives power loss from here on
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_puts(&self, batch: &[Put<'_>]) -> Result<WriteHandle<Appended, Error>> {
        let pipeline = self.writable()?;
        let enc = self.encode_fresh(batch)?;
        pipeline.submit(LogWrite::Put(enc))
    }

    /// Deletes keys like [`delete`](BlobStore::delete) and returns the write's handle, once
    /// applied; see [`submit_puts`](Self::submit_puts).
    pub fn submit_deletes(&self, keys: &[ContentKey]) -> Result<WriteHandle<Appended, Error>> {
        let pipeline = self.writable()?;
        let present = self.present(keys);
        pipeline.submit(LogWrite::Delete(present))
    }

    /// The keys of `keys` that are stored.
    fn present(&self, keys: &[ContentKey]) -> Vec<ContentKey> {
        let idx = self.core.index.read();
        keys.iter()
            .filter(|k| idx.map.contains_key(k))
            .copied()
            .collect()
    }

    /// Checks `batch` and encodes, outside any lock, the records of the keys not stored yet
    /// (once each); the delta checks again when it applies them, and skips what was stored in
    /// between.
    fn encode_fresh(&self, batch: &[Put<'_>]) -> Result<EncodedPuts> {
        batch
            .iter()
            .try_for_each(|p| p.check_limits(MAX_PAYLOAD_LEN as usize))?;
        let mut enc = EncodedPuts::default();
        let idx = self.core.index.read();
        idx.map.touch(batch.iter().map(|p| &p.key));
        let mut seen = std::collections::HashSet::with_capacity_and_hasher(
            batch.len(),
            crate::key::BuildKeyHasher::default(),
        );
        let fresh: Vec<&Put<'_>> = batch
            .iter()
            .filter(|p| !idx.map.contains_key(&p.key) && seen.insert(p.key))
            .collect();
        drop(idx);
        let skipped = (batch.len() - fresh.len()) as u64;
        self::core::Counters::add(&self.core.counters.dedup_hits, skipped);
        let total: u64 = fresh
            .iter()
            .map(|p| record::record_len(p.children.len(), p.payload.len()))
            .sum();
        enc.bytes.reserve(total as usize);
        enc.records.reserve(fresh.len());
        for p in fresh {
            let start = enc.bytes.len();
            record::encode(
                &mut enc.bytes,
                RecordKind::Put,
                &p.key,
                p.children,
                p.payload,
            );
            enc.records.push((p.key, start, enc.bytes.len() - start));
        }
        Ok(enc)
    }
}

impl BlobStore for LogStore {
    fn put_batch(&self, batch: &[Put<'_>]) -> Result<()> {
        let pipeline = self.writable()?;
        let enc = self.encode_fresh(batch)?;
        if enc.records.is_empty() {
            return Ok(());
        }
        pipeline.apply(LogWrite::Put(enc)).map(|_| ())
    }

    fn batch_bytes(&self) -> usize {
        BATCH_BYTES
    }

    fn get(&self, key: &ContentKey) -> Result<Option<Blob>> {
        self.core.counters.gets.fetch_add(1, Ordering::Relaxed);
        let dir = &self.core.dir;
        self.with_record(key, |bytes, loc| segments::blob_of(bytes, dir, loc, key))
    }

    fn children(&self, key: &ContentKey) -> Result<Option<Vec<ContentKey>>> {
        let dir = &self.core.dir;
        self.with_record(key, |bytes, loc| {
            segments::children_of(bytes, dir, loc, key)
        })
    }

    fn contains(&self, key: &ContentKey) -> Result<bool> {
        Ok(self.core.index.read().map.contains_key(key))
    }

    fn delete(&self, keys: &[ContentKey]) -> Result<()> {
        let pipeline = self.writable()?;
        let present = self.present(keys);
        if present.is_empty() {
            return Ok(());
        }
        pipeline.apply(LogWrite::Delete(present)).map(|_| ())
    }

    fn keys(&self) -> Result<Vec<ContentKey>> {
        Ok(self.core.index.read().map.keys().collect())
    }

    fn flush(&self, durability: Durability) -> Result<()> {
        let Some(pipeline) = &self.pipeline else {
            return Ok(());
        };
        match durability {
            Durability::Applied => return Ok(()),
            Durability::Written => {
                self.core.check_poison()?;
                pipeline.flush(false)?;
            }
            Durability::Durable => {
                self.core.check_poison()?;
                pipeline.flush(true)?;
                if self.core.index.read().since_checkpoint >= self.core.opts.checkpoint_every {
                    self.checkpoint()?;
                }
            }
        }
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        let idx = self.core.index.read();
        let c = &self.core.counters;
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
            index_bytes: idx.map.allocated_bytes() as u64,
        }
    }

    fn describe(&self) -> String {
        format!("log store {}", self.core.dir.display())
    }

    fn untagged_values(&self) -> Option<Error> {
        super::untagged_before(
            self.describe(),
            self.format_version,
            marker::TAGGED_VALUES_VERSION,
            marker::STORE_VERSION,
            "`LogStore`, `spillway verify`, `inspect`, `export`",
        )
    }

    fn roots(&self) -> Result<Vec<(String, ContentKey)>> {
        self.roots.all(&*self.core.vfs, &self.core.dir)
    }

    fn root(&self, name: &str) -> Result<Option<ContentKey>> {
        self.roots.get(&*self.core.vfs, &self.core.dir, name)
    }

    fn set_root(&self, name: &str, key: Option<ContentKey>) -> Result<()> {
        crate::store::default_roots::check_name(name)?;
        self.writable()?;
        self.roots.set(
            self,
            (&*self.core.vfs, &self.core.dir),
            name,
            key,
            |dst, e| self.core.poison("write", dst, e),
        )
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        if self.core.poison.read().is_some() {
            // Already reported when it happened; there is nothing left to flush.
            return;
        }
        if let Err(e) = self.close_inner() {
            tracing::error!(store = %self.core.dir.display(), error = %e, "closing the log store failed");
        }
    }
}

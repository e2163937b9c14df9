//! The parts of a log store that its write pipeline shares with its readers: the directory and
//! file system, the index, the segment readers, the counters, the poison flag, and how far the
//! log has been written and synced.
//!
//! Invariants:
//! - the index changes only in the pipeline's delta (under the writer role) and when compaction
//!   drops a removed segment's size; its `tail` is the end of the last record it knows, so a copy
//!   of the index taken under one read lock describes exactly the records before that tail;
//! - `segments` holds a reader for every segment file that exists (sealed ones and the active
//!   one); the flusher inserts a new segment's reader before it publishes that segment as
//!   active, so a reader that sees a segment published finds its reader;
//! - `written` and `durable` only move forward;
//! - `durable` never passes the position recorded in the `SYNC` file (writable stores): a
//!   sync is recorded there, and that record synced, before anyone is told it happened, so
//!   recovery can tell damage in acknowledged data from a torn tail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::LogStoreOptions;
use super::index::Index;
use super::segments::SegmentReader;
use crate::error::{Error, Result};
use crate::format::checkpoint::LogPosition;
use crate::format::segment;
use crate::format::sync::{self, SyncRecord};
use crate::vfs::{OpenMode, Vfs, VfsFile};

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub puts: AtomicU64,
    pub dedup_hits: AtomicU64,
    pub gets: AtomicU64,
    pub deletes: AtomicU64,
    pub bytes_written: AtomicU64,
    pub syncs: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// The writer's progress, published for lock-free readers: the active segment id and the bytes
/// of it already written to the file. Only the flusher changes them; a reader trusts a
/// (segment, length) pair only if the segment id is the same before and after it reads the
/// length, and otherwise looks for the record in the pipeline's unwritten batches.
#[derive(Debug, Default)]
pub(super) struct Published {
    active: AtomicU64,
    written: AtomicU64,
}

impl Published {
    pub fn publish(&self, active: u64, written: u64) {
        if self.active.load(Ordering::Relaxed) != active {
            // A new segment: reset the length first, so that no reader pairs the new id with
            // the old segment's length.
            self.written.store(0, Ordering::Release);
            self.active.store(active, Ordering::Release);
        }
        self.written.store(written, Ordering::Release);
    }

    /// The segment being appended to in the file system.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Acquire)
    }

    /// True if the bytes of `segment` up to `end` are known to be in the file.
    pub fn covers(&self, segment: u64, end: u64) -> bool {
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

/// See the module docs.
pub(super) struct Core {
    pub dir: PathBuf,
    pub vfs: Arc<dyn Vfs>,
    pub opts: LogStoreOptions,
    pub index: RwLock<Index>,
    pub segments: RwLock<BTreeMap<u64, SegmentReader>>,
    pub counters: Counters,
    pub poison: RwLock<Option<Arc<Error>>>,
    /// The active segment and how much of it is in the file.
    pub written: Published,
    /// Everything before this position is durable.
    pub durable: Mutex<LogPosition>,
    /// The `SYNC` file and its newest record (`None` read-only).
    pub sync: Mutex<Option<SyncMark>>,
}

/// The open `SYNC` file of a writable store and the newest record written to it.
pub(super) struct SyncMark {
    pub file: Arc<dyn VfsFile>,
    pub last: SyncRecord,
}

impl SyncMark {
    /// Records `pos` as durable in the `SYNC` file (its other slot) and syncs the file. The
    /// caller has synced the log through `pos`.
    pub fn record(&mut self, pos: LogPosition) -> std::io::Result<bool> {
        if pos <= self.last.durable {
            return Ok(false);
        }
        let next = SyncRecord {
            generation: self.last.generation + 1,
            durable: pos,
        };
        self.file
            .write_at(&sync::encode_slot(&next), next.slot_offset())?;
        self.file.sync_data()?;
        self.last = next;
        Ok(true)
    }

    /// Opens the `SYNC` file of `dir` and records `pos`: the first record of a store (or of one
    /// whose file was blank or damaged: the file is then written afresh), or the one after
    /// `prev`. The caller syncs the directory afterwards.
    pub fn start(
        vfs: &dyn Vfs,
        dir: &Path,
        prev: Option<SyncRecord>,
        pos: LogPosition,
    ) -> Result<SyncMark> {
        let path = dir.join(sync::SYNC_FILE);
        let mode = if prev.is_some() {
            OpenMode::ReadWrite
        } else {
            OpenMode::Create
        };
        let file = vfs
            .open(&path, mode)
            .map_err(|e| Error::io("open", &path, e))?;
        let mut mark = SyncMark {
            file,
            last: prev.unwrap_or(SyncRecord {
                generation: 0,
                durable: LogPosition::default(),
            }),
        };
        if prev.is_some_and(|p| p.durable == pos) {
            return Ok(mark);
        }
        // Force a write even if `pos` is not past the old record (a repair may have cut the
        // log back): the record must name the log as it now is.
        mark.last.durable = LogPosition::default();
        mark.record(pos).map_err(|e| Error::io("write", &path, e))?;
        Ok(mark)
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Core {
    pub fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(segment::file_name(id))
    }

    /// Records an I/O failure: from now on the store refuses writes. Returns the failure (as
    /// shared with the poison, if it is the first).
    pub fn poison(&self, op: &'static str, path: PathBuf, e: std::io::Error) -> Error {
        self.poison_with(Error::io(op, path, e))
    }

    /// Records a failure of the write path (the first one is kept, as the poison's cause) and
    /// returns it.
    pub fn poison_with(&self, err: Error) -> Error {
        let mut p = self.poison.write();
        if p.is_some() {
            return err;
        }
        tracing::error!(store = %self.dir.display(), error = %err, "log store poisoned");
        let shared = Arc::new(err);
        *p = Some(Arc::clone(&shared));
        Error::Shared(shared)
    }

    /// Records in the `SYNC` file that the log is durable through `pos` (already synced), so
    /// that recovery treats a bad record before it as damage, never as a torn tail.
    pub fn record_durable(&self, pos: LogPosition) -> Result<()> {
        let mut mark = self.sync.lock();
        let Some(m) = mark.as_mut() else {
            return Ok(());
        };
        match m.record(pos) {
            Ok(true) => {
                Counters::add(&self.counters.syncs, 1);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(self.poison("write", self.dir.join(sync::SYNC_FILE), e)),
        }
    }

    /// The failure that poisoned the store, if any.
    pub fn poisoned(&self) -> Option<Arc<Error>> {
        self.poison.read().clone()
    }

    /// `Err(Poisoned)` once a write or sync failed.
    pub fn check_poison(&self) -> Result<()> {
        match self.poisoned() {
            Some(cause) => Err(Error::Poisoned {
                path: self.dir.clone(),
                cause,
            }),
            None => Ok(()),
        }
    }

    /// The reader of a new active segment: mapped ahead of its end when sealed segments are
    /// mapped too, else positioned reads.
    pub fn active_reader(&self, path: &Path, file: Arc<dyn VfsFile>) -> Result<SegmentReader> {
        active_reader(self.vfs.as_ref(), &self.opts, path, file)
    }
}

pub(super) fn active_reader(
    vfs: &dyn Vfs,
    opts: &LogStoreOptions,
    path: &Path,
    file: Arc<dyn VfsFile>,
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

//! The log store's flusher on the write pipeline: writes frozen batches to the segment files and
//! makes them durable.
//!
//! `write` hands a batch's chunks to the OS in order ([`Durability::Written`]); a chunk of the
//! next segment first seals the active one (syncs it, then maps it for reading), creates the new
//! file and registers its reader, and only then switches to it, so only the last segment can
//! ever have a torn tail, and a failure before the switch leaves the store as it was. `sync`
//! `fdatasync`s the active segment, and the directory if a segment was created since the last
//! sync, then records the new durable position in the `SYNC` file and syncs that
//! ([`Durability::Durable`] only then).
//!
//! Any failure poisons the store: the pipeline runs with no retry, since after a failed write
//! or sync the state of the file is unknown.
//!
//! [`Durability::Written`]: crate::Durability::Written
//! [`Durability::Durable`]: crate::Durability::Durable

use std::sync::Arc;

use super::core::{Core, Counters};
use super::delta::LogBatch;
use super::segments::SegmentReader;
use crate::error::{Error, Result};
use crate::format::checkpoint::LogPosition;
use crate::vfs::{OpenMode, VfsFile};
use spillway_write::{EpochRange, Flusher};

/// The file end of the log: the active segment and how much of it was written.
pub(super) struct LogFlusher {
    pub core: Arc<Core>,
    pub active: u64,
    pub file: Arc<dyn VfsFile>,
    pub written_len: u64,
    /// A segment file was created since the directory was last synced.
    pub dir_dirty: bool,
}

impl std::fmt::Debug for LogFlusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFlusher")
            .field("active", &self.active)
            .field("written_len", &self.written_len)
            .finish_non_exhaustive()
    }
}

impl LogFlusher {
    /// Seals the active segment (sync, then map it) and makes `next` the active one.
    fn roll(&mut self, next: u64) -> Result<()> {
        let core = Arc::clone(&self.core);
        if next != self.active + 1 {
            return Err(Error::Internal(format!(
                "log store {}: a batch jumps from segment {} to segment {next}",
                core.dir.display(),
                self.active
            )));
        }
        let old = self.active;
        if let Err(e) = self.file.sync_data() {
            return Err(core.poison("fsync", core.segment_path(old), e));
        }
        Counters::add(&core.counters.syncs, 1);
        let sealed = if core.opts.map_sealed {
            SegmentReader::Mapped(
                core.vfs
                    .map(&core.segment_path(old))
                    .map_err(|e| core.poison("map", core.segment_path(old), e))?,
            )
        } else {
            SegmentReader::File(Arc::clone(&self.file))
        };
        let path = core.segment_path(next);
        let file = core
            .vfs
            .open(&path, OpenMode::Create)
            .map_err(|e| core.poison("create", path.clone(), e))?;
        let reader = core
            .active_reader(&path, Arc::clone(&file))
            .map_err(|e| core.poison_with(e))?;
        // Everything that can fail comes before the switch.
        {
            let mut segs = core.segments.write();
            segs.insert(old, sealed);
            segs.insert(next, reader);
        }
        self.active = next;
        self.file = file;
        self.written_len = 0;
        self.dir_dirty = true;
        // Only now, with both segments readable, may readers learn that `next` is active.
        core.written.publish(next, 0);
        Ok(())
    }
}

impl Flusher for LogFlusher {
    type Batch = Arc<LogBatch>;
    type Snapshot = ();
    type Error = Error;

    fn write(&mut self, batch: &Arc<LogBatch>, _epochs: EpochRange) -> Result<()> {
        let core = Arc::clone(&self.core);
        core.check_poison()?;
        for c in &batch.chunks {
            if c.segment != self.active {
                self.roll(c.segment)?;
            }
            if c.start != self.written_len {
                let e = Error::Internal(format!(
                    "log store {}: a batch continues segment {} at offset {}, but it was written up to {}",
                    core.dir.display(),
                    c.segment,
                    c.start,
                    self.written_len
                ));
                return Err(core.poison_with(e));
            }
            if let Err(e) = self.file.write_at(&c.bytes, c.start) {
                return Err(core.poison("write", core.segment_path(self.active), e));
            }
            self.written_len += c.bytes.len() as u64;
            Counters::add(&core.counters.bytes_written, c.bytes.len() as u64);
            core.written.publish(self.active, self.written_len);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        let core = Arc::clone(&self.core);
        core.check_poison()?;
        if let Err(e) = self.file.sync_data() {
            return Err(core.poison("fsync", core.segment_path(self.active), e));
        }
        Counters::add(&core.counters.syncs, 1);
        if self.dir_dirty {
            if let Err(e) = core.vfs.sync_dir(&core.dir) {
                return Err(core.poison("fsync directory", core.dir.clone(), e));
            }
            Counters::add(&core.counters.syncs, 1);
            self.dir_dirty = false;
        }
        let pos = LogPosition {
            segment: self.active,
            offset: self.written_len,
        };
        core.record_durable(pos)?;
        let mut d = core.durable.lock();
        *d = (*d).max(pos);
        Ok(())
    }
}

//! Index checkpoints and compaction.
//!
//! **Checkpoint.** Under the writer lock: write out pending bytes, note the written position `P`
//! and copy the index (which then reflects exactly the records before `P`). Then, without the
//! lock: make the log durable through `P`, write `index.ckpt.tmp`, fsync it, rename it over
//! `index.ckpt`, fsync the directory. A crash at any step leaves either the old checkpoint or
//! the new one, and both only refer to durable bytes.
//!
//! **Compaction.** For each sealed segment whose live fraction is below the threshold, copy its
//! live put records (byte for byte: same key, same checksum) to the end of the log and point the
//! index at the copies. A tombstone is copied only if its key is not live and an older segment
//! still exists (it may shadow a put there during a full-scan recovery). Then take a durable
//! checkpoint, and only then delete the victims and fsync the directory. A crash before the
//! checkpoint leaves the victims in place (the copies are harmless duplicates, later in the log,
//! so they win); a crash after it leaves victims that nothing refers to, removed by the next
//! compaction.

use std::sync::atomic::Ordering;

use super::LogStore;
use super::segments::SegmentReader;
use crate::error::{Error, Result};
use crate::format::checkpoint::{self, Location, LogPosition};
use crate::format::record::{self, RecordKind};
use crate::format::segment;
use crate::vfs::OpenMode;

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// Segments rewritten and deleted.
    pub segments_removed: u64,
    /// Live records copied forward.
    pub records_copied: u64,
    /// Tombstones copied forward.
    pub tombstones_copied: u64,
    /// Bytes of disk space given back.
    pub bytes_reclaimed: u64,
}

impl LogStore {
    /// Writes a durable index checkpoint, so that the next open scans only what follows.
    pub fn checkpoint(&self) -> Result<()> {
        let _m = self.maintenance.lock();
        self.checkpoint_locked()
    }

    fn checkpoint_locked(&self) -> Result<()> {
        let (tail, entries) = {
            let mut w = self.writable()?.lock();
            self.write_out(&mut w)?;
            w.since_checkpoint = 0;
            let idx = self.index.read();
            let entries: Vec<_> = idx.map.iter().map(|(k, l)| (*k, *l)).collect();
            (w.written_position(), entries)
        };
        self.sync_to(tail)?;
        let bytes = checkpoint::encode(tail, entries.iter().map(|(k, l)| (k, l)));
        let tmp = self.dir.join(checkpoint::CHECKPOINT_TMP_FILE);
        let dst = self.dir.join(checkpoint::CHECKPOINT_FILE);
        let f = self
            .vfs
            .open(&tmp, OpenMode::Create)
            .map_err(|e| self.poison("create", tmp.clone(), e))?;
        f.write_at(&bytes, 0)
            .and_then(|_| f.sync_data())
            .map_err(|e| self.poison("write", tmp.clone(), e))?;
        self.vfs
            .rename(&tmp, &dst)
            .map_err(|e| self.poison("rename", tmp.clone(), e))?;
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| self.poison("fsync directory", self.dir.clone(), e))?;
        self.counters.syncs.fetch_add(2, Ordering::Relaxed);
        Ok(())
    }

    /// Rewrites mostly-dead sealed segments and deletes them, giving their space back.
    pub fn compact(&self) -> Result<CompactionReport> {
        let _m = self.maintenance.lock();
        let writer = self.writable()?;
        let active = writer.lock().active;
        let victims: Vec<(u64, u64)> = {
            let idx = self.index.read();
            idx.sizes
                .iter()
                .filter(|(id, _)| **id != active)
                .filter(|(id, size)| {
                    let live = idx.live.get(id).copied().unwrap_or(0);
                    (live as f64) < self.opts.compact_below * (**size as f64)
                })
                .map(|(id, size)| (*id, *size))
                .collect()
        };
        let mut report = CompactionReport::default();
        if victims.is_empty() {
            return Ok(report);
        }
        for &(victim, _) in &victims {
            self.copy_live(victim, &mut report)?;
        }
        self.checkpoint_locked()?;
        for &(victim, size) in &victims {
            let path = self.segment_path(victim);
            self.segments.write().remove(&victim);
            self.index.write().sizes.remove(&victim);
            self.vfs
                .remove_file(&path)
                .map_err(|e| self.poison("remove", path.clone(), e))?;
            report.segments_removed += 1;
            report.bytes_reclaimed += size;
        }
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| self.poison("fsync directory", self.dir.clone(), e))?;
        tracing::info!(store = %self.dir.display(), ?report, "compaction done");
        Ok(report)
    }

    fn copy_live(&self, victim: u64, report: &mut CompactionReport) -> Result<()> {
        let path = self.segment_path(victim);
        let view = match self.segments.read().get(&victim) {
            Some(SegmentReader::Mapped(v)) => v.clone(),
            _ => self
                .vfs
                .map(&path)
                .map_err(|e| Error::io("map", &path, e))?,
        };
        let data: &[u8] = view.as_ref().as_ref();
        let mut pos = segment::SEGMENT_HEADER_LEN;
        while pos < data.len() {
            let r = record::decode(&data[pos..])
                .map_err(|e| e.at("record", format!("{} offset {pos}", path.display())))?;
            let len = r.header.record_len();
            let here = Location {
                segment: victim,
                offset: pos as u64,
                len: len as u32,
            };
            let raw = &data[pos..pos + len as usize];
            let mut w = self.writable()?.lock();
            match r.header.kind {
                RecordKind::Put => {
                    if self.index.read().map.get(&r.header.key) == Some(&here) {
                        let loc = self.append(&mut w, len, |out| out.extend_from_slice(raw))?;
                        let mut idx = self.index.write();
                        idx.insert(r.header.key, loc);
                        idx.sizes.insert(w.active, w.end());
                        report.records_copied += 1;
                    }
                }
                RecordKind::Tombstone => {
                    let idx = self.index.read();
                    let older_exists = idx.sizes.keys().next().is_some_and(|&first| first < victim);
                    let live = idx.map.contains_key(&r.header.key);
                    drop(idx);
                    if older_exists && !live {
                        self.append(&mut w, len, |out| out.extend_from_slice(raw))?;
                        self.index.write().sizes.insert(w.active, w.end());
                        report.tombstones_copied += 1;
                    }
                }
            }
            if w.pending.len() >= self.opts.write_buffer {
                self.write_out(&mut w)?;
            }
            pos += len as usize;
        }
        Ok(())
    }

    /// The position up to which the log is known durable.
    pub fn durable_position(&self) -> LogPosition {
        *self.durable.lock()
    }
}

//! Index checkpoints and compaction.
//!
//! **Checkpoint.** Under one read lock of the index: copy it and its tail `P` (the index then
//! reflects exactly the records before `P`). Then make the log durable through `P` (a durable
//! flush of the pipeline covers every write applied before it), write `index.ckpt.tmp`, fsync
//! it, rename it over `index.ckpt`, fsync the directory. A crash at any step leaves either the
//! old checkpoint or the new one, and both only refer to durable bytes.
//!
//! **Compaction.** For each sealed segment (wholly written, before the active one) whose live
//! fraction is below the threshold, copy its live put records (byte for byte: same key, same
//! checksum) to the end of the log through the write pipeline, which points the index at the
//! copies if the index still points at the originals (a write in between wins). A tombstone is copied only if its key is not live and an older segment
//! still exists (it may shadow a put there during a full-scan recovery). Then take a durable
//! checkpoint, and only then delete the victims and fsync the directory. A crash before the
//! checkpoint leaves the victims in place (the copies are harmless duplicates, later in the log,
//! so they win); a crash after it leaves victims that nothing refers to, removed by the next
//! compaction.

use std::sync::atomic::Ordering;

use super::LogStore;
use super::SalvageReport;
use super::delta::{CopyRecord, LogWrite};
use super::segments::{Scanned, SegmentReader, records_tolerant};
use crate::error::{Error, Result};
use crate::format::checkpoint::{self, Location, LogPosition};
use crate::format::record;
use crate::format::segment;
use crate::memory::{Mapped, MappedVec};
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
    /// Bytes of the segments removed.
    pub bytes_removed: u64,
    /// Bytes of the copies appended to the log.
    pub bytes_copied: u64,
    /// Disk space given back: the segments removed less the copies written.
    pub bytes_reclaimed: u64,
}

impl LogStore {
    /// Writes a durable index checkpoint, so that the next open scans only what follows.
    pub fn checkpoint(&self) -> Result<()> {
        let _m = self.maintenance.lock();
        self.checkpoint_locked()
    }

    fn checkpoint_locked(&self) -> Result<()> {
        let pipeline = self.writable()?;
        // The entries go straight into their encoded form (36 bytes each, the least the
        // snapshot can take), sorted in place and written from there: no second copy of the
        // index is made, as a list of keys and locations and then its encoding would be. The
        // list is a mapping of the store's own (`memory::Mapped`), not one of glibc's, whose
        // release would raise glibc's thresholds to its size (7.2 MB for W4's 200,000 keys; a
        // collected vector was 9.4 MB, its capacity doubled past them).
        let (tail, mut entries) = {
            let mut idx = self.core.index.write();
            idx.since_checkpoint = 0;
            let mut entries = MappedVec::<[u8; checkpoint::CHECKPOINT_ENTRY_LEN]>::with_capacity_in(
                idx.map.len(),
                Mapped,
            );
            entries.extend(
                idx.map
                    .iter()
                    .map(|(k, l)| checkpoint::encode_entry(&k, &l)),
            );
            (idx.tail, entries)
        };
        // In key order (an entry starts with its key, and keys are unique): the checkpoint is
        // then a function of the index's contents alone.
        entries.sort_unstable();
        pipeline.flush(true)?;
        let body = entries.as_flattened();
        let header = checkpoint::encode_header(tail, body);
        let tmp = self.core.dir.join(checkpoint::CHECKPOINT_TMP_FILE);
        let dst = self.core.dir.join(checkpoint::CHECKPOINT_FILE);
        let f = self
            .core
            .vfs
            .open(&tmp, OpenMode::Create)
            .map_err(|e| self.core.poison("create", tmp.clone(), e))?;
        f.write_at(&header, 0)
            .and_then(|_| f.write_at(body, checkpoint::CHECKPOINT_HEADER_LEN as u64))
            .and_then(|_| f.sync_data())
            .map_err(|e| self.core.poison("write", tmp.clone(), e))?;
        self.core
            .vfs
            .rename(&tmp, &dst)
            .map_err(|e| self.core.poison("rename", tmp.clone(), e))?;
        self.core.vfs.sync_dir(&self.core.dir).map_err(|e| {
            self.core
                .poison("fsync directory", self.core.dir.clone(), e)
        })?;
        self.core.counters.syncs.fetch_add(2, Ordering::Relaxed);
        Ok(())
    }

    /// Rewrites mostly-dead sealed segments and deletes them, giving their space back.
    pub fn compact(&self) -> Result<CompactionReport> {
        let _m = self.maintenance.lock();
        self.writable()?;
        // Segments before the one the flusher appends to are sealed and wholly written.
        let active = self.core.written.active();
        let victims: Vec<(u64, u64)> = {
            let idx = self.core.index.read();
            idx.sizes
                .iter()
                .filter(|(id, _)| **id < active)
                .filter(|(id, size)| {
                    // The live share of what records occupy: a segment whose records are all
                    // live has a share of 1 and is never rewritten for nothing.
                    let live = idx.live.get(id).copied().unwrap_or(0);
                    let body = size.saturating_sub(segment::SEGMENT_HEADER_LEN as u64);
                    (live as f64) < self.core.opts.compact_below * (body as f64)
                })
                .map(|(id, size)| (*id, *size))
                .collect()
        };
        let mut report = CompactionReport::default();
        if victims.is_empty() {
            return Ok(report);
        }
        let before = self.core.index.read().tail;
        for &(victim, _) in &victims {
            self.copy_live(victim, false, &mut report)?;
        }
        report.bytes_copied = self.log_bytes_since(before);
        self.checkpoint_locked()?;
        let ids: Vec<u64> = victims.iter().map(|&(id, _)| id).collect();
        report.bytes_removed = self.remove_segments(&ids)?;
        report.segments_removed = ids.len() as u64;
        report.bytes_reclaimed = report.bytes_removed.saturating_sub(report.bytes_copied);
        tracing::info!(store = %self.core.dir.display(), ?report, "compaction done");
        Ok(report)
    }

    /// Repair: copies every record of the damaged segments `victims` that a checksum still
    /// vouches for and that is still needed to the end of the log, makes the copies durable
    /// with a checkpoint that no longer refers to the victims, and only then removes them.
    /// A crash before the checkpoint leaves the victims in place (the copies are later in the
    /// log, so they win) and the next repair does it again.
    pub(super) fn salvage(&self, victims: &[u64]) -> Result<SalvageReport> {
        let _m = self.maintenance.lock();
        self.writable()?;
        let mut copied = CompactionReport::default();
        let mut report = SalvageReport::default();
        for &victim in victims {
            report.bytes_dropped += self.copy_live(victim, true, &mut copied)?;
        }
        self.checkpoint_locked()?;
        self.remove_segments(victims)?;
        report.segments = victims.to_vec();
        report.records_copied = copied.records_copied;
        report.tombstones_copied = copied.tombstones_copied;
        tracing::warn!(store = %self.core.dir.display(), ?report, "salvaged damaged segments");
        Ok(report)
    }

    /// Log bytes appended after `from`.
    fn log_bytes_since(&self, from: LogPosition) -> u64 {
        let idx = self.core.index.read();
        idx.sizes
            .range(from.segment..)
            .map(|(&id, &size)| {
                if id == from.segment {
                    size.saturating_sub(from.offset)
                } else {
                    size
                }
            })
            .sum()
    }

    /// Removes segments that a durable checkpoint no longer refers to; returns their bytes.
    fn remove_segments(&self, ids: &[u64]) -> Result<u64> {
        let mut removed = 0;
        for &id in ids {
            let path = self.segment_path(id);
            self.core.segments.write().remove(&id);
            removed += self.core.index.write().sizes.remove(&id).unwrap_or(0);
            self.core
                .vfs
                .remove_file(&path)
                .map_err(|e| self.core.poison("remove", path.clone(), e))?;
        }
        self.core.vfs.sync_dir(&self.core.dir).map_err(|e| {
            self.core
                .poison("fsync directory", self.core.dir.clone(), e)
        })?;
        Ok(removed)
    }

    /// Copies the records of `victim` that may still be needed to the end of the log. With
    /// `tolerant`, damaged ranges are stepped over and their bytes returned; otherwise damage
    /// is an error.
    fn copy_live(&self, victim: u64, tolerant: bool, report: &mut CompactionReport) -> Result<u64> {
        let path = self.segment_path(victim);
        let view = match self.core.segments.read().get(&victim) {
            Some(SegmentReader::Mapped(v)) => v.clone(),
            _ => self
                .core
                .vfs
                .map(&path)
                .map_err(|e| Error::io("map", &path, e))?,
        };
        let data: &[u8] = view.as_ref().as_ref();
        let mut copies = Vec::new();
        let mut copy_bytes = 0;
        let mut dropped = 0u64;
        let header = segment::SEGMENT_HEADER_LEN;
        if tolerant && segment::decode_header(data) != Ok(victim) {
            dropped += header.min(data.len()) as u64;
        }
        for item in records_tolerant(data, header) {
            let (pos, r) = match item {
                Scanned::Record(pos, r) => (pos, r),
                Scanned::Damaged { start, end, .. } if tolerant => {
                    dropped += (end - start) as u64;
                    continue;
                }
                // Damage where nothing live is (what a salvage left behind, say) is dropped
                // with the segment; damage under a live record stops the compaction.
                Scanned::Damaged { start, end, reason } => {
                    let live = self.core.index.read().map.values().any(|l| {
                        l.segment == victim && l.offset < end as u64 && l.offset >= start as u64
                    });
                    if live {
                        return Err(Error::Corrupted {
                            what: "record",
                            location: format!("{} offset {start}", path.display()),
                            detail: format!(
                                "{reason}; the record is live, so compaction stopped before removing anything. Run `spillway verify --repair {}` to salvage the segment",
                                self.core.dir.display()
                            ),
                        });
                    }
                    continue;
                }
            };
            let len = r.header.record_len();
            let from = Location {
                segment: victim,
                offset: pos as u64,
                len: len as u32,
            };
            // Only what may still be needed; the pipeline checks again when it applies.
            let wanted = match r.header.kind {
                record::RecordKind::Put => {
                    self.core.index.read().map.get(&r.header.key) == Some(from)
                }
                record::RecordKind::Tombstone => true,
            };
            if wanted {
                let raw = &data[pos..pos + len as usize];
                copies.push(CopyRecord {
                    key: r.header.key,
                    kind: r.header.kind,
                    from,
                    raw: raw.to_vec(),
                });
                copy_bytes += raw.len();
            }
            if copy_bytes >= self.core.opts.write_buffer.max(1 << 16) {
                self.copy_batch(std::mem::take(&mut copies), report)?;
                copy_bytes = 0;
            }
        }
        self.copy_batch(copies, report)?;
        Ok(dropped)
    }

    fn copy_batch(&self, copies: Vec<CopyRecord>, report: &mut CompactionReport) -> Result<()> {
        if copies.is_empty() {
            return Ok(());
        }
        let done = self.writable()?.apply(LogWrite::Copy(copies))?;
        report.records_copied += done.puts;
        report.tombstones_copied += done.tombstones;
        Ok(())
    }

    /// The position up to which the log is known durable.
    pub fn durable_position(&self) -> LogPosition {
        *self.core.durable.lock()
    }

    fn segment_path(&self, id: u64) -> std::path::PathBuf {
        self.core.segment_path(id)
    }
}

//! The log store's delta on the write pipeline: records appended since the last freeze, not yet
//! handed to the OS.
//!
//! Callers encode their records (key, checksum and all) before they send them, outside any
//! lock. `apply`, which runs under the pipeline's writer role, copies the records that still
//! have to be written into the delta's chunks and points the index at them: from then on
//! readers find them ([`Durability::Applied`](crate::Durability::Applied)). A large batch of
//! puts (at least [`ADOPT_MIN`] bytes), all still to be written and all fitting in the current
//! segment, is not copied: its buffer becomes a chunk as it is, so that the delta never holds
//! a second copy of a caller's batch (nor the slack of a buffer grown to hold it). A chunk is
//! a run of bytes of one segment that starts at the offset where the flusher will write it; a
//! record that would not fit in the current segment starts a chunk at offset 0 of the next
//! one, beginning with its header. Freezing moves the chunks into an immutable [`LogBatch`], which
//! the flusher writes in order, and the next delta carries on at the same position.
//!
//! Invariants:
//! - chunks follow each other without a gap: each starts where the previous one ends, or at
//!   offset 0 of the next segment; the first one starts at the position where the previous
//!   batch ended;
//! - every index entry that points past the written part of the log points into a chunk of the
//!   live delta or of a frozen batch not yet written;
//! - `index.tail` is the end of the last chunk, and `index.sizes` holds every segment the
//!   chunks touch.

use std::sync::Arc;

use super::core::{Core, Counters};
use super::index::Index;
use crate::format::checkpoint::{Location, LogPosition};
use crate::format::record::{self, RecordKind};
use crate::format::segment::{self, SEGMENT_HEADER_LEN};
use crate::key::ContentKey;
use spillway_write::{Delta, Epoch, Freeze, Frozen};

/// Encoded puts at least this large become a chunk without a copy (see the module docs); a
/// chunk at least this large is not extended with later records either.
const ADOPT_MIN: usize = 64 << 10;

/// Puts encoded by the caller: records back to back in `bytes`, and where each one is.
#[derive(Debug, Default)]
pub(super) struct EncodedPuts {
    pub bytes: Vec<u8>,
    /// Key, start in `bytes` and length of each record.
    pub records: Vec<(ContentKey, usize, usize)>,
}

/// A live record that compaction copies to the end of the log, byte for byte.
#[derive(Debug)]
pub(super) struct CopyRecord {
    pub key: ContentKey,
    pub kind: RecordKind,
    /// Where it is now; a put is copied only if the index still points there.
    pub from: Location,
    pub raw: Vec<u8>,
}

/// One write on a log store's pipeline.
#[derive(Debug)]
pub(super) enum LogWrite {
    /// Store these objects (keys already stored are skipped).
    Put(EncodedPuts),
    /// Delete these keys (keys not stored are skipped).
    Delete(Vec<ContentKey>),
    /// Compaction: copy these records forward.
    Copy(Vec<CopyRecord>),
}

/// What one write appended to the log: what [`WriteHandle::take_result`] gives for the
/// handles of [`LogStore::submit_puts`] and [`LogStore::submit_deletes`].
///
/// [`WriteHandle::take_result`]: crate::write::WriteHandle::take_result
/// [`LogStore::submit_puts`]: super::LogStore::submit_puts
/// [`LogStore::submit_deletes`]: super::LogStore::submit_deletes
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Appended {
    /// Put records (objects not stored before; keys already stored are skipped).
    pub puts: u64,
    /// Tombstones (keys that were stored).
    pub tombstones: u64,
}

/// Bytes of one segment, to be written at `start`.
#[derive(Debug)]
pub(super) struct Chunk {
    pub segment: u64,
    pub start: u64,
    pub bytes: Vec<u8>,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

/// The bytes of the records at `loc`, if `chunks` hold them.
fn find(chunks: &[Chunk], loc: Location) -> Option<&[u8]> {
    let end = loc.offset.checked_add(u64::from(loc.len))?;
    chunks.iter().rev().find_map(|c| {
        if c.segment != loc.segment || loc.offset < c.start || end > c.end() {
            return None;
        }
        let from = usize::try_from(loc.offset - c.start).ok()?;
        c.bytes.get(from..from + loc.len as usize)
    })
}

/// A frozen delta: what the flusher writes, and what readers look in until it is written.
#[derive(Debug)]
pub(super) struct LogBatch {
    pub chunks: Vec<Chunk>,
}

impl LogBatch {
    /// The bytes of the record at `loc`, if this batch holds it.
    pub fn find(&self, loc: Location) -> Option<&[u8]> {
        find(&self.chunks, loc)
    }
}

/// See the module docs.
pub(super) struct LogDelta {
    core: Arc<Core>,
    chunks: Vec<Chunk>,
    /// Where the next record goes.
    segment: u64,
    end: u64,
    bytes: usize,
}

impl std::fmt::Debug for LogDelta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogDelta")
            .field("segment", &self.segment)
            .field("end", &self.end)
            .field("chunks", &self.chunks.len())
            .finish_non_exhaustive()
    }
}

impl LogDelta {
    /// An empty delta whose first record goes at `tail`.
    pub fn new(core: Arc<Core>, tail: LogPosition) -> LogDelta {
        LogDelta {
            core,
            chunks: Vec::new(),
            segment: tail.segment,
            end: tail.offset,
            bytes: 0,
        }
    }

    /// The bytes of the record at `loc`, if this delta holds it.
    pub fn find(&self, loc: Location) -> Option<&[u8]> {
        find(&self.chunks, loc)
    }

    /// Whether `p`'s buffer can become a chunk as it is: large, its records back to back from
    /// its start to its end, none stored already, and all of it fits in the current segment.
    fn can_adopt(&self, idx: &Index, p: &EncodedPuts) -> bool {
        let header = SEGMENT_HEADER_LEN as u64;
        let mut next = 0;
        let back_to_back = p.records.iter().all(|&(_, start, len)| {
            let ok = start == next;
            next = start + len;
            ok
        }) && next == p.bytes.len();
        p.bytes.len() >= ADOPT_MIN
            && back_to_back
            && self.end >= header
            && self.end + p.bytes.len() as u64 <= self.core.opts.segment_size
            && p.records.iter().all(|(k, _, _)| !idx.map.contains_key(k))
    }

    /// Makes `p`'s buffer the next chunk and points the index at its records; returns how many.
    fn adopt(&mut self, idx: &mut Index, p: EncodedPuts) -> u64 {
        let start = self.end;
        for &(key, off, len) in &p.records {
            let loc = Location {
                segment: self.segment,
                offset: start + off as u64,
                len: len as u32,
            };
            idx.insert(key, loc);
        }
        let len = p.bytes.len();
        self.chunks.push(Chunk {
            segment: self.segment,
            start,
            bytes: p.bytes,
        });
        self.end += len as u64;
        self.bytes += len;
        idx.since_checkpoint += len as u64;
        p.records.len() as u64
    }

    /// Appends one encoded record, starting the next segment first if it would not fit in this
    /// one; returns its location.
    fn append(&mut self, idx: &mut Index, rec: &[u8]) -> Location {
        let len = rec.len() as u64;
        let header = SEGMENT_HEADER_LEN as u64;
        if self.end > header && self.end + len > self.core.opts.segment_size {
            idx.sizes.insert(self.segment, self.end);
            self.segment += 1;
            self.chunks.push(Chunk {
                segment: self.segment,
                start: 0,
                bytes: segment::encode_header(self.segment).to_vec(),
            });
            self.end = header;
            self.bytes += SEGMENT_HEADER_LEN;
            idx.since_checkpoint += header;
        }
        match self.chunks.last_mut() {
            Some(c)
                if c.segment == self.segment
                    && c.end() == self.end
                    && (c.bytes.len() < ADOPT_MIN
                        || c.bytes.capacity() - c.bytes.len() >= rec.len()) =>
            {
                c.bytes.extend_from_slice(rec);
            }
            _ => self.chunks.push(Chunk {
                segment: self.segment,
                start: self.end,
                bytes: rec.to_vec(),
            }),
        }
        let loc = Location {
            segment: self.segment,
            offset: self.end,
            len: len as u32,
        };
        self.end += len;
        self.bytes += rec.len();
        idx.since_checkpoint += len;
        loc
    }
}

impl Delta for LogDelta {
    type Write = LogWrite;
    type Applied = Appended;

    fn apply(&mut self, _epoch: Epoch, write: LogWrite) -> Appended {
        let core = Arc::clone(&self.core);
        let mut idx = core.index.write();
        let mut done = Appended::default();
        match write {
            LogWrite::Put(p) if self.can_adopt(&idx, &p) => {
                done.puts = self.adopt(&mut idx, p);
                Counters::add(&core.counters.puts, done.puts);
            }
            LogWrite::Put(p) => {
                let mut skipped = 0;
                for &(key, start, len) in &p.records {
                    if idx.map.contains_key(&key) {
                        skipped += 1;
                        continue;
                    }
                    let loc = self.append(&mut idx, &p.bytes[start..start + len]);
                    idx.insert(key, loc);
                    done.puts += 1;
                }
                Counters::add(&core.counters.puts, done.puts);
                Counters::add(&core.counters.dedup_hits, skipped);
            }
            LogWrite::Delete(keys) => {
                let mut rec = Vec::with_capacity(record::record_len(0, 0) as usize);
                for k in &keys {
                    if !idx.map.contains_key(k) {
                        continue;
                    }
                    rec.clear();
                    record::encode(&mut rec, RecordKind::Tombstone, k, &[], &[]);
                    self.append(&mut idx, &rec);
                    idx.remove(k);
                    done.tombstones += 1;
                }
                Counters::add(&core.counters.deletes, done.tombstones);
            }
            LogWrite::Copy(records) => {
                for r in &records {
                    match r.kind {
                        RecordKind::Put => {
                            if idx.map.get(&r.key) == Some(r.from) {
                                let loc = self.append(&mut idx, &r.raw);
                                idx.insert(r.key, loc);
                                done.puts += 1;
                            }
                        }
                        RecordKind::Tombstone => {
                            // Kept only while it may shadow a put in an older segment during a
                            // full-scan recovery.
                            let older_exists =
                                idx.sizes.keys().next().is_some_and(|&s| s < r.from.segment);
                            if older_exists && !idx.map.contains_key(&r.key) {
                                self.append(&mut idx, &r.raw);
                                done.tombstones += 1;
                            }
                        }
                    }
                }
            }
        }
        idx.sizes.insert(self.segment, self.end);
        idx.tail = LogPosition {
            segment: self.segment,
            offset: self.end,
        };
        done
    }

    fn size_bytes(&self) -> usize {
        self.bytes
    }
}

impl Freeze for LogDelta {
    type Batch = Arc<LogBatch>;
    type FrozenView = Arc<LogBatch>;

    fn freeze(self) -> Frozen<Self> {
        let batch = Arc::new(LogBatch {
            chunks: self.chunks,
        });
        Frozen {
            batch: Arc::clone(&batch),
            view: batch,
            next: LogDelta {
                core: self.core,
                chunks: Vec::new(),
                segment: self.segment,
                end: self.end,
                bytes: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_returns_a_record_only_from_the_chunk_that_holds_it_whole() {
        let chunks = vec![
            Chunk {
                segment: 3,
                start: 100,
                bytes: (0u8..50).collect(),
            },
            Chunk {
                segment: 4,
                start: 0,
                bytes: (100u8..140).collect(),
            },
        ];
        let at = |segment, offset, len| Location {
            segment,
            offset,
            len,
        };
        assert_eq!(
            find(&chunks, at(3, 110, 5)),
            Some(&[10u8, 11, 12, 13, 14][..])
        );
        assert_eq!(find(&chunks, at(4, 38, 2)), Some(&[138u8, 139][..]));
        assert_eq!(find(&chunks, at(3, 99, 2)), None, "starts before the chunk");
        assert_eq!(find(&chunks, at(3, 140, 11)), None, "ends after the chunk");
        assert_eq!(find(&chunks, at(5, 0, 1)), None, "another segment");
        assert_eq!(
            find(&chunks, at(3, u64::MAX, 2)),
            None,
            "overflowing location"
        );
    }
}

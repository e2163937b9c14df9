//! Opening a log store: the marker, the lock, and recovery.
//!
//! Recovery rebuilds the index from the checkpoint (if it is present, intact and consistent
//! with the segments) plus a scan of the log after the checkpoint's tail position. In the last
//! segment, a bad record with no valid record after it is a torn write from a crash: the segment
//! is cut there and the cut reported. A bad record anywhere else is corruption and opening fails
//! with its file and offset, unless the caller asked to cut a damaged tail
//! ([`LogStoreOptions::truncate_corrupt_tail`]). Such a repair cut can lie before the
//! checkpoint's tail (a damaged header of the segment the tail is in); the checkpoint is then
//! rewritten before open returns, so that it never names bytes that later records reuse.
//!
//! A checkpoint is trusted only if every location it names lies wholly inside an existing
//! segment, at or before its tail (lengths are added with overflow checks: the fields are
//! read from disk).
//!
//! A `STORE` marker shorter than a whole marker (empty, zeros, or a prefix of the real one) in a
//! directory without segments or checkpoint is what a crash while creating the store leaves
//! behind; a writable open with `create` set creates the store again instead of failing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::{Mutex, RwLock};

use super::core::{Core, Counters};
use super::flusher::LogFlusher;
use super::index::Index;
use super::pipeline::Pipeline;
use super::segments::SegmentReader;
use super::{LogStore, LogStoreOptions};
use crate::error::{Error, Result};
use crate::format::checkpoint::{self, Checkpoint, Location, LogPosition};
use crate::format::record::{self, RECORD_MAGIC, RecordKind};
use crate::format::{DecodeError, marker, segment};
use crate::vfs::{OpenMode, Vfs};

/// File name of the lock file inside a store directory.
pub const LOCK_FILE: &str = "LOCK";

/// A cut made at the end of the log during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment cut.
    pub segment: u64,
    /// Where it now ends.
    pub offset: u64,
    /// Bytes removed.
    pub bytes_cut: u64,
    /// Why the first removed record was rejected.
    pub reason: String,
}

/// What recovery did when the store was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The index checkpoint was loaded.
    pub checkpoint_used: bool,
    /// Why an existing checkpoint was not used (the log was scanned in full instead).
    pub checkpoint_problem: Option<String>,
    /// Log bytes scanned after the checkpoint.
    pub bytes_scanned: u64,
    /// Records replayed from the scan.
    pub records_replayed: u64,
    /// A torn tail that was cut (or, read-only, ignored).
    pub torn_tail: Option<TornTail>,
}

fn holder_text() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".into());
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown program".into());
    format!("process {} ({exe}) on {host}", std::process::id())
}

impl LogStore {
    /// Opens the store in `dir` on the given file system (tests pass a [`SimFs`](crate::vfs::SimFs)).
    pub fn open_on(vfs: Arc<dyn Vfs>, dir: &Path, opts: LogStoreOptions) -> Result<LogStore> {
        let dir = dir.to_path_buf();
        let names = match vfs.read_dir(&dir) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !opts.create || opts.read_only {
                    return Err(Error::NotAStore {
                        path: dir,
                        detail: "the directory does not exist".into(),
                    });
                }
                vfs.create_dir_all(&dir)
                    .map_err(|e| Error::io("create directory", &dir, e))?;
                Vec::new()
            }
            Err(e) => return Err(Error::io("list directory", &dir, e)),
        };
        check_marker(vfs.as_ref(), &dir, &names, &opts)?;

        let lock = if opts.read_only {
            None
        } else {
            match vfs
                .try_lock(&dir.join(LOCK_FILE), &holder_text())
                .map_err(|e| Error::io("lock", dir.join(LOCK_FILE), e))?
            {
                crate::vfs::LockOutcome::Acquired(g) => Some(g),
                crate::vfs::LockOutcome::HeldBy(holder) => {
                    return Err(Error::Locked { path: dir, holder });
                }
            }
        };

        let mut ids: Vec<u64> = names
            .iter()
            .filter_map(|n| segment::parse_file_name(n))
            .collect();
        ids.sort_unstable();
        let mut recovered = recover(vfs.as_ref(), &dir, &ids, &opts)?;

        let file_end = if opts.read_only {
            // Nothing is cut or written: the segments count as they are.
            for (&id, &len) in &recovered.lens {
                recovered.index.sizes.insert(id, len);
            }
            None
        } else {
            if names.iter().any(|n| n == checkpoint::CHECKPOINT_TMP_FILE) {
                let tmp = dir.join(checkpoint::CHECKPOINT_TMP_FILE);
                vfs.remove_file(&tmp)
                    .map_err(|e| Error::io("remove", tmp, e))?;
            }
            Some(prepare_file_end(vfs.as_ref(), &dir, &ids, &mut recovered)?)
        };

        let mut readers = BTreeMap::new();
        let active = file_end.as_ref().map(|w| w.active);
        for &id in &ids {
            let path = dir.join(segment::file_name(id));
            let reader = if Some(id) == active {
                continue;
            } else if opts.read_only || !opts.map_sealed {
                SegmentReader::File(
                    vfs.open(&path, OpenMode::Read)
                        .map_err(|e| Error::io("open", &path, e))?,
                )
            } else {
                SegmentReader::Mapped(vfs.map(&path).map_err(|e| Error::io("map", &path, e))?)
            };
            readers.insert(id, reader);
        }
        let durable = match &file_end {
            Some(w) => {
                let path = dir.join(segment::file_name(w.active));
                readers.insert(
                    w.active,
                    super::core::active_reader(vfs.as_ref(), &opts, &path, Arc::clone(&w.file))?,
                );
                let end = LogPosition {
                    segment: w.active,
                    offset: w.written_len,
                };
                recovered.index.sizes.insert(w.active, w.written_len);
                recovered.index.tail = end;
                recovered.index.since_checkpoint = w.since_checkpoint;
                end
            }
            None => LogPosition::default(),
        };

        let core = Arc::new(Core {
            dir,
            vfs,
            opts,
            index: RwLock::new(recovered.index),
            segments: RwLock::new(readers),
            counters: Counters::default(),
            poison: RwLock::new(None),
            written: Default::default(),
            durable: Mutex::new(durable),
        });
        let pipeline = match file_end {
            Some(w) => {
                core.written.publish(w.active, w.written_len);
                let flusher = LogFlusher {
                    core: Arc::clone(&core),
                    active: w.active,
                    file: w.file,
                    written_len: w.written_len,
                    dir_dirty: false,
                };
                Some(Pipeline::start(Arc::clone(&core), flusher)?)
            }
            None => None,
        };
        let store = LogStore {
            pipeline,
            core,
            maintenance: Mutex::new(()),
            recovery: recovered.report,
            closed: AtomicBool::new(false),
            roots: Default::default(),
            _lock: lock,
        };
        if let Some(t) = &store.recovery.torn_tail {
            tracing::warn!(store = %store.core.dir.display(), segment = t.segment, offset = t.offset,
                bytes_cut = t.bytes_cut, reason = %t.reason, "cut a torn log tail");
        }
        if store.pipeline.is_some()
            && (store.recovery.checkpoint_problem.is_some()
                || recovered.checkpoint_stale
                || store.recovery.bytes_scanned > store.core.opts.checkpoint_every / 4)
        {
            store.checkpoint()?;
        }
        Ok(store)
    }
}

/// Checks (or, for a new store, writes) the `STORE` marker.
fn check_marker(vfs: &dyn Vfs, dir: &Path, names: &[String], opts: &LogStoreOptions) -> Result<()> {
    let path = dir.join(marker::MARKER_FILE);
    let existing = if names.iter().any(|n| n == marker::MARKER_FILE) {
        Some(
            vfs.read_file(&path)
                .map_err(|e| Error::io("read", &path, e))?,
        )
    } else {
        None
    };
    // A crash while the store was being created: create it again (read-only: not a store).
    let interrupted = existing
        .as_deref()
        .is_some_and(|b| interrupted_creation(b, names));
    if let Some(bytes) = existing.filter(|_| !interrupted) {
        return match marker::decode(&bytes) {
            Ok(v) if v <= marker::STORE_VERSION => Ok(()),
            Ok(v) => Err(Error::UnsupportedVersion {
                path,
                found: v,
                supported: marker::STORE_VERSION,
            }),
            Err(DecodeError::BadMagic) => Err(Error::NotAStore {
                path: dir.to_path_buf(),
                detail: format!("{} is not a spillway marker", path.display()),
            }),
            Err(e) => Err(e.at("store marker", path.display().to_string())),
        };
    }
    let foreign: Vec<&String> = names
        .iter()
        .filter(|n| *n != LOCK_FILE && !(interrupted && *n == marker::MARKER_FILE))
        .collect();
    if !foreign.is_empty() || opts.read_only || !opts.create {
        return Err(Error::NotAStore {
            path: dir.to_path_buf(),
            detail: if foreign.is_empty() {
                "the directory is empty".into()
            } else {
                format!(
                    "it has no {} marker but holds {} other entries (such as {:?}); pick an empty or new directory",
                    marker::MARKER_FILE,
                    foreign.len(),
                    foreign[0]
                )
            },
        });
    }
    // A new store: the marker is written and made durable before anything else.
    let f = vfs
        .open(&path, OpenMode::Create)
        .map_err(|e| Error::io("create", &path, e))?;
    f.write_at(&marker::encode(marker::STORE_VERSION), 0)
        .and_then(|_| f.sync_data())
        .map_err(|e| Error::io("write", &path, e))?;
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    Ok(())
}

/// True if `marker` is what a crash while creating the store leaves behind: a short marker
/// (empty, zeros, or a prefix of the real one) in a directory without any log file. Such a
/// directory holds no data, so creating the store again loses nothing.
fn interrupted_creation(marker_bytes: &[u8], names: &[String]) -> bool {
    let full = marker::encode(marker::STORE_VERSION);
    marker_bytes.len() < marker::MARKER_LEN
        && (full.starts_with(marker_bytes) || marker_bytes.iter().all(|&b| b == 0))
        && !names.iter().any(|n| {
            segment::parse_file_name(n).is_some()
                || n == checkpoint::CHECKPOINT_FILE
                || n == checkpoint::CHECKPOINT_TMP_FILE
        })
}

struct Recovered {
    index: Index,
    report: RecoveryReport,
    /// Where the last segment must be cut, if anywhere.
    cut: Option<LogPosition>,
    /// Segment lengths as found (before any cut).
    lens: BTreeMap<u64, u64>,
    /// The cut lies before the tail of the checkpoint on disk (repair mode): that file no
    /// longer describes the log, and must be replaced before anything is appended past the cut.
    checkpoint_stale: bool,
}

fn recover(vfs: &dyn Vfs, dir: &Path, ids: &[u64], opts: &LogStoreOptions) -> Result<Recovered> {
    let mut lens = BTreeMap::new();
    for &id in ids {
        let path = dir.join(segment::file_name(id));
        let len = vfs
            .open(&path, OpenMode::Read)
            .and_then(|f| f.len())
            .map_err(|e| Error::io("open", &path, e))?;
        lens.insert(id, len);
    }
    let mut report = RecoveryReport::default();
    let mut index = Index::default();
    let mut start = LogPosition {
        segment: ids.first().copied().unwrap_or(0),
        offset: 0,
    };
    let ckpt_path = dir.join(checkpoint::CHECKPOINT_FILE);
    match vfs.read_file(&ckpt_path) {
        Ok(bytes) => match checkpoint::decode(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|c| validate(&c, &lens).map(|()| c))
        {
            Ok(c) => {
                for (k, loc) in c.entries {
                    index.insert(k, loc);
                }
                start = c.tail;
                report.checkpoint_used = true;
            }
            Err(problem) => {
                tracing::warn!(file = %ckpt_path.display(), %problem, "ignoring the index checkpoint; scanning the whole log");
                report.checkpoint_problem = Some(problem);
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("read", ckpt_path, e)),
    }

    let mut cut = None;
    let last = ids.last().copied();
    for &id in ids.iter().filter(|&&id| id >= start.segment) {
        let path = dir.join(segment::file_name(id));
        let is_last = Some(id) == last;
        let data = vfs
            .read_file(&path)
            .map_err(|e| Error::io("read", &path, e))?;
        match segment::decode_header(&data) {
            Ok(found) if found == id => {}
            Ok(found) => {
                return Err(Error::Corrupted {
                    what: "segment header",
                    location: path.display().to_string(),
                    detail: format!("the header names segment {found}, the file name {id}"),
                });
            }
            Err(DecodeError::UnsupportedVersion(v)) => {
                return Err(Error::UnsupportedVersion {
                    path,
                    found: v,
                    supported: segment::SEGMENT_VERSION,
                });
            }
            // The segment was being created when the process stopped: no valid record follows,
            // and no checkpoint vouches for its contents (a checkpoint whose tail lies in this
            // segment was written after the header was synced, so a bad header is damage).
            Err(e)
                if is_last
                    && (opts.truncate_corrupt_tail
                        || !(valid_record_after(&data, 1)
                            || (report.checkpoint_used && id == start.segment))) =>
            {
                report.torn_tail = Some(TornTail {
                    segment: id,
                    offset: 0,
                    bytes_cut: data.len() as u64,
                    reason: format!("segment header: {e}"),
                });
                cut = Some(LogPosition {
                    segment: id,
                    offset: 0,
                });
                continue;
            }
            Err(e) => return Err(e.at("segment header", path.display().to_string())),
        }
        let header = segment::SEGMENT_HEADER_LEN as u64;
        let pos = if id == start.segment {
            start.offset.max(header)
        } else {
            header
        };
        report.bytes_scanned += (data.len() as u64).saturating_sub(pos);
        for item in super::segments::records(&data, pos as usize) {
            match item {
                Ok((at, r)) => {
                    let loc = Location {
                        segment: id,
                        offset: at as u64,
                        len: r.header.record_len() as u32,
                    };
                    match r.header.kind {
                        RecordKind::Put => {
                            index.insert(r.header.key, loc);
                        }
                        RecordKind::Tombstone => {
                            index.remove(&r.header.key);
                        }
                    }
                    report.records_replayed += 1;
                }
                Err((at, e)) => {
                    let pos = at as u64;
                    let location = format!("{} offset {pos}", path.display());
                    if !is_last {
                        return Err(e.at("record", location));
                    }
                    if valid_record_after(&data, at + 1) && !opts.truncate_corrupt_tail {
                        return Err(Error::Corrupted {
                            what: "record",
                            location,
                            detail: format!(
                                "{e}; valid records follow, so this is damage rather than a torn write. \
                                 Run `spillway verify --repair` to cut the log here (the records after it are lost)"
                            ),
                        });
                    }
                    report.torn_tail = Some(TornTail {
                        segment: id,
                        offset: pos,
                        bytes_cut: data.len() as u64 - pos,
                        reason: e.to_string(),
                    });
                    cut = Some(LogPosition {
                        segment: id,
                        offset: pos,
                    });
                }
            }
        }
    }
    if let Some(c) = cut {
        // Entries the checkpoint knew in the part that is cut (possible only in repair mode)
        // point at bytes that will be gone.
        let stale: Vec<_> = index
            .map
            .iter()
            .filter(|(_, l)| l.segment == c.segment && l.offset + u64::from(l.len) > c.offset)
            .map(|(k, _)| *k)
            .collect();
        for k in &stale {
            index.remove(k);
        }
    }
    // A cut before the checkpoint's tail (a damaged header in repair mode) leaves a checkpoint
    // that names bytes about to be removed; new records would later fill them again, and the
    // next open would trust the checkpoint's entries and tail over them.
    let checkpoint_stale = report.checkpoint_used && cut.is_some_and(|c| c < start);
    Ok(Recovered {
        index,
        report,
        cut,
        lens,
        checkpoint_stale,
    })
}

/// Checks that a checkpoint only refers to bytes that exist.
fn validate(c: &Checkpoint, lens: &BTreeMap<u64, u64>) -> std::result::Result<(), String> {
    let header = segment::SEGMENT_HEADER_LEN as u64;
    if lens.is_empty() {
        return if c.entries.is_empty() {
            Ok(())
        } else {
            Err("it lists objects but the store has no segments".into())
        };
    }
    match lens.get(&c.tail.segment) {
        Some(&len) if c.tail.offset <= len && c.tail.offset >= header => {}
        _ => {
            return Err(format!(
                "its tail position (segment {}, offset {}) is not in the log",
                c.tail.segment, c.tail.offset
            ));
        }
    }
    for (key, loc) in &c.entries {
        let ok = loc.segment <= c.tail.segment
            && lens.get(&loc.segment).is_some_and(|&len| {
                loc.offset >= header
                    && loc
                        .offset
                        .checked_add(u64::from(loc.len))
                        .is_some_and(|end| end <= len)
            });
        if !ok {
            return Err(format!(
                "key {key} points at segment {} offset {}, which is not in the log",
                loc.segment, loc.offset
            ));
        }
    }
    Ok(())
}

/// True if some complete, checksum-valid record starts at or after `from`.
///
/// Each candidate costs a checksum over up to the rest of the segment, so a tail crafted with
/// many fake record headers could make this quadratic: after `MAX_CANDIDATES` candidates it
/// answers `true`, the safe side (the damage is then refused rather than cut).
fn valid_record_after(data: &[u8], from: usize) -> bool {
    const MAX_CANDIDATES: usize = 1024;
    let mut i = from;
    let mut candidates = 0;
    while i + RECORD_MAGIC.len() <= data.len() {
        match data[i..].windows(4).position(|w| w == RECORD_MAGIC) {
            Some(p) => {
                candidates += 1;
                if candidates > MAX_CANDIDATES || record::decode(&data[i + p..]).is_ok() {
                    return true;
                }
                i += p + 1;
            }
            None => return false,
        }
    }
    false
}

/// Applies a recovery cut and sets up the writer on the last segment (or a new first one).
/// The end of the log a writable store appends to.
struct FileEnd {
    active: u64,
    file: Arc<dyn crate::vfs::VfsFile>,
    written_len: u64,
    since_checkpoint: u64,
}

/// Cuts the log where recovery said, finds (or creates) the active segment, and makes what
/// recovery kept durable: it may have survived a process crash in the page cache without ever
/// being synced, and a checkpoint or a durable flush must not build on it before it is.
fn prepare_file_end(
    vfs: &dyn Vfs,
    dir: &Path,
    ids: &[u64],
    rec: &mut Recovered,
) -> Result<FileEnd> {
    let seg_path = |id: u64| -> PathBuf { dir.join(segment::file_name(id)) };
    if let Some(cut) = rec.cut {
        let path = seg_path(cut.segment);
        let f = vfs
            .open(&path, OpenMode::ReadWrite)
            .map_err(|e| Error::io("open", &path, e))?;
        f.set_len(cut.offset)
            .and_then(|_| f.sync_data())
            .map_err(|e| Error::io("truncate", &path, e))?;
        rec.lens.insert(cut.segment, cut.offset);
    }
    for (&id, &len) in &rec.lens {
        rec.index.sizes.insert(id, len);
    }
    let (active, file, written_len) = match ids.last() {
        Some(&id) => {
            let path = seg_path(id);
            let f = vfs
                .open(&path, OpenMode::ReadWrite)
                .map_err(|e| Error::io("open", &path, e))?;
            let len = rec.lens.get(&id).copied().unwrap_or(0);
            (id, f, len)
        }
        None => {
            let path = seg_path(1);
            let f = vfs
                .open(&path, OpenMode::Create)
                .map_err(|e| Error::io("create", &path, e))?;
            (1, f, 0)
        }
    };
    let path = seg_path(active);
    let mut written_len = written_len;
    if written_len == 0 {
        // A new segment, or one cut back to nothing: write its header.
        file.write_at(&segment::encode_header(active), 0)
            .map_err(|e| Error::io("write", &path, e))?;
        written_len = segment::SEGMENT_HEADER_LEN as u64;
    }
    file.sync_data().map_err(|e| Error::io("fsync", &path, e))?;
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    Ok(FileEnd {
        active,
        file,
        written_len,
        since_checkpoint: rec.report.bytes_scanned,
    })
}

//! Opening a log store: the marker, the lock, and recovery.
//!
//! Recovery rebuilds the index from the checkpoint plus a scan of the log after the
//! checkpoint's tail position. In the last segment, a bad record with no valid record after it
//! is a torn write from a crash: the segment is cut there and the cut reported. Anything else is
//! damage, and a normal open refuses it, changing nothing, with the file and offset named:
//! - a bad record with valid records after it, or in a sealed segment the scan reads;
//! - log bytes that the checkpoint vouches for and that are gone: a segment file it names is
//!   missing or shorter than it says, or a segment numbered between its tail segment and the
//!   last one is missing. A checkpoint is written only after the log is durable through its
//!   tail, and segments are deleted (by compaction or repair) only after a newer checkpoint
//!   stops naming them, so no crash leaves this behind.
//!
//! A checkpoint that does not decode, or that names positions no writer produces (lengths are
//! added with overflow checks: the fields are read from disk), is ignored and the whole log
//! scanned: it is only an index.
//!
//! **Repair mode** ([`LogStoreOptions::repair`]) scans the whole log and trusts no checkpoint.
//! Damage is stepped over (the next record whose checksum holds and whose key is its content's
//! hash starts the scan again), so every record a checksum vouches for is kept. A torn tail is
//! cut; segments with damage are salvaged once the store is open: their records that are still
//! needed are copied to the end of the log, a durable checkpoint stops naming them, and only
//! then are they removed (a damaged last segment first gets a new segment after it, which
//! becomes the active one). The report names the damaged ranges, the missing data and the keys
//! the old checkpoint listed that no surviving record holds. A repair always writes a new
//! checkpoint, so a cut before the old one's tail never leaves it naming bytes that later
//! records reuse. Read-only, repair mode changes nothing and reports what it would do.
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
use super::segments::Scanned;
use super::segments::SegmentReader;
use super::{LogStore, LogStoreOptions};
use crate::error::{Error, Result};
use crate::format::checkpoint::{self, Checkpoint, Location, LogPosition};
use crate::format::record::{self, RECORD_MAGIC, RecordKind};
use crate::format::{DecodeError, marker, segment};
use crate::key::ContentKey;
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
    /// Repair mode: byte ranges of segments that hold no record a checksum vouches for. Their
    /// segments are salvaged (writable) or would be (read-only).
    pub damaged: Vec<DamagedRange>,
    /// Repair mode: log data the index checkpoint vouched for as durable that is gone (a
    /// missing or shortened segment file). A normal open refuses such a store.
    pub missing: Vec<MissingData>,
    /// Repair mode: keys the index checkpoint listed that no surviving record holds (and no
    /// surviving tombstone deleted), sorted. Objects stored after the checkpoint and lost with
    /// a damaged range are not known by key; their ranges are in `damaged`.
    pub lost_keys: Vec<ContentKey>,
    /// Repair mode, writable: what salvaging the damaged segments did.
    pub salvage: Option<SalvageReport>,
    /// Repair mode, writable: the `STORE` marker was damaged and was written again.
    pub marker_rewritten: bool,
}

impl RecoveryReport {
    /// True if recovery found data lost or damaged (a torn tail is not: it is the normal trace
    /// of a crash during a write that was never acknowledged as written).
    pub fn found_damage(&self) -> bool {
        !self.damaged.is_empty()
            || !self.missing.is_empty()
            || !self.lost_keys.is_empty()
            || self.marker_rewritten
    }
}

/// Bytes of a segment that hold no record a checksum vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// The segment.
    pub segment: u64,
    /// First damaged byte.
    pub start: u64,
    /// The byte after the last damaged one: the next verified record, or the segment's end.
    pub end: u64,
    /// Why the bytes at `start` were refused.
    pub reason: String,
}

/// Log data that the index checkpoint vouched for as durable and that is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingData {
    /// The segment concerned.
    pub segment: u64,
    /// Objects the checkpoint placed in the part that is gone.
    pub objects: u64,
    /// What is wrong with the file.
    pub detail: String,
}

/// What salvaging damaged segments did: every record a checksum still vouches for and that
/// is still live was copied to the end of the log, made durable, and only then were the
/// damaged segment files removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SalvageReport {
    /// The damaged segments, rewritten and removed.
    pub segments: Vec<u64>,
    /// Live put records copied out of them.
    pub records_copied: u64,
    /// Tombstones copied out of them.
    pub tombstones_copied: u64,
    /// Bytes in their damaged ranges, dropped.
    pub bytes_dropped: u64,
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
    /// Opens the store in `dir` on the given file system (tests pass a simulated one, which
    /// fails on demand and keeps what a crash would leave). Public with the `testing` feature.
    #[cfg(feature = "testing")]
    pub fn open_on(vfs: Arc<dyn Vfs>, dir: &Path, opts: LogStoreOptions) -> Result<LogStore> {
        LogStore::open_vfs(vfs, dir, opts)
    }

    /// Opens the store in `dir` on the file system `vfs`.
    pub(crate) fn open_vfs(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        opts: LogStoreOptions,
    ) -> Result<LogStore> {
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
        let marker_rewritten = check_marker(vfs.as_ref(), &dir, &names, &opts)?;

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

        if marker_rewritten {
            write_marker(vfs.as_ref(), &dir)?;
        }
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
        let mut store = LogStore {
            pipeline,
            core,
            maintenance: Mutex::new(()),
            recovery: RecoveryReport {
                marker_rewritten,
                ..recovered.report
            },
            closed: AtomicBool::new(false),
            roots: Default::default(),
            _lock: lock,
        };
        if let Some(t) = &store.recovery.torn_tail {
            tracing::warn!(store = %store.core.dir.display(), segment = t.segment, offset = t.offset,
                bytes_cut = t.bytes_cut, reason = %t.reason, "cut a torn log tail");
        }
        if store.pipeline.is_none() {
            return Ok(store);
        }
        if !recovered.salvage.is_empty() {
            // Writes the checkpoint that lets the damaged segments go.
            let salvage = store.salvage(&recovered.salvage)?;
            store.recovery.salvage = Some(salvage);
        } else if store.core.opts.repair
            || store.recovery.checkpoint_problem.is_some()
            || store.recovery.bytes_scanned > store.core.opts.checkpoint_every / 4
        {
            // Repair trusted no checkpoint (and may have cut before the old one's tail): the
            // new one describes the log as it now is.
            store.checkpoint()?;
        }
        Ok(store)
    }
}

/// Checks (or, for a new store, writes) the `STORE` marker; true if it is damaged and repair
/// is to write it again (once the lock is held).
fn check_marker(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[String],
    opts: &LogStoreOptions,
) -> Result<bool> {
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
    let has_log = names
        .iter()
        .any(|n| segment::parse_file_name(n).is_some() || n == checkpoint::CHECKPOINT_FILE);
    if let Some(bytes) = existing.filter(|_| !interrupted) {
        return match marker::decode(&bytes) {
            Ok(v) if v <= marker::STORE_VERSION => Ok(false),
            Ok(v) => Err(Error::UnsupportedVersion {
                path,
                found: v,
                supported: marker::STORE_VERSION,
            }),
            // Next to log files, a marker that does not decode is damage: repair writes it
            // again (the segment headers carry their own version, checked by the scan).
            Err(_) if has_log && opts.repair && !opts.read_only => Ok(true),
            Err(DecodeError::BadMagic) if !has_log => Err(Error::NotAStore {
                path: dir.to_path_buf(),
                detail: format!("{} is not a spillway marker", path.display()),
            }),
            Err(e) => Err(Error::Corrupted {
                what: "store marker",
                location: path.display().to_string(),
                detail: format!(
                    "{e}; the directory holds spillway log files, so this is damage. `spillway verify --repair {}` writes the marker again",
                    dir.display()
                ),
            }),
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
    write_marker(vfs, dir)?;
    Ok(false)
}

/// Writes the `STORE` marker and makes it durable.
fn write_marker(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let path = dir.join(marker::MARKER_FILE);
    let f = vfs
        .open(&path, OpenMode::Create)
        .map_err(|e| Error::io("create", &path, e))?;
    f.set_len(0)
        .and_then(|_| f.write_at(&marker::encode(marker::STORE_VERSION), 0))
        .and_then(|_| f.sync_data())
        .map_err(|e| Error::io("write", &path, e))?;
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))
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
    /// Damaged segments (repair mode) whose verified records are copied out before the segment
    /// is removed. When the last segment is among them, a new segment becomes the active one.
    salvage: Vec<u64>,
}

/// How an index checkpoint that decodes fits the segment files found.
enum Fit {
    /// Every byte it vouches for is there.
    Fits,
    /// It names positions no writer produces (read from disk, so not trusted): ignored.
    Invalid(String),
    /// It vouches for log bytes that are gone: durable data was lost.
    Missing(Vec<MissingData>),
}

/// Checks that a checkpoint only refers to bytes that exist.
///
/// A checkpoint is written only after the log is durable through its tail, so every segment it
/// names (and every segment created after its tail segment, up to the last one: segments are
/// numbered in order and only compaction and repair delete them, each after writing a new
/// checkpoint) must be there, at least as long as it says.
fn classify(c: &Checkpoint, lens: &BTreeMap<u64, u64>) -> Fit {
    let header = segment::SEGMENT_HEADER_LEN as u64;
    if c.tail.offset < header {
        return Fit::Invalid(format!(
            "its tail position (segment {}, offset {}) is inside a segment header",
            c.tail.segment, c.tail.offset
        ));
    }
    // Bytes vouched for in each segment, and the objects placed there.
    let mut vouched: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    if !c.entries.is_empty() || c.tail.offset > header {
        vouched.insert(c.tail.segment, (c.tail.offset, 0));
    }
    for (key, loc) in &c.entries {
        let end = loc.offset.checked_add(u64::from(loc.len));
        let sane = loc.offset >= header
            && end.is_some_and(|end| {
                loc.segment < c.tail.segment
                    || (loc.segment == c.tail.segment && end <= c.tail.offset)
            });
        let Some(end) = end.filter(|_| sane) else {
            return Fit::Invalid(format!(
                "key {key} points at segment {} offset {}, which is not in the log",
                loc.segment, loc.offset
            ));
        };
        let v = vouched.entry(loc.segment).or_default();
        v.0 = v.0.max(end);
        v.1 += 1;
    }
    let mut missing = Vec::new();
    for (&id, &(len, objects)) in &vouched {
        match lens.get(&id) {
            Some(&found) if found >= len => {}
            Some(&found) => missing.push(MissingData {
                segment: id,
                objects: c
                    .entries
                    .iter()
                    .filter(|(_, l)| l.segment == id && l.offset + u64::from(l.len) > found)
                    .count() as u64,
                detail: format!(
                    "the file ends at byte {found}, but the index checkpoint vouches for {len} bytes of it"
                ),
            }),
            None => missing.push(MissingData {
                segment: id,
                objects,
                detail: format!(
                    "the file is missing, but the index checkpoint vouches for {len} bytes of it"
                ),
            }),
        }
    }
    if let Some(&last) = lens.keys().next_back() {
        for id in c.tail.segment.saturating_add(1)..last {
            if !lens.contains_key(&id) {
                missing.push(MissingData {
                    segment: id,
                    objects: 0,
                    detail: format!(
                        "the file is missing, but a later segment ({}) exists",
                        segment::file_name(last)
                    ),
                });
            }
        }
    }
    if missing.is_empty() {
        Fit::Fits
    } else {
        Fit::Missing(missing)
    }
}

/// The error a normal open gives when durable data is gone.
fn missing_error(dir: &Path, missing: &[MissingData]) -> Error {
    let first = &missing[0];
    let objects: u64 = missing.iter().map(|m| m.objects).sum();
    let more = match missing.len() {
        1 => String::new(),
        n => format!(" ({} damaged segment files in all)", n),
    };
    Error::Corrupted {
        what: "log",
        location: dir
            .join(segment::file_name(first.segment))
            .display()
            .to_string(),
        detail: format!(
            "{}{more}; {objects} objects that were durable are gone. Nothing was changed: `spillway verify {dir}` lists the loss, and `spillway verify --repair {dir}` keeps what is left and forgets the rest",
            first.detail,
            dir = dir.display()
        ),
    }
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
    // Keys the checkpoint knows: in repair mode, those found nowhere after the scan are lost.
    let mut vouched_keys = Vec::new();
    let ckpt_path = dir.join(checkpoint::CHECKPOINT_FILE);
    match vfs.read_file(&ckpt_path) {
        Ok(bytes) => match checkpoint::decode(&bytes) {
            Ok(c) => {
                let fit = classify(&c, &lens);
                if opts.repair {
                    // Repair scans the whole log, trusting no index, and writes a new
                    // checkpoint; this one only tells what should be there.
                    match fit {
                        Fit::Missing(m) => report.missing = m,
                        Fit::Invalid(problem) => report.checkpoint_problem = Some(problem),
                        Fit::Fits => {}
                    }
                    vouched_keys = c.entries.iter().map(|(k, _)| *k).collect();
                } else {
                    match fit {
                        Fit::Missing(m) => return Err(missing_error(dir, &m)),
                        Fit::Invalid(problem) => {
                            tracing::warn!(file = %ckpt_path.display(), %problem, "ignoring the index checkpoint; scanning the whole log");
                            report.checkpoint_problem = Some(problem);
                        }
                        Fit::Fits => {
                            for (k, loc) in c.entries {
                                index.insert(k, loc);
                            }
                            start = c.tail;
                            report.checkpoint_used = true;
                        }
                    }
                }
            }
            Err(e) => {
                let problem = e.to_string();
                tracing::warn!(file = %ckpt_path.display(), %problem, "ignoring the index checkpoint; scanning the whole log");
                report.checkpoint_problem = Some(problem);
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("read", ckpt_path, e)),
    }

    let mut cut = None;
    let mut salvage = Vec::new();
    let mut tombstoned: crate::key::KeyMap<()> = Default::default();
    let last = ids.last().copied();
    for &id in ids.iter().filter(|&&id| id >= start.segment) {
        let path = dir.join(segment::file_name(id));
        let is_last = Some(id) == last;
        let data = vfs
            .read_file(&path)
            .map_err(|e| Error::io("read", &path, e))?;
        let header = segment::SEGMENT_HEADER_LEN as u64;
        let pos = if id == start.segment {
            start.offset.max(header)
        } else {
            header
        };
        report.bytes_scanned += (data.len() as u64).saturating_sub(pos);
        let mut replay = |index: &mut Index, at: usize, r: &record::Record<'_>| {
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
                    tombstoned.insert(r.header.key, ());
                }
            }
        };
        if opts.repair {
            let header_problem = match segment::decode_header(&data) {
                Ok(found) if found == id => None,
                Ok(found) => Some(format!(
                    "the header names segment {found}, the file name {id}"
                )),
                Err(DecodeError::UnsupportedVersion(v)) => {
                    return Err(Error::UnsupportedVersion {
                        path,
                        found: v,
                        supported: segment::SEGMENT_VERSION,
                    });
                }
                Err(e) => Some(format!("segment header: {e}")),
            };
            let mut damage = Vec::new();
            if let Some(reason) = header_problem {
                damage.push(DamagedRange {
                    segment: id,
                    start: 0,
                    end: header.min(data.len() as u64),
                    reason,
                });
            }
            let mut verified_after_damage = false;
            for item in super::segments::records_tolerant(&data, pos as usize) {
                match item {
                    Scanned::Record(at, r) => {
                        verified_after_damage |= !damage.is_empty();
                        replay(&mut index, at, &r);
                        report.records_replayed += 1;
                    }
                    Scanned::Damaged { start, end, reason } => damage.push(DamagedRange {
                        segment: id,
                        start: start as u64,
                        end: end as u64,
                        reason: reason.to_string(),
                    }),
                }
            }
            let torn = is_last && !verified_after_damage && damage.len() == 1;
            if torn {
                let d = damage.remove(0);
                // A bad header with nothing verified after it: the segment was being created.
                let at = if d.start < header { 0 } else { d.start };
                report.torn_tail = Some(TornTail {
                    segment: id,
                    offset: at,
                    bytes_cut: data.len() as u64 - at,
                    reason: d.reason,
                });
                cut = Some(LogPosition {
                    segment: id,
                    offset: at,
                });
            } else if !damage.is_empty() {
                salvage.push(id);
                report.damaged.extend(damage);
            }
            continue;
        }
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
                    && !(valid_record_after(&data, 1)
                        || (report.checkpoint_used && id == start.segment)) =>
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
        for item in super::segments::records(&data, pos as usize) {
            match item {
                Ok((at, r)) => {
                    replay(&mut index, at, &r);
                    report.records_replayed += 1;
                }
                Err((at, e)) => {
                    let pos = at as u64;
                    let location = format!("{} offset {pos}", path.display());
                    if !is_last {
                        return Err(e.at("record", location));
                    }
                    if valid_record_after(&data, at + 1) {
                        return Err(Error::Corrupted {
                            what: "record",
                            location,
                            detail: format!(
                                "{e}; valid records follow, so this is damage rather than a torn write. \
                                 Nothing was changed: `spillway verify --repair {}` keeps every record a checksum still vouches for",
                                dir.display()
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
    // Records of a segment that is cut or salvaged were never indexed beyond what was verified,
    // and a full scan (repair) trusted no checkpoint entry: the index holds only records that
    // exist. Keys the checkpoint vouched for that the scan found nowhere (and no tombstone
    // removed) are lost.
    let mut lost: Vec<ContentKey> = vouched_keys
        .into_iter()
        .filter(|k| !index.map.contains_key(k) && !tombstoned.contains_key(k))
        .collect();
    lost.sort_unstable();
    report.lost_keys = lost;
    Ok(Recovered {
        index,
        report,
        cut,
        lens,
        salvage,
    })
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
        // A damaged last segment is salvaged like the others: appends go to a new one.
        Some(&id) if rec.salvage.contains(&id) => {
            let path = seg_path(id + 1);
            let f = vfs
                .open(&path, OpenMode::Create)
                .map_err(|e| Error::io("create", &path, e))?;
            (id + 1, f, 0)
        }
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

//! Recovery: rebuilding the index when a log store is opened, and telling a torn write from
//! damage.
//!
//! Recovery rebuilds the index from the checkpoint plus a scan of the log after the
//! checkpoint's tail position. What tells a torn write from damage is the *durable mark*: the
//! position the `SYNC` file records (see [`crate::format::sync`]), through which every byte was
//! synced before any caller was told so (or the checkpoint's tail, if later). In the last
//! segment, a bad record at or after the mark is a torn write from a crash, whatever follows it
//! (a power loss may keep a later page and lose an earlier one): the segment is cut there and
//! the cut reported. Anything else is damage, and a normal open refuses it, changing nothing,
//! with the file and offset named:
//! - a bad record before the mark (acknowledged durable data that rotted), or in a sealed
//!   segment the scan reads; a bad header of a segment the mark lies in or after;
//! - a `SYNC` file with bytes but no valid slot, or a mark past the end of the log (durable
//!   bytes gone);
//!
//! A store without a `SYNC` file (written by format version 1, or whose first record a crash
//! cut short) has no mark: there a bad record in the last segment is a torn write only if no
//! valid record follows it, and damage otherwise (the conservative rule of version 1).
//!
//! Further damage:
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
//! Memory: an open reads each segment through a bounded window (see `window`): about a MiB at a
//! time, or one record if it is larger, whatever the segment size. Only where it finds damage
//! does it read the rest of that segment at once, to look for a valid record after it; repair
//! reads each segment whole.
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

use std::collections::BTreeMap;
use std::path::Path;

use super::LogStoreOptions;
use super::index::Index;
use super::segments::Scanned;
use super::window::Window;
use crate::error::{Error, Result};
use crate::format::checkpoint::{self, Checkpoint, Location, LogPosition};
use crate::format::record::{self, RECORD_MAGIC, RecordKind};
use crate::format::sync::{self, SyncFile, SyncRecord};
use crate::format::{DecodeError, segment};
use crate::key::ContentKey;
use crate::vfs::{OpenMode, Vfs};

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
    /// The durable position the `SYNC` file recorded (`None`: no file, or a blank one, as a
    /// store of format version 1 has).
    pub durable_mark: Option<LogPosition>,
    /// Repair mode: why the `SYNC` file was refused (it is written afresh when writable).
    pub sync_damaged: Option<String>,
}

impl RecoveryReport {
    /// True if recovery found data lost or damaged (a torn tail is not: it is the normal trace
    /// of a crash during a write that was never acknowledged as written).
    pub fn found_damage(&self) -> bool {
        !self.damaged.is_empty()
            || !self.missing.is_empty()
            || !self.lost_keys.is_empty()
            || self.marker_rewritten
            || self.sync_damaged.is_some()
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

pub(super) struct Recovered {
    pub index: Index,
    pub report: RecoveryReport,
    /// Where the last segment must be cut, if anywhere.
    pub cut: Option<LogPosition>,
    /// Segment lengths as found (before any cut).
    pub lens: BTreeMap<u64, u64>,
    /// Damaged segments (repair mode) whose verified records are copied out before the segment
    /// is removed. When the last segment is among them, a new segment becomes the active one.
    pub salvage: Vec<u64>,
    /// The newest valid record of the `SYNC` file, which the next one follows.
    pub sync: Option<SyncRecord>,
}

/// Reads the `SYNC` file: its newest valid record, `None` if there is no file or a blank one.
/// A file with bytes but no valid slot is damage: a normal open fails naming it; repair notes
/// it in the report and goes on without a mark.
fn read_sync_record(
    vfs: &dyn Vfs,
    dir: &Path,
    opts: &LogStoreOptions,
    report: &mut RecoveryReport,
) -> Result<Option<SyncRecord>> {
    let path = dir.join(sync::SYNC_FILE);
    let bytes = match vfs.read_file(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    match sync::decode_file(&bytes) {
        Ok(SyncFile::Record(r)) => Ok(Some(r)),
        Ok(SyncFile::Blank) => Ok(None),
        Err(DecodeError::UnsupportedVersion(v)) => Err(Error::UnsupportedVersion {
            path,
            found: v,
            supported: sync::SYNC_VERSION,
        }),
        Err(e) if opts.repair => {
            report.sync_damaged = Some(format!("{}: {e}", path.display()));
            Ok(None)
        }
        Err(e) => Err(Error::Corrupted {
            what: "sync record",
            location: path.display().to_string(),
            detail: format!(
                "{e}; no slot of the file is valid, so recovery cannot tell a torn tail from damage. \
                 Nothing was changed: `spillway verify --repair {}` scans the log and writes the file again",
                dir.display()
            ),
        }),
    }
}

/// Durable log bytes the mark vouches for that are gone: its segment is missing or shorter.
fn mark_missing(mark: LogPosition, lens: &BTreeMap<u64, u64>) -> Option<MissingData> {
    let detail = match lens.get(&mark.segment) {
        Some(&len) if len >= mark.offset => return None,
        Some(&len) => format!(
            "the file ends at byte {len}, but the sync record in `SYNC` says it was durable through byte {}",
            mark.offset
        ),
        None => format!(
            "the file is missing, but the sync record in `SYNC` says it was durable through byte {}",
            mark.offset
        ),
    };
    Some(MissingData {
        segment: mark.segment,
        objects: 0,
        detail,
    })
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
            "{}{more}; durable data is gone ({}). Nothing was changed: `spillway verify {dir}` lists the loss, and `spillway verify --repair {dir}` keeps what is left and forgets the rest",
            first.detail,
            crate::error::count(objects, "object"),
            dir = dir.display()
        ),
    }
}

pub(super) fn recover(
    vfs: &dyn Vfs,
    dir: &Path,
    ids: &[u64],
    opts: &LogStoreOptions,
) -> Result<Recovered> {
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
    let sync = read_sync_record(vfs, dir, opts, &mut report)?;
    let mut mark = sync.map(|r| r.durable);
    report.durable_mark = mark;
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
                            index.map.reserve(c.entries.len());
                            for (k, loc) in c.entries {
                                index.insert(k, loc);
                            }
                            start = c.tail;
                            report.checkpoint_used = true;
                            // The log was durable through the tail before the checkpoint
                            // was written.
                            mark = mark.map(|m| m.max(c.tail));
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

    // Checked after the checkpoint, whose report of the same loss counts the objects gone.
    if let Some(m) = mark.and_then(|m| mark_missing(m, &lens)) {
        if !opts.repair {
            return Err(missing_error(dir, std::slice::from_ref(&m)));
        }
        if !report.missing.iter().any(|x| x.segment == m.segment) {
            report.missing.push(m);
        }
        mark = None;
    }

    let mut cut = None;
    let mut salvage = Vec::new();
    let mut tombstoned: crate::key::KeyMap<()> = Default::default();
    let last = ids.last().copied();
    for &id in ids.iter().filter(|&&id| id >= start.segment) {
        let path = dir.join(segment::file_name(id));
        let is_last = Some(id) == last;
        let len = lens.get(&id).copied().unwrap_or(0);
        let header = segment::SEGMENT_HEADER_LEN as u64;
        let pos = if id == start.segment {
            start.offset.max(header)
        } else {
            header
        };
        report.bytes_scanned += len.saturating_sub(pos);
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
            // Repair reads each segment whole: its tolerant scan and its salvage look back
            // and ahead of damage.
            let data = vfs
                .read_file(&path)
                .map_err(|e| Error::io("read", &path, e))?;
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
            // With a mark, damage at or after it in the last segment is a torn tail: the scan
            // stops there, since what follows was never acknowledged durable.
            let mut torn_at_mark = None;
            for item in super::segments::records_tolerant(&data, pos as usize) {
                match item {
                    Scanned::Record(at, r) => {
                        verified_after_damage |= !damage.is_empty();
                        replay(&mut index, at, &r);
                        report.records_replayed += 1;
                    }
                    Scanned::Damaged { start, end, reason } => {
                        let d = DamagedRange {
                            segment: id,
                            start: start as u64,
                            end: end as u64,
                            reason: reason.to_string(),
                        };
                        let at = LogPosition {
                            segment: id,
                            offset: d.start,
                        };
                        if is_last && mark.is_some_and(|m| at >= m) {
                            torn_at_mark = Some(d);
                            break;
                        }
                        damage.push(d);
                    }
                }
            }
            if let Some(d) = torn_at_mark {
                report.torn_tail = Some(TornTail {
                    segment: id,
                    offset: d.start,
                    bytes_cut: data.len() as u64 - d.start,
                    reason: d.reason,
                });
                cut = Some(LogPosition {
                    segment: id,
                    offset: d.start,
                });
                if !damage.is_empty() {
                    salvage.push(id);
                    report.damaged.extend(damage);
                }
                continue;
            }
            let torn = is_last
                && !verified_after_damage
                && damage.len() == 1
                && mark.is_none_or(|m| m.segment < id);
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
        // An open reads each segment through a bounded window (see `window`), not whole.
        let read = |e| Error::io("read", &path, e);
        let file = vfs.open(&path, OpenMode::Read).map_err(read)?;
        let mut win = Window::new(file, len);
        let head = segment::decode_header(win.bytes(0, segment::SEGMENT_HEADER_LEN).map_err(read)?);
        // A bad header in the last segment is a segment that was being created when the
        // process stopped if nothing of it was acknowledged: the mark lies before it, or there
        // is no mark, no checkpoint vouches for it (one whose tail lies in this segment was
        // written after the header was synced) and no valid record follows.
        let torn_header = head.is_err()
            && is_last
            && match mark {
                Some(m) => m.segment < id,
                None => {
                    !((report.checkpoint_used && id == start.segment)
                        || valid_record_after(&win.range(1, len).map_err(read)?, 0))
                }
            };
        match head {
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
            Err(e) if torn_header => {
                report.torn_tail = Some(TornTail {
                    segment: id,
                    offset: 0,
                    bytes_cut: len,
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
        let mut at = pos;
        while at < len {
            let e = match win.record_at(at).map_err(read)? {
                Ok(r) => {
                    let next = at + r.header.record_len();
                    replay(&mut index, at as usize, &r);
                    report.records_replayed += 1;
                    at = next;
                    continue;
                }
                Err(e) => e,
            };
            let location = format!("{} offset {at}", path.display());
            if !is_last {
                return Err(e.at("record", location));
            }
            let here = LogPosition {
                segment: id,
                offset: at,
            };
            if let Some(m) = mark.filter(|&m| here < m) {
                return Err(Error::Corrupted {
                    what: "record",
                    location,
                    detail: format!(
                        "{e}; the sync record in `SYNC` says the log was durable through offset {} of segment {}, \
                         so this is acknowledged data that was damaged, not a torn write. \
                         Nothing was changed: `spillway verify --repair {}` keeps every record a checksum still vouches for",
                        m.offset,
                        m.segment,
                        dir.display()
                    ),
                });
            }
            // Read at once only here, where damage was found: to tell a torn write from damaged
            // data, what follows it is searched for a valid record.
            if mark.is_none() && valid_record_after(&win.range(at + 1, len).map_err(read)?, 0) {
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
                offset: at,
                bytes_cut: len - at,
                reason: e.to_string(),
            });
            cut = Some(LogPosition {
                segment: id,
                offset: at,
            });
            break;
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
        sync,
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

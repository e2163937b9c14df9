//! Offline verification of a log store, without modifying it.
//!
//! It finds every loss it can know of:
//! - every record of every segment is decoded and checksummed, stepping over damage so that
//!   each damaged range is reported, and every put's key is recomputed from its payload and
//!   children;
//! - the store is opened read-only in repair mode, which reports log data the index
//!   checkpoint vouched for that is gone (a missing or shortened segment) and the keys it
//!   listed that no record holds;
//! - every small file is checked: `STORE` (by the open), `index.ckpt`, `ROOTS`, and leftovers of
//!   an interrupted write;
//! - every named root's object and its whole graph must be stored, and every live object's
//!   children too.
//!
//! A torn tail (the trace of a crash during a write never acknowledged as durable) is noted,
//! not counted as damage: the next writable open cuts it.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::recover::{DamagedRange, MissingData, TornTail};
use super::{LogStore, LogStoreOptions};
use crate::error::{Error, Result, count};
use crate::format::record::RecordKind;
use crate::format::{checkpoint, roots, segment};
use crate::key::{BuildKeyHasher, ContentKey, KeyMap};
use crate::store::BlobStore;
use crate::vfs::{OsFs, Vfs};

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segment files read.
    pub segments: u64,
    /// Records that decode and check out.
    pub records: u64,
    /// Put records among them.
    pub puts: u64,
    /// Tombstones among them.
    pub tombstones: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Live objects (as the index says).
    pub live_objects: u64,
    /// Every problem found, one sentence each, naming its file and offset or key. The store
    /// is damaged if and only if this is not empty.
    pub problems: Vec<String>,
    /// Remarks that are not damage (a torn tail a crash left, a leftover temporary file).
    pub notes: Vec<String>,
    /// Byte ranges of segments that hold no record a checksum vouches for.
    pub damaged: Vec<DamagedRange>,
    /// Log data the index checkpoint vouched for as durable that is gone.
    pub missing: Vec<MissingData>,
    /// Keys the index checkpoint listed that no record holds, sorted.
    pub lost_keys: Vec<ContentKey>,
    /// A torn tail at the end of the log (not damage; cut at the next writable open).
    pub torn_tail: Option<TornTail>,
    /// Each named root, and whether its graph is whole.
    pub roots: Vec<RootCheck>,
    /// Live objects whose children are not all stored.
    pub dangling_children: u64,
}

/// A named root as [`verify`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootCheck {
    /// The root's name.
    pub name: String,
    /// The key it names.
    pub key: ContentKey,
    /// Objects of its graph that are stored (the root's own included).
    pub objects: u64,
    /// Objects of its graph that are not stored, sorted (at most [`MAX_LISTED`]).
    pub missing: Vec<ContentKey>,
    /// How many objects of its graph are not stored, in all.
    pub missing_count: u64,
}

impl RootCheck {
    /// True if the root's object and its whole graph are stored.
    pub fn is_whole(&self) -> bool {
        self.missing_count == 0
    }
}

/// The most keys listed in one problem or root report; counts are always whole.
pub const MAX_LISTED: usize = 100;

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the store in `dir` without modifying it.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    verify_vfs(Arc::new(OsFs), dir)
}

/// Verifies the store in `dir` on the given file system, without modifying it. Public with
/// the `testing` feature.
///
/// Errors only when `dir` cannot be read as a store at all (it does not exist, is not a store,
/// is of a newer version); damage is reported in the [`VerifyReport`].
#[cfg(feature = "testing")]
pub fn verify_on(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<VerifyReport> {
    verify_vfs(vfs, dir)
}

/// [`verify`] on the file system `vfs`.
pub(crate) fn verify_vfs(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let names = match vfs.read_dir(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotAStore {
                path: dir.to_path_buf(),
                detail: "the directory does not exist".into(),
            });
        }
        Err(e) => return Err(Error::io("list directory", dir, e)),
    };
    // Open first: a directory that is not a store (or is of a newer version) is an error, not a
    // report. Read-only repair mode steps over damage, changes nothing and says what is lost.
    let store = LogStore::open_vfs(
        Arc::clone(&vfs),
        dir,
        LogStoreOptions::default().read_only(true).repair(true),
    )?;
    scan_segments(vfs.as_ref(), dir, &names, &mut report)?;
    check_small_files(vfs.as_ref(), dir, &names, &mut report)?;

    let rec = store.recovery();
    for d in &rec.damaged {
        report.problems.push(format!(
            "{} offset {}: damaged ({}); the {} bytes up to offset {} hold no record a checksum vouches for",
            dir.join(segment::file_name(d.segment)).display(),
            d.start,
            d.reason,
            d.end - d.start,
            d.end
        ));
    }
    for m in &rec.missing {
        report.problems.push(format!(
            "{}: {} ({} in the part that is gone)",
            dir.join(segment::file_name(m.segment)).display(),
            m.detail,
            count(m.objects, "object")
        ));
    }
    if !rec.lost_keys.is_empty() {
        report.problems.push(format!(
            "no readable record holds {} that the index checkpoint lists: {}",
            count(rec.lost_keys.len() as u64, "object"),
            listed(&rec.lost_keys)
        ));
    }
    if let Some(t) = &rec.torn_tail {
        report.notes.push(format!(
            "{} ends with a torn write at offset {} ({} bytes, {}): a crash during a write that was never acknowledged as durable; the next writable open cuts it",
            dir.join(segment::file_name(t.segment)).display(),
            t.offset,
            t.bytes_cut,
            t.reason
        ));
    }
    report.damaged = rec.damaged.clone();
    report.missing = rec.missing.clone();
    report.lost_keys = rec.lost_keys.clone();
    report.torn_tail = rec.torn_tail.clone();

    check_graphs(&store, &mut report)?;
    Ok(report)
}

/// Decodes every record of every segment, stepping over damage (the open reports the damaged
/// ranges), and checks that every put's key is the hash of its content.
fn scan_segments(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[String],
    report: &mut VerifyReport,
) -> Result<()> {
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| segment::parse_file_name(n))
        .collect();
    ids.sort_unstable();
    for id in ids {
        let path = dir.join(segment::file_name(id));
        let data = vfs
            .read_file(&path)
            .map_err(|e| Error::io("read", &path, e))?;
        report.segments += 1;
        report.bytes += data.len() as u64;
        for item in super::segments::records_tolerant(&data, segment::SEGMENT_HEADER_LEN) {
            let super::segments::Scanned::Record(pos, r) = item else {
                continue;
            };
            report.records += 1;
            match r.header.kind {
                RecordKind::Put => {
                    report.puts += 1;
                    let computed = ContentKey::of(r.payload, &r.child_keys());
                    if computed != r.header.key {
                        report.problems.push(format!(
                            "{} offset {pos}: record claims key {} but its content hashes to {computed}",
                            path.display(),
                            r.header.key
                        ));
                    }
                }
                RecordKind::Tombstone => report.tombstones += 1,
            }
        }
    }
    Ok(())
}

/// Checks the index checkpoint and the roots file (the marker was checked by the open), and
/// notes leftovers.
fn check_small_files(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[String],
    report: &mut VerifyReport,
) -> Result<()> {
    for name in names {
        let path = dir.join(name);
        let read = || {
            vfs.read_file(&path)
                .map_err(|e| Error::io("read", &path, e))
        };
        if name == checkpoint::CHECKPOINT_FILE {
            if let Err(e) = checkpoint::decode(&read()?) {
                report.problems.push(format!(
                    "{}: the index checkpoint is damaged ({e}); the store still opens, by scanning the whole log, and a repair writes a new one",
                    path.display()
                ));
            }
        } else if name == roots::ROOTS_FILE {
            if let Err(e) = roots::decode(&read()?) {
                report.problems.push(format!(
                    "{}: the roots file is damaged ({e}); the names of the roots cannot be read, and garbage collection refuses to run. No repair can restore them: set the roots again, or remove the file to start with none",
                    path.display()
                ));
            }
        } else if name == crate::format::sync::SYNC_FILE {
            if let Err(e) = crate::format::sync::decode_file(&read()?) {
                report.problems.push(format!(
                    "{}: the sync record is damaged ({e}); no slot is valid, so recovery cannot tell a torn tail from damage and a normal open refuses the store. `spillway verify --repair` scans the log and writes it again",
                    path.display()
                ));
            }
        } else if name == checkpoint::CHECKPOINT_TMP_FILE
            || name == roots::ROOTS_TMP_FILE
            || name == crate::format::marker::MARKER_TMP_FILE
        {
            report.notes.push(format!(
                "{}: left by a write that a crash interrupted; unused, and removed by the next writable open or root change",
                path.display()
            ));
        } else if name != super::open::LOCK_FILE
            && name != crate::format::marker::MARKER_FILE
            && segment::parse_file_name(name).is_none()
        {
            report.notes.push(format!(
                "{}: not a file of the store; left alone",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Every live object's children must be stored, and every root's graph whole.
fn check_graphs(store: &dyn BlobStore, report: &mut VerifyReport) -> Result<()> {
    let keys = store.keys()?;
    report.live_objects = keys.len() as u64;
    let mut children: KeyMap<Vec<ContentKey>> = KeyMap::default();
    children.reserve(keys.len());
    let mut dangling_listed = 0;
    for key in &keys {
        match store.get(key) {
            Ok(Some(blob)) => {
                children.insert(*key, blob.children);
            }
            // A log's index holds only records that checked out; a read that fails now means
            // the file changed under us (another process writing). Other stores check each
            // object as they read it.
            Ok(None) => report
                .problems
                .push(format!("object {key} is in the index but cannot be read")),
            Err(e) => report.problems.push(format!("object {key}: {e}")),
        }
    }
    for (key, kids) in &children {
        if kids.iter().any(|c| !children.contains_key(c)) {
            report.dangling_children += 1;
            if dangling_listed < 10 {
                dangling_listed += 1;
                report
                    .problems
                    .push(format!("object {key} refers to a child that is not stored"));
            }
        }
    }
    if report.dangling_children > 10 {
        report.problems.push(format!(
            "... {} objects in all refer to children that are not stored",
            report.dangling_children
        ));
    }
    let roots = match store.roots() {
        Ok(r) => r,
        // Reported by `check_small_files`.
        Err(_) => return Ok(()),
    };
    for (name, key) in roots {
        let check = walk_root(&children, name, key);
        if !check.is_whole() {
            let what = if !children.contains_key(&check.key) {
                format!("its object {} is not stored", check.key)
            } else {
                format!(
                    "its graph misses {}: {}",
                    count(check.missing_count, "object"),
                    listed(&check.missing)
                )
            };
            report
                .problems
                .push(format!("root {:?} dangles: {what}", check.name));
        }
        report.roots.push(check);
    }
    Ok(())
}

fn walk_root(children: &KeyMap<Vec<ContentKey>>, name: String, key: ContentKey) -> RootCheck {
    let mut seen: HashSet<ContentKey, BuildKeyHasher> = HashSet::default();
    let mut missing = BTreeMap::new();
    let mut stack = vec![key];
    let mut objects = 0;
    while let Some(k) = stack.pop() {
        if !seen.insert(k) {
            continue;
        }
        match children.get(&k) {
            Some(kids) => {
                objects += 1;
                stack.extend(kids.iter().filter(|c| !seen.contains(*c)));
            }
            None => {
                missing.insert(k, ());
            }
        }
    }
    RootCheck {
        name,
        key,
        objects,
        missing_count: missing.len() as u64,
        missing: missing.into_keys().take(MAX_LISTED).collect(),
    }
}

/// Keys for a message: the first ten, then how many more.
fn listed(keys: &[ContentKey]) -> String {
    let mut s: Vec<String> = keys.iter().take(10).map(|k| k.to_string()).collect();
    if keys.len() > 10 {
        s.push(format!("and {} more", keys.len() - 10));
    }
    s.join(", ")
}

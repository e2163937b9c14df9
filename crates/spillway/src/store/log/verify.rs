//! Offline verification of a log store: every record of every segment is decoded and
//! checksummed, every put's key is recomputed from its payload and children, and every live
//! object's children are checked to be stored.

use std::path::Path;
use std::sync::Arc;

use super::{LogStore, LogStoreOptions};
use crate::error::Result;
use crate::format::record::RecordKind;
use crate::format::segment;
use crate::key::{ContentKey, KeyMap};
use crate::store::BlobStore;
use crate::vfs::{OsFs, Vfs};

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segment files read.
    pub segments: u64,
    /// Records decoded.
    pub records: u64,
    /// Put records among them.
    pub puts: u64,
    /// Tombstones among them.
    pub tombstones: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Live objects (as the index says).
    pub live_objects: u64,
    /// Each problem found, with its file and offset or key.
    pub problems: Vec<String>,
    /// Live objects whose children are not stored (a graph with holes), by key.
    pub dangling_children: u64,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.dangling_children == 0
    }
}

/// Verifies the store in `dir` without modifying it.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    verify_on(Arc::new(OsFs), dir)
}

/// Verifies the store in `dir` on the given file system, without modifying it.
pub fn verify_on(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let names = match vfs.read_dir(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(crate::Error::NotAStore {
                path: dir.to_path_buf(),
                detail: "the directory does not exist".into(),
            });
        }
        Err(e) => return Err(crate::Error::io("list directory", dir, e)),
    };
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| segment::parse_file_name(n))
        .collect();
    ids.sort_unstable();
    for id in ids {
        let path = dir.join(segment::file_name(id));
        let data = vfs
            .read_file(&path)
            .map_err(|e| crate::Error::io("read", &path, e))?;
        report.segments += 1;
        report.bytes += data.len() as u64;
        if let Err(e) = segment::decode_header(&data) {
            report
                .problems
                .push(format!("{}: segment header: {e}", path.display()));
            continue;
        }
        for item in super::segments::records(&data, segment::SEGMENT_HEADER_LEN) {
            let (pos, r) = match item {
                Ok(found) => found,
                Err((pos, e)) => {
                    report.problems.push(format!(
                        "{} offset {pos}: record: {e} ({} bytes after it not checked)",
                        path.display(),
                        data.len() - pos
                    ));
                    break;
                }
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
    // The record scan above needs no index; the checks below do. A store that does not open
    // (damage before its checkpoint's tail, say) still gets the scan's report.
    let store = match LogStore::open_on(vfs, dir, LogStoreOptions::default().read_only(true)) {
        Ok(s) => s,
        Err(e) => {
            report.problems.push(format!(
                "the store does not open ({e}); live objects were not checked"
            ));
            return Ok(report);
        }
    };
    let keys = store.keys()?;
    report.live_objects = keys.len() as u64;
    let live: KeyMap<()> = keys.iter().map(|k| (*k, ())).collect();
    for key in &keys {
        match store.get(key) {
            Ok(Some(blob)) => {
                if blob.children.iter().any(|c| !live.contains_key(c)) {
                    report.dangling_children += 1;
                    if report.dangling_children <= 10 {
                        report
                            .problems
                            .push(format!("object {key} refers to a child that is not stored"));
                    }
                }
            }
            Ok(None) => report
                .problems
                .push(format!("object {key} is in the index but cannot be read")),
            Err(e) => report.problems.push(format!("object {key}: {e}")),
        }
    }
    Ok(report)
}

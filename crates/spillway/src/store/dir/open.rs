//! Opening a directory store: the marker, the lock, the clean-close flag, and a scan of the
//! directory that builds the index, removes what a crash left half-written, and reports every
//! entry the store did not create (never removing it).
//!
//! A crash can leave, and opening (writable) removes:
//! - `objects/<2>/<30>.tmp`: an object file being written (its put never returned);
//! - `ROOTS.tmp`: a roots file being written (the old `ROOTS` still holds);
//! - `DIRSTORE.tmp`: a marker being written, in a store being created;
//! - `kept/<name>/MANIFEST.tmp`, and a kept directory with no `MANIFEST`: a
//!   [`persist`](super::DirStore::persist) that never returned (its links are removed).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use parking_lot::{Mutex, RwLock};

use super::kept::is_kept_name;
use super::{
    CLEAN_FILE, Counters, DirStore, DirStoreOptions, Entry, KEPT_DIR, LOCK_FILE, OBJECTS_DIR,
    Pending, TMP_SUFFIX, is_hex,
};
use crate::error::{Error, Result};
use crate::format::object::{
    self, DIR_MARKER_FILE, DIR_STORE_VERSION, MANIFEST_FILE, MANIFEST_TMP_FILE,
};
use crate::format::roots::{ROOTS_FILE, ROOTS_TMP_FILE};
use crate::key::{ContentKey, KeyMap};
use crate::vfs::{OpenMode, Vfs};

/// Temporary name of the marker while a store is created.
const MARKER_TMP_FILE: &str = "DIRSTORE.tmp";

/// What opening a [`DirStore`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// Objects found.
    pub objects: u64,
    /// False if the last writer did not close the store cleanly (it crashed, or the machine
    /// lost power): files found are then checked before a put skips them.
    pub clean: bool,
    /// Files a crash left half-written, removed (a read-only open lists them and leaves them).
    pub removed: Vec<PathBuf>,
    /// Entries of the store's directory that the store did not create: left alone.
    pub unknown: Vec<PathBuf>,
}

impl DirStore {
    /// Opens the store in `dir` on the file system `vfs`.
    pub(crate) fn open_vfs(vfs: Arc<dyn Vfs>, dir: &Path, opts: DirStoreOptions) -> Result<Self> {
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
        let (create, format_version) = check_marker(vfs.as_ref(), &dir, &names, &opts)?;
        let lock = if opts.read_only {
            None
        } else {
            Some(crate::store::lock::lock(
                vfs.as_ref(),
                &dir.join(LOCK_FILE),
                &dir,
            )?)
        };
        let mut report = OpenReport::default();
        if create {
            create_store(vfs.as_ref(), &dir, &names, &mut report)?;
        }
        let objects = dir.join(OBJECTS_DIR);
        if !opts.read_only && !names.iter().any(|n| n == OBJECTS_DIR) {
            // A new store, or a crash right after the marker of one.
            vfs.create_dir_all(&objects)
                .and_then(|()| vfs.sync_dir(&dir))
                .map_err(|e| Error::io("create directory", &objects, e))?;
        }
        let clean = names.iter().any(|n| n == CLEAN_FILE);
        report.clean = clean || create;
        if !opts.read_only && clean {
            // From now on a crash may tear files: the next open must not trust them.
            let path = dir.join(CLEAN_FILE);
            vfs.remove_file(&path)
                .and_then(|()| vfs.sync_dir(&dir))
                .map_err(|e| Error::io("remove", path, e))?;
        }
        let names = if create {
            vfs.read_dir(&dir)
                .map_err(|e| Error::io("list directory", &dir, e))?
        } else {
            names
        };
        let cleanup = !opts.read_only;
        for name in &names {
            match name.as_str() {
                DIR_MARKER_FILE | LOCK_FILE | CLEAN_FILE | ROOTS_FILE | OBJECTS_DIR | KEPT_DIR => {}
                ROOTS_TMP_FILE | MARKER_TMP_FILE => {
                    remove_leftover(vfs.as_ref(), &dir.join(name), cleanup, &mut report)?;
                }
                _ => report.unknown.push(dir.join(name)),
            }
        }
        let mut pending = Pending::default();
        let mut index = KeyMap::default();
        let mut live = 0;
        scan_objects(
            vfs.as_ref(),
            &objects,
            report.clean,
            cleanup,
            &mut index,
            &mut pending,
            &mut live,
            &mut report,
        )?;
        if names.iter().any(|n| n == KEPT_DIR) {
            scan_kept(vfs.as_ref(), &dir.join(KEPT_DIR), cleanup, &mut report)?;
        }
        if cleanup && !report.removed.is_empty() {
            for d in removed_dirs(&report.removed) {
                match vfs.sync_dir(&d) {
                    Ok(()) => {}
                    // An interrupted persist's directory, removed with its parent synced.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("fsync directory", &d, e)),
                }
            }
            tracing::info!(store = %dir.display(), files = report.removed.len(), "removed the temporary files of an interrupted write");
        }
        for u in &report.unknown {
            tracing::warn!(store = %dir.display(), entry = %u.display(), "the directory store holds an entry it did not create; left alone");
        }
        report.objects = index.len() as u64;
        let counters = Counters {
            live_bytes: AtomicU64::new(live),
            ..Counters::default()
        };
        Ok(DirStore {
            dir,
            format_version,
            vfs,
            read_only: opts.read_only,
            index: RwLock::new(index),
            writer: Mutex::new(pending),
            written: AtomicU64::new(0),
            durable: Mutex::new(0),
            poison: RwLock::new(None),
            counters,
            roots: Default::default(),
            report,
            closed: AtomicBool::new(false),
            _lock: lock,
        })
    }
}

/// Checks the marker; returns true if the store is to be created (a new or empty directory),
/// and the store's format version (this build's for a new store).
fn check_marker(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[String],
    opts: &DirStoreOptions,
) -> Result<(bool, u32)> {
    let path = dir.join(DIR_MARKER_FILE);
    if names.iter().any(|n| n == DIR_MARKER_FILE) {
        let bytes = vfs
            .read_file(&path)
            .map_err(|e| Error::io("read", &path, e))?;
        return match object::decode_marker(&bytes) {
            Ok(v) if v <= DIR_STORE_VERSION => Ok((false, v)),
            Ok(v) => Err(Error::UnsupportedVersion {
                path,
                found: v,
                supported: DIR_STORE_VERSION,
            }),
            Err(crate::format::DecodeError::BadMagic) => Err(Error::NotAStore {
                path: dir.to_path_buf(),
                detail: format!(
                    "{} is not a spillway directory store marker",
                    path.display()
                ),
            }),
            Err(e) => Err(e.at("directory store marker", path.display().to_string())),
        };
    }
    // Only a lock file and a half-written marker are what a crash while creating leaves.
    let foreign: Vec<&String> = names
        .iter()
        .filter(|n| *n != LOCK_FILE && *n != MARKER_TMP_FILE)
        .collect();
    if !foreign.is_empty() || opts.read_only || !opts.create {
        return Err(Error::NotAStore {
            path: dir.to_path_buf(),
            detail: if foreign.is_empty() {
                "the directory is empty".into()
            } else {
                format!(
                    "it has no {DIR_MARKER_FILE} marker but holds {} other entries (such as {:?}); pick an empty or new directory",
                    foreign.len(),
                    foreign[0]
                )
            },
        });
    }
    Ok((true, DIR_STORE_VERSION))
}

/// Creates a new store in `dir` (whose lock is held): the marker, written under a temporary
/// name and renamed, so that it exists only whole. `objects/` follows, as in any store that
/// lacks it.
fn create_store(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[String],
    report: &mut OpenReport,
) -> Result<()> {
    if names.iter().any(|n| n == MARKER_TMP_FILE) {
        let tmp = dir.join(MARKER_TMP_FILE);
        vfs.remove_file(&tmp)
            .map_err(|e| Error::io("remove", &tmp, e))?;
        report.removed.push(tmp);
    }
    let tmp = dir.join(MARKER_TMP_FILE);
    let path = dir.join(DIR_MARKER_FILE);
    vfs.open(&tmp, OpenMode::Create)
        .and_then(|f| {
            f.write_at(&object::encode_marker(DIR_STORE_VERSION), 0)
                .and_then(|()| f.sync_data())
        })
        .and_then(|()| vfs.rename(&tmp, &path))
        .and_then(|()| vfs.sync_dir(dir))
        .map_err(|e| Error::io("create", path, e))
}

/// Removes (or, read-only, only lists) a temporary file a crash left.
fn remove_leftover(
    vfs: &dyn Vfs,
    path: &Path,
    cleanup: bool,
    report: &mut OpenReport,
) -> Result<()> {
    if cleanup {
        vfs.remove_file(path)
            .map_err(|e| Error::io("remove", path, e))?;
    }
    report.removed.push(path.to_path_buf());
    Ok(())
}

/// The directories whose entries removing `files` changed.
fn removed_dirs(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Lists `objects/`: builds the index, removes temporary files, reports foreign entries.
#[expect(
    clippy::too_many_arguments,
    reason = "one scan filling the parts of a store being opened"
)]
fn scan_objects(
    vfs: &dyn Vfs,
    objects: &Path,
    trusted: bool,
    cleanup: bool,
    index: &mut KeyMap<Entry>,
    pending: &mut Pending,
    live: &mut u64,
    report: &mut OpenReport,
) -> Result<()> {
    let shards = match vfs.read_dir(objects) {
        Ok(s) => s,
        // A read-only open of a store whose `objects/` is gone: no objects.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list directory", objects, e)),
    };
    for shard in shards {
        let shard_path = objects.join(&shard);
        if !is_hex(&shard, 2) {
            report.unknown.push(shard_path);
            continue;
        }
        let files = match vfs.read_dir(&shard_path) {
            Ok(f) => f,
            Err(_) => {
                // A file where a shard directory belongs.
                report.unknown.push(shard_path);
                continue;
            }
        };
        if let Ok(b) = u8::from_str_radix(&shard, 16) {
            pending.shards[usize::from(b)] = true;
        }
        for name in files {
            let path = shard_path.join(&name);
            if is_hex(&name, 30) {
                let key: Option<ContentKey> = format!("{shard}{name}").parse().ok();
                let len = vfs
                    .open(&path, OpenMode::Read)
                    .and_then(|f| f.len())
                    .map_err(|e| Error::io("open", &path, e))?;
                if let Some(key) = key {
                    *live += len;
                    index.insert(key, Entry { len, trusted });
                }
            } else if name
                .strip_suffix(TMP_SUFFIX)
                .is_some_and(|stem| is_hex(stem, 30))
            {
                remove_leftover(vfs, &path, cleanup, report)?;
            } else {
                report.unknown.push(path);
            }
        }
    }
    Ok(())
}

/// Lists `kept/`: removes the traces of a persist that never returned, reports foreign entries.
fn scan_kept(vfs: &dyn Vfs, kept: &Path, cleanup: bool, report: &mut OpenReport) -> Result<()> {
    let names = vfs
        .read_dir(kept)
        .map_err(|e| Error::io("list directory", kept, e))?;
    for name in names {
        let path = kept.join(&name);
        let entries = match vfs.read_dir(&path) {
            Ok(e) if is_kept_name(&name) => e,
            _ => {
                report.unknown.push(path);
                continue;
            }
        };
        let complete = entries.iter().any(|e| e == MANIFEST_FILE);
        let mut foreign = false;
        for e in &entries {
            let p = path.join(e);
            if e == MANIFEST_TMP_FILE || (!complete && is_hex(e, 32)) {
                remove_leftover(vfs, &p, cleanup, report)?;
            } else if !(e == MANIFEST_FILE || is_hex(e, 32)) {
                foreign = true;
                report.unknown.push(p);
            }
        }
        if !complete && !foreign && cleanup {
            // An interrupted persist: its links are gone, and so goes its directory.
            vfs.remove_dir(&path)
                .map_err(|e| Error::io("remove directory", &path, e))?;
            vfs.sync_dir(kept)
                .map_err(|e| Error::io("fsync directory", kept, e))?;
        }
    }
    Ok(())
}

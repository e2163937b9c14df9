//! Opening a log store: the marker, the lock, recovery (see [`recover`](super::recover)), and
//! the end of the log that writes append to.
//!
//! A `STORE` marker shorter than a whole marker (empty, zeros, or a prefix of the real one) in a
//! directory without segments or checkpoint is what a crash while creating the store leaves
//! behind; a writable open with `create` set creates the store again instead of failing.
//!
//! A writable open ends by recording the recovered end of the log, now synced, in the `SYNC`
//! file (creating it for a store of format version 1), and only then upgrades a version 1
//! marker to the current version (`STORE.tmp`, synced, renamed over `STORE`): a build that
//! does not keep the `SYNC` file must not write to a store whose recovery relies on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::{Mutex, RwLock};

use super::core::{Core, Counters, SyncMark};
use super::flusher::LogFlusher;
use super::pipeline::Pipeline;
use super::recover::{Recovered, RecoveryReport, recover};
use super::segments::SegmentReader;
use super::{LogStore, LogStoreOptions};
use crate::error::{Error, Result};
use crate::format::checkpoint::{self, LogPosition};
use crate::format::{DecodeError, marker, segment};
use crate::vfs::{OpenMode, Vfs};

/// File name of the lock file inside a store directory.
pub const LOCK_FILE: &str = "LOCK";

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
        let (marker_rewritten, mut format_version) =
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

        if marker_rewritten {
            write_marker(vfs.as_ref(), &dir)?;
        }
        let mut ids: Vec<u64> = names
            .iter()
            .filter_map(|n| segment::parse_file_name(n))
            .collect();
        ids.sort_unstable();
        let mut recovered = recover(vfs.as_ref(), &dir, &ids, &opts)?;

        let mut file_end = if opts.read_only {
            // Nothing is cut or written: the segments count as they are.
            for (&id, &len) in &recovered.lens {
                recovered.index.sizes.insert(id, len);
            }
            None
        } else {
            for leftover in [checkpoint::CHECKPOINT_TMP_FILE, marker::MARKER_TMP_FILE] {
                if names.iter().any(|n| n == leftover) {
                    let tmp = dir.join(leftover);
                    vfs.remove_file(&tmp)
                        .map_err(|e| Error::io("remove", tmp, e))?;
                }
            }
            let end = prepare_file_end(vfs.as_ref(), &dir, &ids, &mut recovered)?;
            if format_version < marker::SYNC_VERSION && !marker_rewritten {
                upgrade_marker(vfs.as_ref(), &dir)?;
                format_version = marker::SYNC_VERSION;
            }
            Some(end)
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
        let mut sync_mark = None;
        let durable = match &mut file_end {
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
                sync_mark = w.sync.take();
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
            sync: Mutex::new(sync_mark),
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
            format_version,
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

/// Checks (or, for a new store, writes) the `STORE` marker; returns true if it is damaged and
/// repair is to write it again (once the lock is held), and the store's format version (this
/// build's for a new store or a marker written again).
fn check_marker(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[String],
    opts: &LogStoreOptions,
) -> Result<(bool, u32)> {
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
            Ok(v) if v <= marker::STORE_VERSION => Ok((false, v)),
            Ok(v) => Err(Error::UnsupportedVersion {
                path,
                found: v,
                supported: marker::STORE_VERSION,
            }),
            // Next to log files, a marker that does not decode is damage: repair writes it
            // again (the segment headers carry their own version, checked by the scan).
            Err(_) if has_log && opts.repair && !opts.read_only => {
                Ok((true, marker::STORE_VERSION))
            }
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
    Ok((false, marker::STORE_VERSION))
}

/// Replaces a version 1 marker with version 2's (the store now keeps a `SYNC` file; its values
/// stay as they were, without type tags), atomically: `STORE.tmp` is written and synced,
/// renamed over `STORE`, and the directory synced.
fn upgrade_marker(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let tmp = dir.join(marker::MARKER_TMP_FILE);
    let f = vfs
        .open(&tmp, OpenMode::Create)
        .map_err(|e| Error::io("create", &tmp, e))?;
    f.write_at(&marker::encode(marker::SYNC_VERSION), 0)
        .and_then(|_| f.sync_data())
        .map_err(|e| Error::io("write", &tmp, e))?;
    let path = dir.join(marker::MARKER_FILE);
    vfs.rename(&tmp, &path)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))
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

/// Applies a recovery cut and sets up the writer on the last segment (or a new first one).
/// The end of the log a writable store appends to.
struct FileEnd {
    active: u64,
    file: Arc<dyn crate::vfs::VfsFile>,
    written_len: u64,
    since_checkpoint: u64,
    /// The `SYNC` file, holding the end of the log as recovered.
    sync: Option<SyncMark>,
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
    // The recovered log is durable now: record it, so that a later recovery treats damage
    // before this point as damage. The directory sync below makes a new `SYNC` file's name
    // durable with the segment's.
    let sync = SyncMark::start(
        vfs,
        dir,
        rec.sync,
        LogPosition {
            segment: active,
            offset: written_len,
        },
    )?;
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    Ok(FileEnd {
        active,
        file,
        written_len,
        since_checkpoint: rec.report.bytes_scanned,
        sync: Some(sync),
    })
}

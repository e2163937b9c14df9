//! Kept graphs: [`DirStore::persist`] and [`DirStore::register`].
//!
//! Persisting the graph under a key as `name` gives every object file of the graph a second
//! name, a hard link `kept/<name>/<key>`, and writes `kept/<name>/MANIFEST`: the graph's root
//! key and all its keys, so that the user keeps only the name. The links are the same files as
//! the objects (no byte is copied), and they stay when the objects leave `objects/`: deleting an
//! object (as garbage collection does) removes its name there, not the kept one. Registering
//! the name after a restart (or after a collection) links every object of the graph that is
//! missing back into `objects/` and returns the root key, for
//! [`Pool::load`](crate::Pool::load).
//!
//! Protocol of a persist: make the store durable; link every object (under the writer lock, so
//! that no delete runs meanwhile); sync the kept directory; write `MANIFEST.tmp`, sync it,
//! rename it to `MANIFEST`, sync the directory. A kept graph exists once its `MANIFEST` does:
//! a crash before leaves links without a manifest, which the next open removes.

use std::collections::HashSet;
use std::path::PathBuf;

use super::{DirStore, Entry, KEPT_DIR};
use crate::error::{Error, Result};
use crate::format::object::{self, MANIFEST_FILE, MANIFEST_TMP_FILE, Manifest, OBJECT_HEADER_LEN};
use crate::key::{BuildKeyHasher, ContentKey};
use crate::store::{BlobStore, Durability};
use crate::vfs::OpenMode;

/// Longest name of a kept graph, in bytes.
pub const MAX_KEPT_NAME: usize = 200;

/// A graph kept by [`DirStore::persist`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeptGraph {
    /// Its name: the directory `kept/<name>`.
    pub name: String,
    /// The key of its root object.
    pub root: ContentKey,
    /// Objects in the graph, the root's included.
    pub objects: u64,
}

/// True for a name a kept graph may have: 1 to [`MAX_KEPT_NAME`] ASCII letters, digits, `-`,
/// `_` and `.`, not starting with a dot (a directory name on every file system, never a
/// hidden or special one).
pub(super) fn is_kept_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_KEPT_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_kept_name(name: &str) -> Result<()> {
    if is_kept_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{name:?} cannot name a kept graph: use 1 to {MAX_KEPT_NAME} ASCII letters, digits, '-', '_' and '.', not starting with '.'"
        )))
    }
}

impl DirStore {
    pub(super) fn kept_dir(&self, name: &str) -> PathBuf {
        self.dir.join(KEPT_DIR).join(name)
    }

    /// Every key of the graph under `root`, sorted; an error naming the first object missing.
    fn graph_keys(&self, root: ContentKey) -> Result<Vec<ContentKey>> {
        let mut seen: HashSet<ContentKey, BuildKeyHasher> = HashSet::default();
        let mut todo = vec![root];
        seen.insert(root);
        while let Some(k) = todo.pop() {
            let Some(children) = self.children(&k)? else {
                return Err(Error::NotFound {
                    key: k,
                    store: self.describe(),
                });
            };
            for c in children {
                if seen.insert(c) {
                    todo.push(c);
                }
            }
        }
        let mut keys: Vec<ContentKey> = seen.into_iter().collect();
        keys.sort_unstable();
        Ok(keys)
    }

    /// Keeps the graph under `key` as `name`: durable on return, it stays in `kept/<name>`
    /// whatever happens to the objects in `objects/` (deletes, garbage collection), until
    /// [`unpersist`](Self::unpersist); [`register`](Self::register) brings it back. The store
    /// keeps the graph's manifest: the name is all a user needs to remember.
    ///
    /// Refused: a name already kept, a name that is not 1 to [`MAX_KEPT_NAME`] of ASCII
    /// letters, digits, `-`, `_` and `.` (not starting with `.`), and a graph with an object
    /// missing ([`Error::NotFound`] names it); nothing is kept then.
    pub fn persist(&self, key: ContentKey, name: &str) -> Result<KeptGraph> {
        self.writable()?;
        check_kept_name(name)?;
        let dir = self.kept_dir(name);
        if self.vfs.read_dir(&dir).is_ok() {
            return Err(Error::InvalidArgument(format!(
                "a graph is already kept as {name:?} in {}; unpersist it first",
                self.describe()
            )));
        }
        let keys = self.graph_keys(key)?;
        // Whole files only: one found after an unclean close is read back before it is kept.
        for k in &keys {
            let trusted = self.index.read().get(k).is_some_and(|e| e.trusted);
            if !trusted {
                self.get(k)?.ok_or_else(|| Error::NotFound {
                    key: *k,
                    store: self.describe(),
                })?;
            }
        }
        // The objects' bytes first, then the names that keep them.
        self.flush(Durability::Durable)?;
        let kept = self.dir.join(KEPT_DIR);
        let new_kept = self.vfs.read_dir(&kept).is_err();
        self.vfs
            .create_dir_all(&dir)
            .map_err(|e| Error::io("create directory", &dir, e))?;
        if let Err(e) = self.link_graph(&keys, &dir) {
            self.remove_links(&dir, &keys);
            return Err(e);
        }
        let manifest = Manifest { root: key, keys };
        let tmp = dir.join(MANIFEST_TMP_FILE);
        let path = dir.join(MANIFEST_FILE);
        let bytes = object::encode_manifest(&manifest);
        let result = self
            .vfs
            .sync_dir(&dir)
            .and_then(|()| self.vfs.open(&tmp, OpenMode::Create))
            .and_then(|f| f.write_at(&bytes, 0).and_then(|()| f.sync_data()))
            .and_then(|()| self.vfs.rename(&tmp, &path))
            .and_then(|()| self.vfs.sync_dir(&dir))
            .and_then(|()| self.vfs.sync_dir(&kept))
            .and_then(|()| {
                if new_kept {
                    self.vfs.sync_dir(&self.dir)
                } else {
                    Ok(())
                }
            });
        if let Err(e) = result {
            return Err(self.poison(Error::io("write", path, e)));
        }
        Ok(KeptGraph {
            name: name.to_string(),
            root: key,
            objects: manifest.keys.len() as u64,
        })
    }

    /// Links the object files of `keys` into `dir`, with no delete in between.
    fn link_graph(&self, keys: &[ContentKey], dir: &std::path::Path) -> Result<()> {
        let pending = self.writer.lock();
        // A file rewritten since the durable flush (deleted and put again) is synced here.
        let unsynced: HashSet<&PathBuf> = pending.files.iter().collect();
        for k in keys {
            if !self.index.read().contains_key(k) {
                return Err(Error::NotFound {
                    key: *k,
                    store: self.describe(),
                });
            }
            let from = self.object_path(k);
            if unsynced.contains(&from) {
                self.vfs
                    .open(&from, OpenMode::ReadWrite)
                    .and_then(|f| f.sync_data())
                    .map_err(|e| self.poison(Error::io("fsync", &from, e)))?;
            }
            let to = dir.join(k.to_string());
            self.vfs
                .hard_link(&from, &to)
                .map_err(|e| Error::io("link", &to, e))?;
        }
        Ok(())
    }

    /// Removes the links of `keys` in `dir` and `dir` itself, as far as it can (after a failed
    /// persist, or to unpersist).
    fn remove_links(&self, dir: &std::path::Path, keys: &[ContentKey]) {
        for k in keys {
            let _ = self.vfs.remove_file(&dir.join(k.to_string()));
        }
        let _ = self.vfs.remove_file(&dir.join(MANIFEST_TMP_FILE));
        let _ = self.vfs.remove_dir(dir);
    }

    /// Reads the manifest of the kept graph `name`.
    pub(super) fn manifest(&self, name: &str) -> Result<Manifest> {
        check_kept_name(name)?;
        let path = self.kept_dir(name).join(MANIFEST_FILE);
        let bytes = match self.vfs.read_file(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::InvalidArgument(format!(
                    "no graph is kept as {name:?} in {}",
                    self.describe()
                )));
            }
            Err(e) => return Err(Error::io("read", path, e)),
        };
        object::decode_manifest(&bytes)
            .map_err(|e| e.at("kept graph manifest", path.display().to_string()))
    }

    /// Brings the kept graph `name` back: every object of it missing from the store is linked
    /// back in, durably, and the graph's root key is returned (load it with
    /// [`Pool::load`](crate::Pool::load), or name it with [`set_root`](BlobStore::set_root) to
    /// keep it from garbage collection). The graph stays kept.
    ///
    /// A kept object file that is missing or whose header does not check out is an error
    /// naming it; the objects linked back before it stay.
    pub fn register(&self, name: &str) -> Result<ContentKey> {
        self.writable()?;
        let manifest = self.manifest(name)?;
        let dir = self.kept_dir(name);
        {
            let mut pending = self.writer.lock();
            let mut linked = false;
            let result = (|| -> Result<()> {
                for k in &manifest.keys {
                    if self.index.read().contains_key(k) {
                        continue;
                    }
                    let from = dir.join(k.to_string());
                    let len = self.check_kept_file(&from, k)?;
                    let shard = self.shard_dir(&mut pending, k)?;
                    let to = self.object_path(k);
                    self.vfs
                        .hard_link(&from, &to)
                        .map_err(|e| Error::io("link", &to, e))?;
                    linked = true;
                    pending.dirs.insert(shard);
                    self.index.write().insert(*k, Entry { len, trusted: true });
                    self.counters
                        .live_bytes
                        .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(())
            })();
            if linked {
                self.wrote();
            }
            result?;
        }
        self.flush(Durability::Durable)?;
        Ok(manifest.root)
    }

    /// Checks the header and child keys of a kept object file; returns its length.
    pub(super) fn check_kept_file(&self, path: &std::path::Path, key: &ContentKey) -> Result<u64> {
        let f = self
            .vfs
            .open(path, OpenMode::Read)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::Corrupted {
                    what: "kept graph",
                    location: path.display().to_string(),
                    detail: format!("object {key} of the manifest has no file"),
                },
                _ => Error::io("open", path, e),
            })?;
        let len = f.len().map_err(|e| Error::io("read", path, e))?;
        let at = |e: crate::format::DecodeError| e.at("object file", path.display().to_string());
        let mut header = [0u8; OBJECT_HEADER_LEN];
        if len < OBJECT_HEADER_LEN as u64 {
            return Err(at(crate::format::DecodeError::Truncated {
                needed: OBJECT_HEADER_LEN as u64,
                available: len,
            }));
        }
        f.read_at(&mut header, 0)
            .map_err(|e| Error::io("read", path, e))?;
        let head = object::decode_header(&header).map_err(at)?;
        let mut buf = vec![0u8; head.head_len()];
        if head.file_len() != len {
            return Err(Error::Corrupted {
                what: "object file",
                location: path.display().to_string(),
                detail: format!(
                    "the file is {len} bytes long, its header says {}",
                    head.file_len()
                ),
            });
        }
        f.read_at(&mut buf, 0)
            .map_err(|e| Error::io("read", path, e))?;
        let (head, _) = object::decode_head(&buf).map_err(at)?;
        super::check_key(path, &head.key, key)?;
        Ok(len)
    }

    /// The kept graphs, sorted by name. A kept directory whose manifest does not decode is an
    /// error naming it.
    pub fn kept(&self) -> Result<Vec<KeptGraph>> {
        let kept = self.dir.join(KEPT_DIR);
        let mut names = match self.vfs.read_dir(&kept) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list directory", kept, e)),
        };
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if !is_kept_name(&name)
                || !self
                    .vfs
                    .read_dir(&kept.join(&name))
                    .is_ok_and(|e| e.iter().any(|e| e == MANIFEST_FILE))
            {
                continue;
            }
            let m = self.manifest(&name)?;
            out.push(KeptGraph {
                name,
                root: m.root,
                objects: m.keys.len() as u64,
            });
        }
        Ok(out)
    }

    /// Stops keeping the graph `name`: its manifest goes first (from then on it is not kept),
    /// then its links and its directory. Objects of the graph in `objects/` stay. Files in the
    /// directory that the store did not create are left there, with the directory.
    pub fn unpersist(&self, name: &str) -> Result<()> {
        self.writable()?;
        let manifest = self.manifest(name)?;
        let dir = self.kept_dir(name);
        let path = dir.join(MANIFEST_FILE);
        self.vfs
            .remove_file(&path)
            .and_then(|()| self.vfs.sync_dir(&dir))
            .map_err(|e| Error::io("remove", &path, e))?;
        self.remove_links(&dir, &manifest.keys);
        let kept = self.dir.join(KEPT_DIR);
        self.vfs
            .sync_dir(&kept)
            .map_err(|e| Error::io("fsync directory", kept, e))?;
        if self.vfs.read_dir(&dir).is_ok() {
            tracing::warn!(dir = %dir.display(), "the kept graph's directory holds files the store did not create; left alone");
        }
        Ok(())
    }
}

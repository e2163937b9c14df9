//! [`RootsFile`]: a store's named roots in the `ROOTS` file of its directory (see
//! [`crate::format::roots`]), as the log store and the directory store keep them.
//!
//! Invariants:
//! - a root is set only after the store is durable, so a root never names a graph that a power
//!   loss could take away;
//! - the file is replaced atomically: written to `ROOTS.tmp`, synced, renamed over `ROOTS`,
//!   the directory synced;
//! - the cached table is what the file holds: read on first use, replaced only once a write
//!   succeeded. A write that failed leaves it as it was, and the store that owns the file is
//!   poisoned (whether the rename reached the disk is unknown).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::format::roots::{self, ROOTS_FILE, ROOTS_TMP_FILE};
use crate::key::ContentKey;
use crate::store::{BlobStore, Durability};
use crate::vfs::{OpenMode, Vfs};

/// The roots of the store in `dir`, cached; `None` until first used.
#[derive(Debug, Default)]
pub(crate) struct RootsFile(Mutex<Option<BTreeMap<String, ContentKey>>>);

impl RootsFile {
    fn load(vfs: &dyn Vfs, dir: &Path) -> Result<BTreeMap<String, ContentKey>> {
        let path = dir.join(ROOTS_FILE);
        match vfs.read_file(&path) {
            Ok(bytes) => Ok(roots::decode(&bytes)
                .map_err(|e| e.at("roots file", path.display().to_string()))?
                .into_iter()
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// Every root, by name.
    pub fn all(&self, vfs: &dyn Vfs, dir: &Path) -> Result<Vec<(String, ContentKey)>> {
        let mut cache = self.0.lock();
        if cache.is_none() {
            *cache = Some(Self::load(vfs, dir)?);
        }
        Ok(cache
            .as_ref()
            .map(|m| m.iter().map(|(n, k)| (n.clone(), *k)).collect())
            .unwrap_or_default())
    }

    /// One root.
    pub fn get(&self, vfs: &dyn Vfs, dir: &Path, name: &str) -> Result<Option<ContentKey>> {
        let mut cache = self.0.lock();
        if cache.is_none() {
            *cache = Some(Self::load(vfs, dir)?);
        }
        Ok(cache.as_ref().and_then(|m| m.get(name).copied()))
    }

    /// Sets root `name` to `key`, or removes it (`None`), in `store`, whose directory is `dir`:
    /// `key` must be stored; the store is made durable first. The caller checked the name and
    /// that the store takes writes. A failed write of the file goes through `poison`, which
    /// refuses the store's writes from then on and returns the error.
    pub fn set(
        &self,
        store: &dyn BlobStore,
        (vfs, dir): (&dyn Vfs, &Path),
        name: &str,
        key: Option<ContentKey>,
        poison: impl FnOnce(PathBuf, std::io::Error) -> Error,
    ) -> Result<()> {
        if let Some(k) = key
            && !store.contains(&k)?
        {
            return Err(Error::NotFound {
                key: k,
                store: store.describe(),
            });
        }
        // The graph first, then the name that keeps it.
        store.flush(Durability::Durable)?;
        let mut cache = self.0.lock();
        let mut map = match cache.take() {
            Some(m) => m,
            None => Self::load(vfs, dir)?,
        };
        let before = map.clone();
        match key {
            Some(k) => map.insert(name.to_string(), k),
            None => map.remove(name),
        };
        let list: Vec<(String, ContentKey)> = map.iter().map(|(n, k)| (n.clone(), *k)).collect();
        let bytes = roots::encode(&list);
        let tmp = dir.join(ROOTS_TMP_FILE);
        let dst = dir.join(ROOTS_FILE);
        let written = vfs
            .open(&tmp, OpenMode::Create)
            .and_then(|f| f.write_at(&bytes, 0).and_then(|()| f.sync_data()))
            .and_then(|()| vfs.rename(&tmp, &dst))
            .and_then(|()| vfs.sync_dir(dir));
        match written {
            Ok(()) => {
                *cache = Some(map);
                Ok(())
            }
            Err(e) => {
                *cache = Some(before);
                Err(poison(dst, e))
            }
        }
    }
}

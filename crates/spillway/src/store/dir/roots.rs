//! Named roots of a directory store, kept in its `ROOTS` file (the log store's format, see
//! [`crate::format::roots`]).
//!
//! A root is set only after the store is durable, so a root never names a graph that a power
//! loss could take away; the file is replaced atomically (written to `ROOTS.tmp`, synced,
//! renamed, the directory synced).

use std::collections::BTreeMap;

use super::DirStore;
use crate::error::{Error, Result};
use crate::format::roots::{self, ROOTS_FILE, ROOTS_TMP_FILE};
use crate::key::ContentKey;
use crate::store::{BlobStore, Durability};
use crate::vfs::OpenMode;

impl DirStore {
    fn load_roots(&self) -> Result<BTreeMap<String, ContentKey>> {
        let path = self.dir.join(ROOTS_FILE);
        match self.vfs.read_file(&path) {
            Ok(bytes) => Ok(roots::decode(&bytes)
                .map_err(|e| e.at("roots file", path.display().to_string()))?
                .into_iter()
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    pub(super) fn roots_impl(&self) -> Result<Vec<(String, ContentKey)>> {
        let mut cache = self.roots.lock();
        if cache.is_none() {
            *cache = Some(self.load_roots()?);
        }
        Ok(cache
            .as_ref()
            .map(|m| m.iter().map(|(n, k)| (n.clone(), *k)).collect())
            .unwrap_or_default())
    }

    /// One root, looked up in the cached table (read from the file on first use).
    pub(super) fn root_impl(&self, name: &str) -> Result<Option<ContentKey>> {
        let mut cache = self.roots.lock();
        if cache.is_none() {
            *cache = Some(self.load_roots()?);
        }
        Ok(cache.as_ref().and_then(|m| m.get(name).copied()))
    }

    pub(super) fn set_root_impl(&self, name: &str, key: Option<ContentKey>) -> Result<()> {
        crate::store::default_roots::check_name(name)?;
        self.writable()?;
        if let Some(k) = key
            && !self.contains(&k)?
        {
            return Err(Error::NotFound {
                key: k,
                store: self.describe(),
            });
        }
        // The graph first, then the name that keeps it.
        self.flush(Durability::Durable)?;
        let mut cache = self.roots.lock();
        let mut map = match cache.take() {
            Some(m) => m,
            None => self.load_roots()?,
        };
        let before = map.clone();
        match key {
            Some(k) => map.insert(name.to_string(), k),
            None => map.remove(name),
        };
        let list: Vec<(String, ContentKey)> = map.iter().map(|(n, k)| (n.clone(), *k)).collect();
        let bytes = roots::encode(&list);
        let tmp = self.dir.join(ROOTS_TMP_FILE);
        let dst = self.dir.join(ROOTS_FILE);
        let written = self
            .vfs
            .open(&tmp, OpenMode::Create)
            .and_then(|f| f.write_at(&bytes, 0).and_then(|()| f.sync_data()))
            .and_then(|()| self.vfs.rename(&tmp, &dst))
            .and_then(|()| self.vfs.sync_dir(&self.dir));
        match written {
            Ok(()) => {
                *cache = Some(map);
                Ok(())
            }
            Err(e) => {
                *cache = Some(before);
                // Whether the rename reached the disk is unknown: refuse writes from now on.
                Err(self.poison(Error::io("write", dst, e)))
            }
        }
    }
}

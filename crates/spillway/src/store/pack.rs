//! Packs: a root's whole graph in one container file, to copy to another machine and open there
//! read-only as a store ([`PackStore`]), or copy into a store ([`import_pack`]). The layout is
//! in `docs/FORMAT.md` ("Pack").
//!
//! - [`export_pack`] writes the objects reachable from the named roots, in key order, so that
//!   the same graph always gives the same bytes. It writes `<file>.partial` and renames it into
//!   place once complete: a crash never leaves a file under the pack's name.
//! - A [`PackStore`] maps the file and reads records in place: a lookup is a binary search of the
//!   mapped index, a read one record's checksum. The index is derived data: a damaged index
//!   section is rebuilt from the objects at open (and the rebuild reported), never fatal.
//! - Writes to a pack are [`Error::ReadOnly`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::container::{Bytes, Change, Container, ContainerOptions, SectionData, SlotState, types};
use crate::error::{Error, Result};
use crate::format::pack::{self as fmt, IndexEntry};
use crate::format::record::{self, RecordKind};
use crate::format::roots;
use crate::key::ContentKey;
use crate::store::{Blob, BlobStore, Durability, Put, StoreStats};
use crate::vfs::{FileView, OsFs, Vfs};

/// Where a pack's index is.
#[derive(Debug)]
enum Index {
    /// The index section, in the mapped file: `(offset, len)`.
    Mapped(usize, usize),
    /// Rebuilt from the objects because the section was missing or damaged.
    Rebuilt(Vec<u8>),
}

/// What opening a pack found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackReport {
    /// Why the index was rebuilt from the objects, if it was.
    pub index_rebuilt: Option<String>,
    /// Byte ranges of the objects section that held no readable record (found by a rebuild).
    pub damaged_ranges: Vec<(u64, u64)>,
}

/// A pack file opened read-only as a store.
pub struct PackStore {
    path: PathBuf,
    view: FileView,
    /// The objects section in the view: `(offset, len)`.
    objects: (usize, usize),
    /// The objects section's checksum, from the directory.
    objects_crc: u32,
    /// The objects section's version: below [`fmt::TAGGED_VALUES_VERSION`], values carry no
    /// type tag.
    objects_version: u32,
    index: Index,
    count: usize,
    roots: Vec<(String, ContentKey)>,
    report: PackReport,
    file_len: u64,
    gets: AtomicU64,
}

impl std::fmt::Debug for PackStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackStore")
            .field("path", &self.path)
            .field("objects", &self.count)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl PackStore {
    /// Opens the pack at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<PackStore> {
        PackStore::open_on(Arc::new(OsFs), path.as_ref())
    }

    /// Opens the pack at `path` on `vfs`.
    pub fn open_on(vfs: Arc<dyn Vfs>, path: &Path) -> Result<PackStore> {
        let c = Container::open_on(Arc::clone(&vfs), path, ContainerOptions::read_only())?;
        let not_a_pack = |detail: String| Error::NotAStore {
            path: path.to_path_buf(),
            detail,
        };
        let objects = c
            .section(fmt::OBJECTS_SECTION)
            .filter(|s| s.kind == types::OBJECTS)
            .ok_or_else(|| {
                not_a_pack("a container file without an objects section is not a pack".into())
            })?;
        if objects.version > fmt::OBJECTS_VERSION {
            return Err(Error::UnsupportedVersion {
                path: path.to_path_buf(),
                found: objects.version,
                supported: fmt::OBJECTS_VERSION,
            });
        }
        let view = vfs.map(path).map_err(|e| Error::io("map", path, e))?;
        let bytes: &[u8] = view.as_ref().as_ref();
        let span = |offset: u64, len: u64| -> Result<(usize, usize)> {
            let start = usize::try_from(offset).ok();
            let n = usize::try_from(len).ok();
            match (start, n) {
                (Some(s), Some(n)) if s.checked_add(n).is_some_and(|e| e <= bytes.len()) => {
                    Ok((s, n))
                }
                _ => Err(Error::Corrupted {
                    what: "pack",
                    location: path.display().to_string(),
                    detail: format!("a section at {offset} of {len} bytes is past the file's end"),
                }),
            }
        };
        let objects_span = span(objects.offset, objects.len)?;
        let objects_bytes = &bytes[objects_span.0..][..objects_span.1];
        let mut report = PackReport::default();
        let mapped_index = match c.section(fmt::INDEX_SECTION) {
            None => Err("the pack has no index section".to_string()),
            Some(s) if s.kind != types::OBJECT_INDEX || s.version > fmt::INDEX_VERSION => {
                Err(format!(
                    "the index section has type {:#x} version {}",
                    s.kind, s.version
                ))
            }
            Some(s) => {
                let (at, len) = span(s.offset, s.len)?;
                let got = crc32c::crc32c(&bytes[at..][..len]);
                if got != s.crc {
                    Err(format!(
                        "the index section's checksum fails (stored {:#010x}, computed {got:#010x})",
                        s.crc
                    ))
                } else {
                    fmt::check_index(&bytes[at..][..len], objects.len)
                        .map(|n| (Index::Mapped(at, len), n))
                        .map_err(|e| format!("the index section is invalid: {e}"))
                }
            }
        };
        let (index, count) = match mapped_index {
            Ok(found) => found,
            Err(why) => {
                tracing::warn!(pack = %path.display(), %why, "rebuilding the pack's index");
                let (rebuilt, damaged) = fmt::rebuild_index(objects_bytes);
                let n = rebuilt.len() / fmt::INDEX_ENTRY_LEN;
                report.index_rebuilt = Some(why);
                report.damaged_ranges = damaged;
                (Index::Rebuilt(rebuilt), n)
            }
        };
        if let Some(s) = c.section(fmt::ROOTS_SECTION)
            && (s.kind != types::ROOTS || s.version > fmt::ROOTS_VERSION)
        {
            return Err(not_a_pack(format!(
                "its roots section has type {:#x} version {}",
                s.kind, s.version
            )));
        }
        let roots = match c.read(fmt::ROOTS_SECTION)? {
            // An export writes the roots in its last checkpoint: a pack without them opened at
            // an earlier state, because that checkpoint's slot is damaged. Opening it with no
            // roots would hide the damage.
            None => {
                return Err(Error::Corrupted {
                    what: "pack",
                    location: path.display().to_string(),
                    detail: format!(
                        "it has no {:?} section, which an export writes in its last checkpoint:                          that checkpoint is damaged ({}); export the pack again",
                        fmt::ROOTS_SECTION,
                        describe_slots(c.slots())
                    ),
                });
            }
            Some(b) => roots::decode(&b).map_err(|e| {
                e.at(
                    "pack roots",
                    format!("section {:?} of {}", fmt::ROOTS_SECTION, path.display()),
                )
            })?,
        };
        Ok(PackStore {
            path: path.to_path_buf(),
            file_len: bytes.len() as u64,
            view,
            objects: objects_span,
            objects_crc: objects.crc,
            objects_version: objects.version,
            index,
            count,
            roots,
            report,
            gets: AtomicU64::new(0),
        })
    }

    /// What the open found: whether the index was rebuilt, and damaged ranges of the objects.
    pub fn open_report(&self) -> &PackReport {
        &self.report
    }

    /// The pack file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the whole objects section against its checksum (records are checked one by one
    /// as they are read; this checks them all at once, at memory speed).
    pub fn verify_objects(&self) -> Result<()> {
        let got = crc32c::crc32c(self.objects());
        if got != self.objects_crc {
            return Err(Error::ChecksumMismatch {
                what: "pack objects section",
                location: format!(
                    "section {:?} of {}",
                    fmt::OBJECTS_SECTION,
                    self.path.display()
                ),
                expected: self.objects_crc,
                got,
            });
        }
        Ok(())
    }

    fn index_bytes(&self) -> &[u8] {
        match &self.index {
            Index::Mapped(at, len) => &self.bytes()[*at..][..*len],
            Index::Rebuilt(v) => v,
        }
    }

    fn bytes(&self) -> &[u8] {
        self.view.as_ref().as_ref()
    }

    fn objects(&self) -> &[u8] {
        &self.bytes()[self.objects.0..][..self.objects.1]
    }

    /// The record of `key`, checked (its checksum, its key, a put, and that its payload and
    /// children hash to that key).
    fn record(&self, key: &ContentKey) -> Result<Option<record::Record<'_>>> {
        let Some(e) = fmt::find(self.index_bytes(), self.count, key) else {
            return Ok(None);
        };
        let at = e.offset as usize;
        let b = &self.objects()[at..][..e.len as usize];
        let location = || format!("{} objects offset {}", self.path.display(), e.offset);
        let r = record::decode(b).map_err(|err| err.at("pack record", location()))?;
        if r.header.key != *key || r.header.kind != RecordKind::Put {
            return Err(Error::Corrupted {
                what: "pack record",
                location: location(),
                detail: format!("the index points key {key} at another record"),
            });
        }
        // A record's checksum vouches for its bytes, not for the key in its header: a pack is
        // a file from elsewhere, so its bytes must hash to the key asked for.
        if ContentKey::of(r.payload, &r.child_keys()) != *key {
            return Err(Error::Corrupted {
                what: "pack record",
                location: location(),
                detail: format!(
                    "the record under key {key} holds bytes of another key; the pack was                      written wrongly or altered (export it again)"
                ),
            });
        }
        Ok(Some(r))
    }

    fn read_only(&self) -> Error {
        Error::ReadOnly {
            path: self.path.clone(),
        }
    }
}

impl BlobStore for PackStore {
    fn put_batch(&self, _batch: &[Put<'_>]) -> Result<()> {
        Err(self.read_only())
    }

    fn get(&self, key: &ContentKey) -> Result<Option<Blob>> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        Ok(self.record(key)?.map(|r| Blob {
            children: r.child_keys(),
            payload: r.payload.to_vec(),
        }))
    }

    fn contains(&self, key: &ContentKey) -> Result<bool> {
        Ok(fmt::find(self.index_bytes(), self.count, key).is_some())
    }

    fn children(&self, key: &ContentKey) -> Result<Option<Vec<ContentKey>>> {
        Ok(self.record(key)?.map(|r| r.child_keys()))
    }

    fn delete(&self, _keys: &[ContentKey]) -> Result<()> {
        Err(self.read_only())
    }

    fn keys(&self) -> Result<Vec<ContentKey>> {
        let index = self.index_bytes();
        Ok((0..self.count).map(|i| fmt::entry(index, i).key).collect())
    }

    fn flush(&self, _durability: Durability) -> Result<()> {
        // Nothing is ever written: everything is as durable as the file.
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            objects: self.count as u64,
            live_bytes: self.objects.1 as u64,
            disk_bytes: self.file_len,
            gets: self.gets.load(Ordering::Relaxed),
            index_bytes: match &self.index {
                Index::Mapped(..) => 0,
                Index::Rebuilt(v) => v.capacity() as u64,
            },
            ..StoreStats::default()
        }
    }

    fn describe(&self) -> String {
        format!("pack {}", self.path.display())
    }

    fn untagged_values(&self) -> Option<Error> {
        super::untagged_before(
            self.describe(),
            self.objects_version,
            fmt::TAGGED_VALUES_VERSION,
            fmt::OBJECTS_VERSION,
            "`PackStore`, `verify`, `inspect`, an import into an untagged store",
        )
    }

    fn roots(&self) -> Result<Vec<(String, ContentKey)>> {
        Ok(self.roots.clone())
    }

    fn set_root(&self, _name: &str, _key: Option<ContentKey>) -> Result<()> {
        Err(self.read_only())
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The roots written, with their keys.
    pub roots: Vec<(String, ContentKey)>,
    /// Objects written.
    pub objects: u64,
    /// Bytes of the objects section.
    pub object_bytes: u64,
    /// Bytes of the pack file.
    pub file_bytes: u64,
}

/// Writes the roots `names` of `store` and everything they reach into a new pack at `path`
/// (which must not exist). Deterministic: the same graphs give the same bytes.
pub fn export_pack(store: &dyn BlobStore, names: &[String], path: &Path) -> Result<ExportReport> {
    if path.exists() {
        return Err(Error::InvalidArgument(format!(
            "{} exists: remove it or give another file name",
            path.display()
        )));
    }
    let all = store.roots()?;
    let mut roots: Vec<(String, ContentKey)> = Vec::new();
    for name in names {
        let key = all
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{} has no root named {name:?} (it has {})",
                    store.describe(),
                    all.len()
                ))
            })?;
        roots.push((name.clone(), key));
    }
    roots.sort();
    roots.dedup();
    // Everything reachable, through the children alone.
    let mut seen: BTreeSet<ContentKey> = BTreeSet::new();
    let mut todo: Vec<(ContentKey, &str)> = roots.iter().map(|(n, k)| (*k, n.as_str())).collect();
    while let Some((key, root)) = todo.pop() {
        if !seen.insert(key) {
            continue;
        }
        let children = store.children(&key)?.ok_or_else(|| Error::Corrupted {
            what: "graph",
            location: store.describe(),
            detail: format!(
                "root {root:?} reaches object {key}, which the store does not hold; check the \
                 store with `spillway verify`"
            ),
        })?;
        todo.extend(children.into_iter().map(|c| (c, root)));
    }
    // A name of this export's own: another export to the same file works on its own.
    let mut partial_name = path.file_name().unwrap_or_default().to_os_string();
    partial_name.push(format!(".partial-{}", std::process::id()));
    let partial = path.with_file_name(partial_name);
    let _ = std::fs::remove_file(&partial);
    let lock = crate::container::lock_path(&partial);
    // A store whose values have no type tag gives a pack that says so.
    let version = match store.untagged_values() {
        Some(_) => fmt::TAGGED_VALUES_VERSION - 1,
        None => fmt::OBJECTS_VERSION,
    };
    let written = write_pack(store, &seen, &roots, version, &partial);
    let _ = std::fs::remove_file(&lock);
    let (objects, object_bytes) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    // A hard link, not a rename: it fails if the file appeared meanwhile, never replacing it.
    let linked = std::fs::hard_link(&partial, path);
    let _ = std::fs::remove_file(&partial);
    linked.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::InvalidArgument(format!(
                "{} appeared while the pack was written: nothing replaced it; remove it or give \
                 another file name",
                path.display()
            ))
        } else {
            Error::io("link", path, e)
        }
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::vfs::OsFs
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync", dir, e))?;
    let file_bytes = std::fs::metadata(path)
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    Ok(ExportReport {
        roots,
        objects,
        object_bytes,
        file_bytes,
    })
}

/// The two checkpoints of an export: the objects (their section at `objects_version`),
/// streamed in key order; then their index and the roots. Returns the objects and bytes
/// written.
fn write_pack(
    store: &dyn BlobStore,
    keys: &BTreeSet<ContentKey>,
    roots: &[(String, ContentKey)],
    objects_version: u32,
    path: &Path,
) -> Result<(u64, u64)> {
    let mut c = Container::open(path)?;
    let mut index: Vec<u8> = Vec::with_capacity(keys.len() * fmt::INDEX_ENTRY_LEN);
    let mut record = Vec::new();
    let mut written = 0u64;
    let stream = |w: &mut crate::container::SectionWriter<'_>| -> Result<()> {
        for key in keys {
            let blob = get_checked(store, key)?;
            record.clear();
            record::encode(
                &mut record,
                RecordKind::Put,
                key,
                &blob.children,
                &blob.payload,
            );
            fmt::encode_entry(
                &mut index,
                &IndexEntry {
                    key: *key,
                    offset: w.len(),
                    len: record.len() as u32,
                },
            );
            w.write(&record)?;
            written = w.len();
        }
        Ok(())
    };
    c.checkpoint([Change::Put(SectionData {
        name: fmt::OBJECTS_SECTION,
        kind: types::OBJECTS,
        version: objects_version,
        required: true,
        mmap: true,
        index: false,
        bytes: Bytes::Stream(Box::new(stream)),
    })])?;
    let roots_bytes = roots::encode(roots);
    c.checkpoint([
        Change::Put(SectionData {
            name: fmt::INDEX_SECTION,
            kind: types::OBJECT_INDEX,
            version: fmt::INDEX_VERSION,
            required: false,
            mmap: true,
            index: true,
            bytes: Bytes::Slice(&index),
        }),
        Change::Put(SectionData {
            name: fmt::ROOTS_SECTION,
            kind: types::ROOTS,
            version: fmt::ROOTS_VERSION,
            required: true,
            mmap: false,
            index: false,
            bytes: Bytes::Slice(&roots_bytes),
        }),
    ])?;
    Ok(((index.len() / fmt::INDEX_ENTRY_LEN) as u64, written))
}

/// Reads `key` from `store` and checks that its content hashes to it: a store (or pack) that
/// answers with other bytes is damage, named with the store.
fn get_checked(store: &dyn BlobStore, key: &ContentKey) -> Result<Blob> {
    let blob = store.get(key)?.ok_or_else(|| Error::NotFound {
        key: *key,
        store: store.describe(),
    })?;
    if blob.key() != *key {
        return Err(Error::Corrupted {
            what: "object",
            location: store.describe(),
            detail: format!("object {key} holds content whose key is {}", blob.key()),
        });
    }
    Ok(blob)
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Objects in the pack.
    pub objects: u64,
    /// Roots set in the store.
    pub roots: Vec<(String, ContentKey)>,
}

/// Copies every object of `pack` into `store`, makes them durable, then sets the pack's roots.
/// Nothing is copied from a pack whose objects section fails its checksum, and a root the store
/// already has under another key is refused (nothing copied or set) unless `replace_roots`.
/// Nor from a pack whose values carry no type tag into a store whose values have one: its
/// values would be refused there one by one.
pub fn import_pack(
    pack: &PackStore,
    store: &dyn BlobStore,
    replace_roots: bool,
) -> Result<ImportReport> {
    if store.untagged_values().is_none()
        && let Some(e) = pack.untagged_values()
    {
        return Err(e);
    }
    pack.verify_objects()?;
    let existing = store.roots()?;
    let roots = pack.roots()?;
    if let Some((name, key)) = roots
        .iter()
        .find(|(_, k)| !pack.contains(k).unwrap_or(false))
    {
        return Err(Error::Corrupted {
            what: "pack",
            location: pack.describe(),
            detail: format!("its root {name:?} names object {key}, which it does not hold"),
        });
    }
    if !replace_roots
        && let Some((name, old)) = existing
            .iter()
            .find(|(n, k)| roots.iter().any(|(pn, pk)| pn == n && pk != k))
    {
        return Err(Error::InvalidArgument(format!(
            "{} already has a root {name:?} (object {old}) that the pack names otherwise; \
             import with the option to replace roots, or remove that root first",
            store.describe()
        )));
    }
    let keys = pack.keys()?;
    for chunk in keys.chunks(256) {
        let blobs: Vec<Blob> = chunk
            .iter()
            .map(|k| {
                pack.get(k)?.ok_or_else(|| Error::NotFound {
                    key: *k,
                    store: pack.describe(),
                })
            })
            .collect::<Result<_>>()?;
        // The pack checked each key against its content as it read it: not hashed again.
        let puts: Vec<Put<'_>> = chunk
            .iter()
            .zip(&blobs)
            .map(|(k, b)| Put {
                key: *k,
                children: &b.children,
                payload: &b.payload,
            })
            .collect();
        store.put_batch(&puts)?;
    }
    store.flush(Durability::Durable)?;
    for (name, key) in &roots {
        store.set_root(name, Some(*key))?;
    }
    Ok(ImportReport {
        objects: keys.len() as u64,
        roots,
    })
}

/// The commit slots of a container in words, for an error message.
fn describe_slots(slots: &[SlotState; 2]) -> String {
    let words: Vec<String> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            SlotState::Empty => format!("slot {i} empty"),
            SlotState::Valid { iteration, .. } => {
                format!("slot {i} valid at iteration {iteration}")
            }
            SlotState::Broken { iteration, problem } => {
                format!("slot {i} at iteration {iteration} broken: {problem}")
            }
            SlotState::Damaged(why) => format!("slot {i} damaged: {why}"),
        })
        .collect();
    words.join("; ")
}

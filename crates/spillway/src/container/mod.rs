//! Container files: one checksummed file of typed sections, replaced as a whole by atomic
//! checkpoints (the format is in `docs/FORMAT.md`, "Container file", and the crate's
//! `format::container` module).
//!
//! A [`Container`] is open either for writing (one writer at a time: an exclusive lock on
//! `<file>.lock`) or read-only. Its state is the set of sections the newest valid commit slot
//! names. [`Container::checkpoint`] makes a new state:
//!
//! 1. new and changed sections, then the new directory, go into space the current state does
//!    not use (the `space` module), so a crash at any point leaves the current state intact;
//! 2. the file is synced;
//! 3. the other slot is written with the next iteration;
//! 4. the file is synced again, and only then does the new state become the container's.
//!
//! Invariants:
//! - Bytes the current state uses (its sections and directory) are never written while it is
//!   current; neither are the previous state's until a checkpoint after the current one
//!   completes, so a damaged newest slot falls back to an intact previous state.
//! - Every byte a reader gets from [`Container::read`] passed its section's checksum.
//! - After a failed checkpoint the container refuses further checkpoints (poisoned): the file's
//!   state on disk is one of the two last states, which a reopen finds.

mod kinds;
mod space;

pub use kinds::{KeyIndex, Section, U64Column, View};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::DecodeError;
use crate::format::container::{self as fmt, DirEntry, FLAG_REQUIRED, HEADER_LEN, SLOT_LEN, Slot};
use crate::vfs::{OpenMode, OsFs, Vfs, VfsFile};

use space::Space;

pub use crate::format::container::{CONTAINER_MAGIC, CONTAINER_VERSION, Header};

/// Section types defined by spillway. Users' own types should be `0x1_0000` or above.
pub mod types {
    /// The objects of a pack: records back to back.
    pub const OBJECTS: u32 = 1;
    /// The index of a pack's objects (derived from [`OBJECTS`]).
    pub const OBJECT_INDEX: u32 = 2;
    /// A pack's named roots.
    pub const ROOTS: u32 = 3;
    /// A sorted index of keys.
    pub const KEY_INDEX: u32 = 16;
    /// A column of `u64`s.
    pub const U64_COLUMN: u32 = 17;
    /// The first type number left to users.
    pub const FIRST_USER: u32 = 0x1_0000;
}

/// How to open a container.
#[derive(Debug, Clone)]
pub struct ContainerOptions {
    /// Open without the write lock; checkpoints fail with [`Error::ReadOnly`].
    pub read_only: bool,
    /// Create the file if it does not exist (default `true`; ignored when read-only).
    pub create: bool,
    /// Page size of a new file (default 4,096).
    pub page_size: u32,
    /// Section types the caller can read, beside spillway's own ([`types`]). A required
    /// section of another type makes the open fail; an optional one is skipped (kept as it is
    /// by checkpoints, but not listed by [`Container::sections`]).
    pub known_types: BTreeSet<u32>,
    /// Accept sections of every type (for tools that list and check containers): nothing is
    /// refused or skipped for its type.
    pub any_type: bool,
}

impl Default for ContainerOptions {
    fn default() -> Self {
        ContainerOptions {
            read_only: false,
            create: true,
            page_size: fmt::DEFAULT_PAGE_SIZE,
            known_types: BTreeSet::new(),
            any_type: false,
        }
    }
}

impl ContainerOptions {
    /// Read-only access to an existing file.
    pub fn read_only() -> Self {
        ContainerOptions {
            read_only: true,
            create: false,
            ..Default::default()
        }
    }

    /// Adds section types the caller reads.
    pub fn known_types(mut self, types: impl IntoIterator<Item = u32>) -> Self {
        self.known_types.extend(types);
        self
    }

    /// Accept sections of every type (see [`ContainerOptions::any_type`]).
    pub fn any_type(mut self, yes: bool) -> Self {
        self.any_type = yes;
        self
    }

    fn knows(&self, kind: u32) -> bool {
        self.any_type
            || (kind < types::FIRST_USER && spillway_type(kind))
            || self.known_types.contains(&kind)
    }
}

fn spillway_type(kind: u32) -> bool {
    matches!(
        kind,
        types::OBJECTS | types::OBJECT_INDEX | types::ROOTS | types::KEY_INDEX | types::U64_COLUMN
    )
}

/// A section as the container lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    /// The section's name, unique in the container.
    pub name: String,
    /// Its type.
    pub kind: u32,
    /// Its own format version.
    pub version: u32,
    /// Required: a reader that does not know the type must refuse the file.
    pub required: bool,
    /// Its data can be used in place from a memory map.
    pub mmap: bool,
    /// An index, derived from the data sections (rebuilt when damaged).
    pub index: bool,
    /// Where its data starts in the file.
    pub offset: u64,
    /// Bytes of data.
    pub len: u64,
    /// CRC32C of the data.
    pub crc: u32,
}

impl SectionInfo {
    fn of(e: &DirEntry) -> SectionInfo {
        SectionInfo {
            name: e.name.clone(),
            kind: e.kind,
            version: e.version,
            required: e.flags & FLAG_REQUIRED != 0,
            mmap: e.flags & fmt::FLAG_MMAP != 0,
            index: e.flags & fmt::FLAG_INDEX != 0,
            offset: e.offset,
            len: e.len,
            crc: e.crc,
        }
    }
}

/// What a commit slot holds, for tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// Never written (all zero).
    Empty,
    /// A valid slot with this iteration.
    Valid {
        /// The slot's iteration.
        iteration: u64,
        /// Sections its directory lists.
        sections: u32,
    },
    /// The slot checks out but what it points at does not: its directory is damaged, or the
    /// file was cut below the length it records. Never a crash's doing (a slot is written
    /// only after everything it points at is synced): damage, and if its iteration is the
    /// higher, the container opened at an older state.
    Broken {
        /// The slot's iteration.
        iteration: u64,
        /// What is wrong.
        problem: String,
    },
    /// Written but not valid: torn by a crash, or damaged.
    Damaged(String),
}

/// The data of a new or changed section.
pub enum Bytes<'a> {
    /// Bytes in memory.
    Slice(&'a [u8]),
    /// Bytes produced while the checkpoint runs, for sections too big to hold in memory at
    /// once: the function writes them in order through the [`SectionWriter`]. A streamed
    /// section goes after every other byte of the file.
    Stream(Box<Producer<'a>>),
}

/// What writes a streamed section: called once, it writes the bytes in order.
pub type Producer<'a> = dyn FnMut(&mut SectionWriter<'_>) -> Result<()> + 'a;

impl std::fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bytes::Slice(b) => write!(f, "Slice({} bytes)", b.len()),
            Bytes::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl<'a> From<&'a [u8]> for Bytes<'a> {
    fn from(b: &'a [u8]) -> Bytes<'a> {
        Bytes::Slice(b)
    }
}

impl<'a> From<&'a Vec<u8>> for Bytes<'a> {
    fn from(b: &'a Vec<u8>) -> Bytes<'a> {
        Bytes::Slice(b)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Bytes<'a> {
    fn from(b: &'a [u8; N]) -> Bytes<'a> {
        Bytes::Slice(b)
    }
}

/// Where a streamed section's bytes go: appended in order, checksummed on the way.
#[derive(Debug)]
pub struct SectionWriter<'a> {
    file: &'a dyn VfsFile,
    path: &'a Path,
    /// Where the section's next byte goes.
    at: u64,
    len: u64,
    crc: u32,
    /// The file's length when the checkpoint began: past it the file reads as zeros.
    old_len: u64,
}

impl SectionWriter<'_> {
    /// Appends `bytes` to the section.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        write_sparse(self.file, self.path, self.at, bytes, self.old_len)?;
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.at += bytes.len() as u64;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Writes `bytes` at `at`, leaving runs of zeros past `old_len` (where the file reads as zeros
/// already) as holes.
fn write_sparse(
    file: &dyn VfsFile,
    path: &Path,
    at: u64,
    bytes: &[u8],
    old_len: u64,
) -> Result<()> {
    for (i, chunk) in bytes.chunks(ZEROS.len()).enumerate() {
        let chunk_at = at + (i * ZEROS.len()) as u64;
        if chunk_at >= old_len && chunk == &ZEROS[..chunk.len()] {
            continue;
        }
        file.write_at(chunk, chunk_at)
            .map_err(|e| Error::io("write", path, e))?;
    }
    Ok(())
}

/// A new or changed section for [`Container::checkpoint`].
#[derive(Debug)]
pub struct SectionData<'a> {
    /// The section's name (1 to 32 bytes of UTF-8, no NUL).
    pub name: &'a str,
    /// Its type ([`types`], or a user type).
    pub kind: u32,
    /// Its format version.
    pub version: u32,
    /// A reader that does not know `kind` must refuse the file.
    pub required: bool,
    /// The data can be used in place from a memory map.
    pub mmap: bool,
    /// An index derived from data sections.
    pub index: bool,
    /// The bytes.
    pub bytes: Bytes<'a>,
}

/// One change of a checkpoint.
#[derive(Debug)]
pub enum Change<'a> {
    /// Add or replace a section.
    Put(SectionData<'a>),
    /// Remove the section of this name (nothing if there is none).
    Remove(&'a str),
}

/// An open container file.
#[derive(Debug)]
pub struct Container {
    path: PathBuf,
    file: Arc<dyn VfsFile>,
    opts: ContainerOptions,
    header: Header,
    /// The slot (0 or 1) holding the current state, and its contents.
    current: Option<(usize, Slot)>,
    /// The current state's directory (sections of every type, skipped ones too).
    entries: Vec<DirEntry>,
    /// What the slot before the current one used: kept intact until the next checkpoint ends.
    previous: Vec<(u64, u64)>,
    slots: [SlotState; 2],
    poisoned: Option<Arc<Error>>,
    _lock: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Container {
    /// Opens (or creates) the container file at `path` for writing.
    pub fn open(path: impl AsRef<Path>) -> Result<Container> {
        Container::open_with(path, ContainerOptions::default())
    }

    /// Opens the container file at `path` with `opts`.
    pub fn open_with(path: impl AsRef<Path>, opts: ContainerOptions) -> Result<Container> {
        Container::open_on(Arc::new(OsFs), path.as_ref(), opts)
    }

    /// [`open_with`](Self::open_with) on a given file system (tests run on a simulated one).
    pub fn open_on(vfs: Arc<dyn Vfs>, path: &Path, opts: ContainerOptions) -> Result<Container> {
        let lock = if opts.read_only {
            None
        } else {
            Some(crate::store::lock::lock(
                vfs.as_ref(),
                &lock_path(path),
                path,
            )?)
        };
        let exists = vfs.open(path, OpenMode::Read).is_ok();
        if !exists {
            if opts.read_only || !opts.create {
                return Err(Error::io(
                    "open",
                    path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such container file"),
                ));
            }
            create(vfs.as_ref(), path, opts.page_size)?;
        }
        let mode = if opts.read_only {
            OpenMode::Read
        } else {
            OpenMode::ReadWrite
        };
        let file = vfs
            .open(path, mode)
            .map_err(|e| Error::io("open", path, e))?;
        let mut c = Container {
            path: path.to_path_buf(),
            file,
            opts,
            header: Header::new(fmt::DEFAULT_PAGE_SIZE),
            current: None,
            entries: Vec::new(),
            previous: Vec::new(),
            slots: [SlotState::Empty, SlotState::Empty],
            poisoned: None,
            _lock: lock,
        };
        c.load()?;
        Ok(c)
    }

    /// Reads the header, both slots, and the newest valid slot's directory.
    fn load(&mut self) -> Result<()> {
        let len = self
            .file
            .len()
            .map_err(|e| Error::io("stat", &self.path, e))?;
        let mut hb = [0u8; HEADER_LEN];
        if len < HEADER_LEN as u64 {
            return Err(Error::NotAStore {
                path: self.path.clone(),
                detail: format!("{len} bytes is too short for a container file"),
            });
        }
        self.read_at(&mut hb, 0, "read the header")?;
        self.header = fmt::decode_header(&hb).map_err(|e| match e {
            DecodeError::BadMagic => Error::NotAStore {
                path: self.path.clone(),
                detail: "not a spillway container file (wrong magic number)".into(),
            },
            DecodeError::UnsupportedVersion(found) => Error::UnsupportedVersion {
                path: self.path.clone(),
                found,
                supported: fmt::CONTAINER_VERSION,
            },
            other => other.at(
                "container header",
                format!("{} offset 0", self.path.display()),
            ),
        })?;
        // Both slots: the valid one with the higher iteration whose directory checks out and
        // whose data the file still holds is the state.
        let mut candidates: Vec<(usize, Slot, Vec<DirEntry>)> = Vec::new();
        let mut problems = Vec::new();
        for i in 0..2 {
            let at = self.header.slot_offset(i);
            let mut sb = [0u8; SLOT_LEN];
            if at + SLOT_LEN as u64 > len {
                self.slots[i] = SlotState::Damaged(format!("the file ends at byte {len}"));
                continue;
            }
            self.read_at(&mut sb, at, "read a commit slot")?;
            if sb.iter().all(|&b| b == 0) {
                self.slots[i] = SlotState::Empty;
                continue;
            }
            let slot = match fmt::decode_slot(&sb, &self.header) {
                Ok(s) => s,
                Err(e) => {
                    self.slots[i] = SlotState::Damaged(e.to_string());
                    problems.push(format!("slot {i}: {e}"));
                    continue;
                }
            };
            match self.load_dir(&slot, len) {
                Ok(entries) => {
                    self.slots[i] = SlotState::Valid {
                        iteration: slot.iteration,
                        sections: slot.count,
                    };
                    candidates.push((i, slot, entries));
                }
                Err(e) => {
                    problems.push(format!("slot {i} (iteration {}): {e}", slot.iteration));
                    self.slots[i] = SlotState::Broken {
                        iteration: slot.iteration,
                        problem: e,
                    };
                }
            }
        }
        candidates.sort_by_key(|(_, s, _)| std::cmp::Reverse(s.iteration));
        let mut it = candidates.into_iter();
        let Some((i, slot, entries)) = it.next() else {
            let detail = if problems.is_empty() {
                "neither commit slot was ever written".to_string()
            } else {
                format!("no commit slot is usable: {}", problems.join("; "))
            };
            return Err(Error::Corrupted {
                what: "container",
                location: self.path.display().to_string(),
                detail,
            });
        };
        self.previous = it
            .next()
            .map(|(_, s, e)| extents(&s, &e))
            .unwrap_or_default();
        if let Some(e) = entries
            .iter()
            .find(|e| e.flags & FLAG_REQUIRED != 0 && !self.opts.knows(e.kind))
        {
            return Err(Error::Corrupted {
                what: "container",
                location: self.path.display().to_string(),
                detail: format!(
                    "section {:?} has type {:#x}, which this program does not know, and is \
                     required: it was written by a newer or another program; open it with one \
                     that knows the type",
                    e.name, e.kind
                ),
            });
        }
        self.current = Some((i, slot));
        self.entries = entries;
        Ok(())
    }

    /// Reads and decodes the directory `slot` points at, in a file of `len` bytes.
    fn load_dir(&self, slot: &Slot, len: u64) -> std::result::Result<Vec<DirEntry>, String> {
        if slot.file_len > len {
            return Err(format!(
                "the file is {len} bytes but the state needs {}: it was cut",
                slot.file_len
            ));
        }
        let mut dir = vec![0u8; slot.dir_len() as usize];
        self.file
            .read_at(&mut dir, slot.dir_offset)
            .map_err(|e| format!("reading the directory: {e}"))?;
        fmt::decode_dir(&dir, slot, &self.header).map_err(|e| format!("directory: {e}"))
    }

    fn read_at(&self, buf: &mut [u8], at: u64, what: &'static str) -> Result<()> {
        self.file
            .read_at(buf, at)
            .map_err(|e| Error::io(what, &self.path, e))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header: format version, page size, feature flags.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Both commit slots, as found when opened and as changed by checkpoints since.
    pub fn slots(&self) -> &[SlotState; 2] {
        &self.slots
    }

    /// The current state's iteration (1 for a new file).
    pub fn iteration(&self) -> u64 {
        self.current.map_or(0, |(_, s)| s.iteration)
    }

    /// The sections of the current state, in directory order, without optional sections of
    /// types the caller does not know.
    pub fn sections(&self) -> Vec<SectionInfo> {
        self.entries
            .iter()
            .filter(|e| self.opts.knows(e.kind))
            .map(SectionInfo::of)
            .collect()
    }

    /// The section named `name`, if the current state has one (of a type the caller knows).
    pub fn section(&self, name: &str) -> Option<SectionInfo> {
        self.entries
            .iter()
            .find(|e| e.name == name && self.opts.knows(e.kind))
            .map(SectionInfo::of)
    }

    /// Reads the section `name` into memory, after checking its checksum. `Ok(None)` if there
    /// is no such section; a damaged one is an error naming the section and the file.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(info) = self.section(name) else {
            return Ok(None);
        };
        let len = usize::try_from(info.len).map_err(|_| Error::TooLarge {
            what: "container section",
            len: info.len,
            limit: usize::MAX as u64,
        })?;
        let mut buf = vec![0u8; len];
        self.read_at(&mut buf, info.offset, "read a section")?;
        let got = crc32c::crc32c(&buf);
        if got != info.crc {
            return Err(Error::ChecksumMismatch {
                what: "container section",
                location: format!(
                    "section {name:?} of {} (offset {}, {} bytes)",
                    self.path.display(),
                    info.offset,
                    info.len
                ),
                expected: info.crc,
                got,
            });
        }
        Ok(Some(buf))
    }

    /// Checks every section's checksum (of every type); returns the names of the damaged ones
    /// with what is wrong. I/O errors are errors.
    pub fn verify(&self) -> Result<Vec<(String, String)>> {
        let mut bad = Vec::new();
        for e in &self.entries {
            let got = self.crc_of(e.offset, e.len)?;
            if got != e.crc {
                bad.push((
                    e.name.clone(),
                    format!(
                        "checksum mismatch at offset {} ({} bytes): stored {:#010x}, computed \
                         {got:#010x}",
                        e.offset, e.len, e.crc
                    ),
                ));
            }
        }
        Ok(bad)
    }

    /// CRC32C of `len` bytes at `offset`, read a megabyte at a time.
    fn crc_of(&self, offset: u64, len: u64) -> Result<u32> {
        let mut buf = vec![0u8; len.min(1 << 20) as usize];
        let mut crc = 0;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            self.read_at(&mut buf[..n], offset + done, "read a section")?;
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            done += n as u64;
        }
        Ok(crc)
    }

    /// Makes a new state: the current sections with `changes` applied, durable when this
    /// returns. A failure leaves the file at the current state (or, if the failure came after
    /// the new slot was written, possibly the new one: a reopen tells) and the container
    /// refuses further checkpoints.
    pub fn checkpoint<'a>(&mut self, changes: impl IntoIterator<Item = Change<'a>>) -> Result<()> {
        let mut changes: Vec<Change<'a>> = changes.into_iter().collect();
        if self.opts.read_only {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
            });
        }
        if let Some(cause) = &self.poisoned {
            return Err(Error::Poisoned {
                path: self.path.clone(),
                cause: Arc::clone(cause),
            });
        }
        // Checked before anything is written.
        for c in &changes {
            if let Change::Put(d) = c {
                fmt::check_name(d.name).map_err(|e| Error::InvalidArgument(e.to_string()))?;
                if !self.opts.knows(d.kind) {
                    return Err(Error::InvalidArgument(format!(
                        "section {:?} has type {:#x}, which this container was not opened to \
                         know: add it to ContainerOptions::known_types",
                        d.name, d.kind
                    )));
                }
            }
        }
        let Some((cur_index, cur)) = self.current else {
            return Err(Error::Internal("a container without a state".into()));
        };
        if cur.iteration == u64::MAX {
            return Err(Error::Corrupted {
                what: "container",
                location: self.path.display().to_string(),
                detail: "its iteration is at the largest number: no checkpoint can follow".into(),
            });
        }
        let page = u64::from(self.header.page_size);
        let mut used = extents(&cur, &self.entries);
        used.extend(self.previous.iter().copied());
        let space = Space::new(page, self.header.data_start(), used);
        let target = 1 - cur_index;
        let cleared = if matches!(self.slots[target], SlotState::Broken { .. }) {
            // A slot that checks out but points at damage: its extents are not kept, so step
            // 1 may write over them and make it whole-looking again, newer than the current
            // state, before step 3 replaces it. It is cleared (and synced) first.
            self.clear_slot(target)
        } else {
            Ok(())
        };
        let result = cleared.and_then(|()| self.commit(&mut changes, space, cur, cur_index));
        match result {
            Ok((target, next, entries)) => {
                self.previous = extents(&cur, &self.entries);
                self.current = Some((target, next));
                self.entries = entries;
                self.slots[target] = SlotState::Valid {
                    iteration: next.iteration,
                    sections: next.count,
                };
                Ok(())
            }
            // A failure of the caller's stream (not of this file) leaves the current state
            // intact and the file usable.
            Err(e) if !matches!(&e, Error::Io { path, .. } if *path == self.path) => Err(e),
            Err(e) => {
                let e = Arc::new(e);
                self.poisoned = Some(Arc::clone(&e));
                Err(Error::Shared(e))
            }
        }
    }

    /// Steps 1 to 4 of a checkpoint: the sections and the directory into `space`, a sync, the
    /// slot after `cur` (in slot `1 - cur_index`), a sync. Returns the new state.
    fn commit(
        &self,
        changes: &mut [Change<'_>],
        mut space: Space,
        cur: Slot,
        cur_index: usize,
    ) -> Result<(usize, Slot, Vec<DirEntry>)> {
        let old_len = self
            .file
            .len()
            .map_err(|e| Error::io("stat", &self.path, e))?;
        // The state after the changes: unchanged sections keep their place. Sections in memory
        // are placed first (in gaps if they fit), streamed ones then go after everything.
        let mut entries: Vec<DirEntry> = self.entries.clone();
        let mut placed: Vec<(usize, DirEntry)> = Vec::new();
        for pass in [false, true] {
            for (i, c) in changes.iter_mut().enumerate() {
                let Change::Put(d) = c else { continue };
                let (offset, len, crc) = match (&mut d.bytes, pass) {
                    (Bytes::Slice(b), false) => {
                        let offset = space.alloc(b.len() as u64);
                        write_sparse(self.file.as_ref(), &self.path, offset, b, old_len)?;
                        (offset, b.len() as u64, crc32c::crc32c(b))
                    }
                    (Bytes::Stream(produce), true) => {
                        let offset = space.end();
                        let mut w = SectionWriter {
                            file: self.file.as_ref(),
                            path: &self.path,
                            at: offset,
                            len: 0,
                            crc: 0,
                            old_len,
                        };
                        produce(&mut w)?;
                        space.mark(offset, w.len);
                        (offset, w.len, w.crc)
                    }
                    _ => continue,
                };
                placed.push((
                    i,
                    DirEntry {
                        kind: d.kind,
                        version: d.version,
                        flags: (if d.required { FLAG_REQUIRED } else { 0 })
                            | (if d.mmap { fmt::FLAG_MMAP } else { 0 })
                            | (if d.index { fmt::FLAG_INDEX } else { 0 }),
                        crc,
                        offset,
                        len,
                        name: d.name.to_string(),
                    },
                ));
            }
        }
        // Apply the changes in their order.
        placed.sort_by_key(|(i, _)| *i);
        let mut placed = placed.into_iter().peekable();
        for (i, c) in changes.iter().enumerate() {
            match c {
                Change::Remove(name) => entries.retain(|e| e.name != *name),
                Change::Put(_) => {
                    let Some((_, entry)) = placed.next_if(|(j, _)| *j == i) else {
                        return Err(Error::Internal("a section was not placed".into()));
                    };
                    match entries.iter_mut().find(|e| e.name == entry.name) {
                        Some(e) => *e = entry,
                        None => entries.push(entry),
                    }
                }
            }
        }
        if entries.len() > fmt::MAX_SECTIONS as usize {
            return Err(Error::InvalidArgument(format!(
                "a container holds at most {} sections",
                fmt::MAX_SECTIONS
            )));
        }
        let dir = fmt::encode_dir(&entries);
        let dir_offset = space.alloc(dir.len() as u64);
        write_sparse(self.file.as_ref(), &self.path, dir_offset, &dir, old_len)?;
        let file_len = space.end();
        let next = Slot {
            iteration: cur.iteration + 1,
            dir_offset,
            count: entries.len() as u32,
            dir_crc: crc32c::crc32c(&dir),
            file_len,
        };
        let len = self
            .file
            .len()
            .map_err(|e| Error::io("stat", &self.path, e))?;
        if len < file_len {
            // Empty sections, holes and the last page's padding: the file covers the state.
            self.file
                .set_len(file_len)
                .map_err(|e| Error::io("extend", &self.path, e))?;
        }
        self.sync()?;
        let target = 1 - cur_index;
        self.file
            .write_at(&fmt::encode_slot(&next), self.header.slot_offset(target))
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.sync()?;
        Ok((target, next, entries))
    }

    /// Overwrites slot `i` with zeros (never written) and syncs.
    fn clear_slot(&mut self, i: usize) -> Result<()> {
        self.file
            .write_at(&[0u8; SLOT_LEN], self.header.slot_offset(i))
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.sync()?;
        self.slots[i] = SlotState::Empty;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.path, e))
    }
}

/// A megabyte of zeros, to find the runs of zeros a checkpoint leaves as holes.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// The lock file of the container at `path`: `<file>.lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

/// What a state uses: its sections and its directory, as `(offset, end)`.
fn extents(slot: &Slot, entries: &[DirEntry]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = entries
        .iter()
        .map(|e| (e.offset, e.offset + e.len.max(1)))
        .collect();
    out.push((slot.dir_offset, slot.dir_offset + slot.dir_len().max(1)));
    out
}

/// Creates a container at `path`: written under `<file>.tmp`, synced, renamed into place and
/// the directory synced, so that the file exists whole or not at all.
fn create(vfs: &dyn Vfs, path: &Path, page_size: u32) -> Result<()> {
    let header = Header::new(page_size);
    let mut probe = [0u8; HEADER_LEN];
    probe.copy_from_slice(&fmt::encode_header(&header));
    fmt::decode_header(&probe)
        .map_err(|e| Error::InvalidArgument(format!("container page size {page_size}: {e}")))?;
    let page = page_size as usize;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    // Header page, slot 0 (iteration 1: no sections, an empty directory in the first data
    // page), slot 1 never written, and the data page itself.
    let mut bytes = vec![0u8; page * 4];
    bytes[..HEADER_LEN].copy_from_slice(&fmt::encode_header(&header));
    let first = Slot {
        iteration: 1,
        dir_offset: header.data_start(),
        count: 0,
        dir_crc: crc32c::crc32c(&[]),
        file_len: header.data_start() + page as u64,
    };
    bytes[page..page + SLOT_LEN].copy_from_slice(&fmt::encode_slot(&first));
    let f = vfs
        .open(&tmp, OpenMode::Create)
        .map_err(|e| Error::io("create", &tmp, e))?;
    f.write_at(&bytes, 0)
        .map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_data().map_err(|e| Error::io("fsync", &tmp, e))?;
    drop(f);
    vfs.rename(&tmp, path)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    vfs.sync_dir(dir).map_err(|e| Error::io("fsync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_temporary_names_sit_beside_the_file() {
        assert_eq!(
            lock_path(Path::new("a/graph.spw")),
            PathBuf::from("a/graph.spw.lock")
        );
    }
}

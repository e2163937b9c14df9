//! [`Sections`]: typed container sections held under a pool's budget, beside its values.
//!
//! A section in memory is charged to the pool's budget like a value. When a reservation (an
//! insert, a page-in, a section growing) finds the budget full, sections of
//! [`Priority::BelowValues`] spill first; then values are evicted; and when no value is left
//! to evict, the pool asks the other sections to spill: the least recently used sections of tier
//! [`Tier::Auto`] are written to the container if they changed, then dropped from memory and
//! served from the file's memory map. A spilled section comes back into memory when it is
//! updated, or read while the budget is under no pressure.
//!
//! Invariants:
//! - A section's bytes are charged to the budget exactly while it is in memory
//!   (`Ram::charged`), and given back when it leaves.
//! - A [`Tier::Ram`] section is never spilled; a call that would take it past its cap, or the
//!   budget past its limit, fails and leaves the section as it was at its last checkpoint.
//! - A [`Tier::Disk`] section is in memory only during an update, and written before it leaves.
//! - Every section the manager knows is in the container: created by a checkpoint of its own,
//!   so that a spilled section always has bytes to be served from.
//! - Lock order: the pool calls [`Spill::spill`] from inside a reservation, possibly made while
//!   this manager's lock is held: the spill only *tries* that lock.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use crate::sync::{Mutex, MutexGuard};

use super::residency::Spill;
use super::shared::PoolShared;
use crate::container::{
    Bytes, Change, Container, ContainerOptions, Section, SectionData, SectionWriter, View,
};
use crate::error::{Error, Result};
use crate::vfs::{FileView, OsFs, Vfs};

/// Where a section lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tier {
    /// In memory while the budget allows; spilled to the file under pressure.
    #[default]
    Auto,
    /// Always in memory: never spilled. Growth that does not fit is an error.
    Ram,
    /// Always served from the file: in memory only while it is updated.
    Disk,
}

/// Which gives way first under pressure: an `Auto` section or the pool's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// Spilled only once no value can be evicted (an index every lookup needs).
    #[default]
    AboveValues,
    /// Spilled before any value is evicted (a cold column kept for reports).
    BelowValues,
}

/// How a section is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SectionOptions {
    /// Where it lives.
    pub tier: Tier,
    /// Against the pool's values, under pressure (for an `Auto` section).
    pub priority: Priority,
    /// The most memory it may take: past it an `Auto` section is spilled and a `Ram` section's
    /// update fails.
    pub ram_cap: Option<u64>,
}

impl SectionOptions {
    /// Options with `tier`.
    pub fn tier(tier: Tier) -> Self {
        SectionOptions {
            tier,
            ..Default::default()
        }
    }

    /// Sets the priority against the pool's values.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the memory cap.
    pub fn ram_cap(mut self, bytes: u64) -> Self {
        self.ram_cap = Some(bytes);
        self
    }
}

/// A section as [`Sections::stats`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionStats {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: u32,
    /// Its options.
    pub options: SectionOptions,
    /// True while it is in memory.
    pub in_ram: bool,
    /// Bytes charged to the budget (0 when spilled).
    pub ram_bytes: u64,
    /// Bytes in the file at the last checkpoint.
    pub file_bytes: u64,
    /// Changed since it was last written.
    pub dirty: bool,
}

/// A section's structure, without its type.
trait Erased: Send + Sync {
    fn encode(&self, w: &mut SectionWriter<'_>) -> Result<()>;
    fn memory_bytes(&self) -> u64;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Section> Erased for T {
    fn encode(&self, w: &mut SectionWriter<'_>) -> Result<()> {
        Section::encode(self, w)
    }
    fn memory_bytes(&self) -> u64 {
        Section::memory_bytes(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

struct Ram {
    value: Box<dyn Erased>,
    /// Bytes charged to the budget for it.
    charged: u64,
}

struct Slot {
    kind: u32,
    version: u32,
    opts: SectionOptions,
    ram: Option<Ram>,
    dirty: bool,
    /// The manager's clock at the last use: the least recently used spills first.
    last_use: u64,
    /// The checksum of its bytes in the current map was checked.
    verified: bool,
}

struct State {
    container: Container,
    /// The file, mapped after the last checkpoint.
    map: Option<FileView>,
    slots: BTreeMap<String, Slot>,
    clock: u64,
}

struct Inner {
    pool: Arc<PoolShared>,
    vfs: Arc<dyn Vfs>,
    path: PathBuf,
    state: Mutex<State>,
}

/// Typed sections of one container file, held under a pool's budget. See the module docs.
pub struct Sections {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sections")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Sections {
    /// Opens (or creates) the container at `path` for writing, its sections charged to `pool`'s
    /// budget. Sections already in the file are known by [`attach`](Self::attach).
    pub(crate) fn open(pool: &Arc<PoolShared>, path: &Path) -> Result<Sections> {
        Sections::open_on(pool, Arc::new(OsFs), path)
    }

    pub(crate) fn open_on(
        pool: &Arc<PoolShared>,
        vfs: Arc<dyn Vfs>,
        path: &Path,
    ) -> Result<Sections> {
        // Section types are the caller's (`create` and `attach` name them): every type is
        // accepted here.
        let container = Container::open_on(
            Arc::clone(&vfs),
            path,
            ContainerOptions::default().any_type(true),
        )?;
        let inner = Arc::new(Inner {
            pool: Arc::clone(pool),
            path: path.to_path_buf(),
            state: Mutex::new(State {
                container,
                map: None,
                slots: BTreeMap::new(),
                clock: 0,
            }),
            vfs,
        });
        inner.remap(&mut inner.state.lock())?;
        let weak: Weak<dyn Spill> = Arc::downgrade(&(Arc::clone(&inner) as Arc<dyn Spill>));
        pool.residency.add_spiller(weak);
        Ok(Sections { inner })
    }

    /// The container file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Adds a new section `name` holding `value`, written to the file at once. An `Auto` or
    /// `Ram` section stays in memory, charged to the budget (an `Auto` one only if it fits).
    pub fn create<T: Section>(&self, name: &str, value: T, opts: SectionOptions) -> Result<()> {
        let mut st = self.inner.state.lock();
        if st.slots.contains_key(name) || st.container.section(name).is_some() {
            return Err(Error::InvalidArgument(format!(
                "{} already has a section {name:?}: attach it instead",
                self.inner.path.display()
            )));
        }
        let size = value.memory_bytes();
        self.inner.check_cap(name, size, opts)?;
        let over_cap = opts.ram_cap.is_some_and(|cap| size > cap);
        let charged = if opts.tier == Tier::Disk || over_cap {
            None
        } else {
            self.inner.charge(&mut st, Some(name), size)?
        };
        if opts.tier == Tier::Ram && charged.is_none() {
            return Err(self.inner.no_room(name, size));
        }
        st.clock += 1;
        let clock = st.clock;
        st.slots.insert(
            name.to_string(),
            Slot {
                kind: T::KIND,
                version: T::VERSION,
                opts,
                ram: Some(Ram {
                    value: Box::new(value),
                    charged: charged.unwrap_or(0),
                }),
                dirty: true,
                last_use: clock,
                verified: false,
            },
        );
        if let Err(e) = self.inner.write(&mut st, &[name.to_string()]) {
            // Not created: nothing stays charged or listed.
            self.inner.drop_ram(&mut st, name);
            st.slots.remove(name);
            return Err(e);
        }
        if charged.is_none() {
            self.inner.drop_ram(&mut st, name);
        }
        Ok(())
    }

    /// Knows the section `name` already in the file (from an earlier run) as a `T`, spilled: it
    /// is read from the file until updated (or read when the budget has room).
    pub fn attach<T: Section>(&self, name: &str, opts: SectionOptions) -> Result<()> {
        let mut st = self.inner.state.lock();
        if st.slots.contains_key(name) {
            return Err(Error::InvalidArgument(format!(
                "section {name:?} of {} is known here already",
                self.inner.path.display()
            )));
        }
        let info = st.container.section(name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} has no section {name:?}",
                self.inner.path.display()
            ))
        })?;
        if info.kind != T::KIND {
            return Err(self.inner.wrong_kind::<T>(name, info.kind));
        }
        if info.version > T::VERSION {
            return Err(Error::UnsupportedVersion {
                path: self.inner.path.clone(),
                found: info.version,
                supported: T::VERSION,
            });
        }
        st.slots.insert(
            name.to_string(),
            Slot {
                kind: info.kind,
                version: info.version,
                opts,
                ram: None,
                dirty: false,
                last_use: 0,
                verified: false,
            },
        );
        if opts.tier == Tier::Ram
            && let Err(e) = self.inner.bring_in::<T>(&mut st, name).and_then(|()| {
                let size = self.inner.ram_size(&st, name);
                self.inner.check_cap(name, size, opts)
            })
        {
            // Not attached: nothing stays charged or listed.
            self.inner.drop_ram(&mut st, name);
            st.slots.remove(name);
            return Err(e);
        }
        Ok(())
    }

    /// Runs `f` on the section `name`: in memory, or read in place from the file's map.
    /// A spilled `Auto` section is brought back into memory first if the budget has room
    /// without evicting anything. `f` must not call back into these sections.
    pub fn read<T: Section, R>(&self, name: &str, f: impl FnOnce(View<'_, T>) -> R) -> Result<R> {
        let mut st = self.inner.state.lock();
        let slot = self.inner.slot::<T>(&mut st, name)?;
        if slot.ram.is_none() && slot.opts.tier == Tier::Auto {
            self.inner.reload_if_room::<T>(&mut st, name)?;
        }
        st.clock += 1;
        let clock = st.clock;
        let st = &mut *st;
        let slot = st
            .slots
            .get_mut(name)
            .ok_or_else(|| Error::Internal("no slot".into()))?;
        slot.last_use = clock;
        if let Some(ram) = &slot.ram {
            let v = ram
                .value
                .as_any()
                .downcast_ref::<T>()
                .ok_or_else(|| Error::Internal("a section of another type".into()))?;
            return Ok(f(View::Ram(v)));
        }
        let first = !slot.verified;
        let version = slot.version;
        let bytes = Inner::mapped(&self.inner.path, &st.container, &st.map, slot, name)?;
        if first && let Err(e) = T::check_mapped(bytes, version) {
            slot.verified = false;
            return Err(e);
        }
        Ok(f(View::Mapped(bytes)))
    }

    /// Changes the section `name` with `f`, in memory (brought in if spilled), and charges its
    /// new size. Past its cap, or when the budget has no room even after spilling others, an
    /// `Auto` section is written and spilled, a `Disk` one is written and dropped as always,
    /// and a `Ram` one returns to its last checkpoint and the call fails.
    pub fn update<T: Section, R>(&self, name: &str, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let inner = &self.inner;
        let mut st = inner.state.lock();
        let opts = inner.slot::<T>(&mut st, name)?.opts;
        inner.bring_in::<T>(&mut st, name)?;
        let out = {
            let slot = st
                .slots
                .get_mut(name)
                .ok_or_else(|| Error::Internal("no slot".into()))?;
            let ram = slot
                .ram
                .as_mut()
                .ok_or_else(|| Error::Internal("not in memory".into()))?;
            let v = ram
                .value
                .as_any_mut()
                .downcast_mut::<T>()
                .ok_or_else(|| Error::Internal("a section of another type".into()))?;
            let out = f(v);
            slot.dirty = true;
            out
        };
        let size = inner.ram_size(&st, name);
        let over_cap = opts.ram_cap.is_some_and(|cap| size > cap);
        let fits = !over_cap && inner.recharge(&mut st, name, size)?;
        match (opts.tier, fits) {
            (Tier::Ram, false) => {
                if let Err(e) = inner.revert::<T>(&mut st, name) {
                    // Back at its last checkpoint on disk, but no room to hold it again now.
                    inner.pool.errors.record(e);
                }
                Err(if over_cap {
                    inner.over_cap(name, size, opts)
                } else {
                    inner.no_room(name, size)
                })
            }
            (Tier::Auto, true) => Ok(out),
            (Tier::Ram, true) => Ok(out),
            (Tier::Auto | Tier::Disk, _) => {
                inner.spill_slot(&mut st, name)?;
                Ok(out)
            }
        }
    }

    /// Writes every changed section to the file (one atomic checkpoint).
    pub fn checkpoint(&self) -> Result<()> {
        let mut st = self.inner.state.lock();
        let dirty: Vec<String> = st
            .slots
            .iter()
            .filter(|(_, s)| s.dirty && s.ram.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        self.inner.write(&mut st, &dirty)
    }

    /// Spills the section `name` now (written first if changed); an error for a `Ram` section.
    pub fn spill(&self, name: &str) -> Result<u64> {
        let mut st = self.inner.state.lock();
        let tier = st
            .slots
            .get(name)
            .map(|s| s.opts.tier)
            .ok_or_else(|| Error::InvalidArgument(format!("no section {name:?}")))?;
        if tier == Tier::Ram {
            return Err(Error::InvalidArgument(format!(
                "section {name:?} is held in memory (tier Ram): it is never spilled"
            )));
        }
        self.inner.spill_slot(&mut st, name)
    }

    /// Every section and where it is.
    pub fn stats(&self) -> Vec<SectionStats> {
        let st = self.inner.state.lock();
        st.slots
            .iter()
            .map(|(name, s)| SectionStats {
                name: name.clone(),
                kind: s.kind,
                options: s.opts,
                in_ram: s.ram.is_some(),
                ram_bytes: s.ram.as_ref().map_or(0, |r| r.charged),
                file_bytes: st.container.section(name).map_or(0, |i| i.len),
                dirty: s.dirty,
            })
            .collect()
    }
}

impl Inner {
    fn slot<'a, T: Section>(&self, st: &'a mut State, name: &str) -> Result<&'a mut Slot> {
        let path = &self.path;
        let slot = st.slots.get_mut(name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} has no section {name:?} known here: create or attach it",
                path.display()
            ))
        })?;
        if slot.kind != T::KIND {
            let kind = slot.kind;
            return Err(self.wrong_kind::<T>(name, kind));
        }
        Ok(slot)
    }

    fn wrong_kind<T: Section>(&self, name: &str, kind: u32) -> Error {
        Error::InvalidArgument(format!(
            "section {name:?} of {} has type {kind:#x}, not {:#x} ({})",
            self.path.display(),
            T::KIND,
            std::any::type_name::<T>()
        ))
    }

    fn no_room(&self, name: &str, size: u64) -> Error {
        Error::SectionTooLarge {
            section: name.to_string(),
            file: self.path.clone(),
            len: size,
            limit: self.pool.residency.hard_limit(),
            why: "the pool's budget (every value evicted, every other section spilled)",
        }
    }

    fn over_cap(&self, name: &str, size: u64, opts: SectionOptions) -> Error {
        Error::SectionTooLarge {
            section: name.to_string(),
            file: self.path.clone(),
            len: size,
            limit: opts.ram_cap.unwrap_or(0),
            why: "its RAM cap",
        }
    }

    fn check_cap(&self, name: &str, size: u64, opts: SectionOptions) -> Result<()> {
        if opts.tier == Tier::Ram && opts.ram_cap.is_some_and(|cap| size > cap) {
            return Err(self.over_cap(name, size, opts));
        }
        Ok(())
    }

    fn ram_size(&self, st: &State, name: &str) -> u64 {
        st.slots
            .get(name)
            .and_then(|s| s.ram.as_ref())
            .map_or(0, |r| r.value.memory_bytes())
    }

    /// Reserves `bytes` from the pool without passing its limit: values are evicted by the
    /// pool, and if that is not enough, this manager's other `Auto` sections (not `keep`)
    /// spill, least recently used first. `None` if there is no room.
    fn charge(&self, st: &mut State, keep: Option<&str>, bytes: u64) -> Result<Option<u64>> {
        // This manager's sections below values give way before any value: the pool cannot ask
        // them itself while this call holds the manager's lock.
        let room = self
            .pool
            .residency
            .hard_limit()
            .saturating_sub(self.pool.residency.budget().resident());
        if room < bytes {
            self.spill_lru(st, keep, bytes - room, true)?;
        }
        loop {
            match self
                .pool
                .residency
                .reserve_within(bytes, &self.pool.page_out())
            {
                Ok(Some(r)) => return Ok(Some(r.commit())),
                Ok(None) => {}
                // More than the whole budget: no spill can make room.
                Err(e) if e.kind() == crate::ErrorKind::TooLarge => return Ok(None),
                Err(e) => return Err(e),
            }
            if self.spill_lru(st, keep, bytes, false)? == 0 {
                return Ok(None);
            }
        }
    }

    /// Charges `name`'s new in-memory size; false (nothing changed) if it does not fit.
    fn recharge(&self, st: &mut State, name: &str, size: u64) -> Result<bool> {
        let charged = st
            .slots
            .get(name)
            .and_then(|s| s.ram.as_ref())
            .map_or(0, |r| r.charged);
        if size <= charged {
            self.pool.residency.release(charged - size);
        } else {
            match self.charge(st, Some(name), size - charged)? {
                Some(extra) => {
                    if let Some(r) = st.slots.get_mut(name).and_then(|s| s.ram.as_mut()) {
                        r.charged += extra;
                    }
                    return Ok(true);
                }
                None => return Ok(false),
            }
        }
        if let Some(r) = st.slots.get_mut(name).and_then(|s| s.ram.as_mut()) {
            r.charged = size;
        }
        Ok(true)
    }

    /// Spills the least recently used `Auto` sections in memory (not `keep`; only those ranked
    /// below values if `below_values`) until `bytes` are given back or none is left; returns
    /// the bytes given back.
    fn spill_lru(
        &self,
        st: &mut State,
        keep: Option<&str>,
        bytes: u64,
        below_values: bool,
    ) -> Result<u64> {
        let mut freed = 0;
        while freed < bytes {
            let victim = st
                .slots
                .iter()
                .filter(|(n, s)| {
                    s.ram.is_some()
                        && s.opts.tier != Tier::Ram
                        && Some(n.as_str()) != keep
                        && (!below_values || s.opts.priority == Priority::BelowValues)
                })
                .min_by_key(|(_, s)| s.last_use)
                .map(|(n, _)| n.clone());
            let Some(victim) = victim else { break };
            match self.spill_slot(st, &victim) {
                Ok(n) => freed += n,
                // What was given back counts; the failure is kept for the pool's errors.
                Err(e) if freed > 0 => {
                    self.pool.errors.record(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(freed)
    }

    /// Writes `name` if it changed, then drops it from memory; returns the bytes given back.
    fn spill_slot(&self, st: &mut State, name: &str) -> Result<u64> {
        if st
            .slots
            .get(name)
            .is_some_and(|s| s.dirty && s.ram.is_some())
        {
            self.write(st, &[name.to_string()])?;
        }
        Ok(self.drop_ram(st, name))
    }

    /// Drops `name`'s memory copy (which the file holds) and gives its bytes back.
    fn drop_ram(&self, st: &mut State, name: &str) -> u64 {
        let Some(ram) = st.slots.get_mut(name).and_then(|s| s.ram.take()) else {
            return 0;
        };
        self.pool.residency.release(ram.charged);
        let freed = ram.charged;
        drop(ram);
        freed
    }

    /// One checkpoint writing the sections `names` (in memory) from their structures.
    fn write(&self, st: &mut State, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let State {
            container, slots, ..
        } = st;
        let mut changes = Vec::new();
        for name in names {
            let Some(slot) = slots.get(name) else {
                continue;
            };
            let Some(ram) = &slot.ram else { continue };
            let value = &ram.value;
            changes.push(Change::Put(SectionData {
                name,
                kind: slot.kind,
                version: slot.version,
                required: true,
                mmap: true,
                index: false,
                bytes: Bytes::Stream(Box::new(move |w| value.encode(w))),
            }));
        }
        container.checkpoint(changes)?;
        for name in names {
            if let Some(s) = st.slots.get_mut(name) {
                s.dirty = false;
            }
        }
        self.remap(st)
    }

    /// Maps the file again (after a checkpoint grew it); checks are to be redone.
    fn remap(&self, st: &mut State) -> Result<()> {
        st.map = Some(
            self.vfs
                .map(&self.path)
                .map_err(|e| Error::io("map", &self.path, e))?,
        );
        for s in st.slots.values_mut() {
            s.verified = false;
        }
        Ok(())
    }

    /// The bytes of section `name` in the map, checked against its checksum once per map.
    fn mapped<'a>(
        path: &Path,
        container: &Container,
        map: &'a Option<FileView>,
        slot: &mut Slot,
        name: &str,
    ) -> Result<&'a [u8]> {
        let info = container
            .section(name)
            .ok_or_else(|| Error::Internal(format!("section {name:?} is not in the file")))?;
        let bytes: &[u8] = map
            .as_ref()
            .map(|m| m.as_ref().as_ref())
            .unwrap_or_default();
        let b = usize::try_from(info.offset)
            .ok()
            .and_then(|o| bytes.get(o..o.checked_add(usize::try_from(info.len).ok()?)?))
            .ok_or_else(|| Error::Corrupted {
                what: "container section",
                location: format!("section {name:?} of {}", path.display()),
                detail: "past the end of the mapped file".into(),
            })?;
        if !slot.verified {
            let got = crc32c::crc32c(b);
            if got != info.crc {
                return Err(Error::ChecksumMismatch {
                    what: "container section",
                    location: format!("section {name:?} of {}", path.display()),
                    expected: info.crc,
                    got,
                });
            }
            slot.verified = true;
        }
        Ok(b)
    }

    /// Decodes section `name` from the file.
    fn load<T: Section>(&self, st: &mut State, name: &str) -> Result<T> {
        let State {
            container,
            map,
            slots,
            ..
        } = st;
        let slot = slots
            .get_mut(name)
            .ok_or_else(|| Error::Internal("no slot".into()))?;
        let version = slot.version;
        let bytes = Inner::mapped(&self.path, container, map, slot, name)?;
        T::decode(bytes, version)
    }

    /// Brings `name` into memory for an update (charged, spilling others if needed).
    fn bring_in<T: Section>(&self, st: &mut State, name: &str) -> Result<()> {
        if st.slots.get(name).is_some_and(|s| s.ram.is_some()) {
            return Ok(());
        }
        let value = self.load::<T>(st, name)?;
        let size = value.memory_bytes();
        let charged = self
            .charge(st, Some(name), size)?
            .ok_or_else(|| self.no_room(name, size))?;
        if let Some(slot) = st.slots.get_mut(name) {
            slot.ram = Some(Ram {
                value: Box::new(value),
                charged,
            });
        }
        Ok(())
    }

    /// A spilled `Auto` section comes back into memory if the budget takes it without any
    /// eviction and stays under pressure `Normal`.
    fn reload_if_room<T: Section>(&self, st: &mut State, name: &str) -> Result<()> {
        let len = st.container.section(name).map_or(0, |i| i.len);
        let budget = self.pool.residency.budget();
        if budget.resident().saturating_add(len) > budget.soft_limit() {
            return Ok(());
        }
        let value = self.load::<T>(st, name)?;
        let size = value.memory_bytes();
        let cap = st.slots.get(name).and_then(|s| s.opts.ram_cap);
        if cap.is_some_and(|cap| size > cap) {
            return Ok(());
        }
        if let Some(r) = self.pool.residency.try_reserve_now(size)
            && let Some(slot) = st.slots.get_mut(name)
        {
            slot.ram = Some(Ram {
                value: Box::new(value),
                charged: r.commit(),
            });
        }
        Ok(())
    }

    /// Returns `name` to its last checkpoint (dropping the changes since).
    fn revert<T: Section>(&self, st: &mut State, name: &str) -> Result<()> {
        self.drop_ram(st, name);
        if let Some(s) = st.slots.get_mut(name) {
            s.dirty = false;
        }
        self.bring_in::<T>(st, name)
    }
}

impl Spill for Inner {
    fn spill(&self, bytes: u64, below_values: bool) -> u64 {
        // Called from inside a reservation, maybe one this manager makes under its lock.
        let Some(mut st) = self.state.try_lock() else {
            return 0;
        };
        match self.spill_lru(&mut st, None, bytes, below_values) {
            Ok(freed) => freed,
            Err(e) => {
                self.pool.errors.record(e);
                0
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let st: MutexGuard<'_, State> = self.state.lock();
        let charged: u64 = st
            .slots
            .values()
            .filter_map(|s| s.ram.as_ref())
            .map(|r| r.charged)
            .sum();
        drop(st);
        self.pool.residency.release(charged);
    }
}

//! The registry: a pool's live entries by key, so that two handles to one key share one value
//! in memory, and the keys that live handles keep from garbage collection.
//!
//! Invariants:
//! - The registry counts *every* live entry stored under a key, and hands out one of them
//!   (through [`find_or_add`](Registry::find_or_add), for `Pool::load` and page-in): almost
//!   always the only one; if equal values were inserted apart, any live copy (they are equal).
//!   A key stays live for collection until the last of its entries is dropped. A record goes
//!   when its entry does: every key in the registry is live.
//! - An entry is counted at most once (its `registered` flag), and forgotten under its key only
//!   if it was counted.
//! - No count of an entry is dropped while a shard lock is held (dropping the last one takes
//!   that lock, through [`forget`](Registry::forget)).
//! - No lock of the registry is held while another of its locks is taken: the list of the
//!   tables of the types past the first few is let go before any shard is locked.
//! - A type's table exists before an entry of it can be registered: an inserted entry makes
//!   sure of it ([`ensure`](Registry::ensure)), and `find_or_add` makes it for the entries it
//!   makes, so that registering an erased entry never has to make a table it cannot name.
//! - A record points to an allocated cell: it is under its entry's key (set before the entry
//!   is registered, and never changed), which is the key the entry's `drop` forgets it under,
//!   before the cell is freed. A record is read only under its shard's lock, and its cell's tag
//!   is written, before the record is added, under the same lock.
//!
//! Layout: one table per entry type (an entry is an `Entry<T>` for one value type `T`, and
//! almost every key is used with one type), so a record needs no type to check on a lookup. A
//! table is sharded by the key's first bits. A record is only the 32-bit number of the entry's
//! cell (see `memory::cells`), 4 bytes: the key's next 32 bits (its tag) are kept in the cell
//! beside the count (see `counted`), and a shard's table is hashed by them, read from the cell
//! under the shard's lock (a growth reads every record's cell). A lookup tells two keys with one tag
//! apart by the key of the live entry; a record whose entry is being dropped is passed over, as
//! gone, since its entry cannot be read. An entry is known by its address (and its cell's
//! number), which stays its own while the registry holds a record of it, so that a record needs
//! no id beside the number.
//! The tables of a registry are found by the entry type's `TypeId` in a short list that is
//! read without a lock. A large table is a mapping of its own (`memory::mapped`), so that the
//! copies a growth or a shrink lets go leave the process.
//!
//! The registry also numbers the pool itself, which tells two pools' batches apart.

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use crate::sync::{AtomicU64, Mutex};

use super::counted::{Cell, Counted, Uncounted};
use super::erased::{ErasedEntry, ErasedRef};
use crate::key::ContentKey;
use crate::memory::{Mapped, shrunk_capacity, table_bytes};

use hashbrown::HashTable;

const SHARDS: usize = 16;
/// Entry types whose tables are found without a lock; a registry used with more types finds
/// the others under a lock.
const FAST_TYPES: usize = 32;

/// A record: an entry, not counted, by its cell's 32-bit number (see `memory::cells`). It
/// names an allocated cell for as long as it is in its shard, because an entry takes its
/// records out in its `drop`, under the shard's lock, before its cell is freed (see `counted`).
struct Rec<E> {
    cell: u32,
    of: PhantomData<fn() -> E>,
}

impl<E> Rec<E> {
    fn new(entry: &Uncounted<E>) -> Rec<E> {
        Rec {
            cell: entry.number(),
            of: PhantomData,
        }
    }

    /// The entry, not counted. Called with the record's shard locked.
    fn entry(&self) -> Uncounted<E> {
        // SAFETY: the record is in its shard, whose lock the caller holds, so its cell is
        // allocated (see `Rec`), and it is a `Cell<E>` (tables are by entry type).
        #[expect(unsafe_code, reason = "an entry through its record")]
        unsafe {
            Uncounted::from_number(self.cell)
        }
    }

    /// A new count of the entry, unless it is being dropped. Called with the record's shard
    /// locked.
    fn upgrade(&self) -> Option<Counted<E>> {
        // SAFETY: the record is in its shard, whose lock the caller holds (see `Rec`).
        #[expect(unsafe_code, reason = "counting an entry through its record")]
        unsafe {
            self.entry().upgrade()
        }
    }

    /// The entry's address. Called with the record's shard locked.
    fn addr(&self) -> *const () {
        // SAFETY: as for `upgrade`.
        #[expect(unsafe_code, reason = "the address of an entry through its record")]
        unsafe {
            self.entry().addr()
        }
    }

    /// The tag kept in the entry's cell when the record was added. Called with the record's
    /// shard locked.
    fn tag(&self) -> u32 {
        // SAFETY: as for `upgrade`.
        #[expect(unsafe_code, reason = "the tag of an entry's cell through its record")]
        unsafe {
            self.entry().tag()
        }
    }

    /// The record's hash: its entry's key's, from its tag. Called with the record's shard
    /// locked.
    fn hash(&self) -> u64 {
        hash_of(self.tag())
    }
}

/// The 32 bits of a key kept in its entries' cells (see `counted`), apart from the bits that
/// choose the shard.
fn tag_of(key: &ContentKey) -> u32 {
    (key.prefix_u64() >> 32) as u32
}

/// A record's hash in its shard's table, from its tag: spread over the 64 bits, so that the
/// table's control bytes (its top bits) tell records apart as well as its buckets (its low
/// bits) do.
fn hash_of(tag: u32) -> u64 {
    u64::from(tag).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A registry shard of one entry type: every live entry stored under each of its keys,
/// usually one (more if equal values were inserted separately). A record is only the number of
/// the entry's cell, 4 bytes, hashed by the tag the cell keeps: the key itself is read from a live entry
/// when a lookup must tell keys apart, which a record whose entry is being dropped cannot be
/// asked (it is skipped, as gone).
struct Shard<E> {
    records: HashTable<Rec<E>, Mapped>,
}

impl<E> Default for Shard<E> {
    fn default() -> Self {
        Shard {
            records: HashTable::new_in(Mapped),
        }
    }
}

/// The records of one entry type.
struct Table<E> {
    shards: Vec<Mutex<Shard<E>>>,
}

/// A table without its entry type: what the registry asks of every table.
trait AnyTable: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    /// Appends the table's live keys to `out`.
    fn live_keys(&self, out: &mut Vec<ContentKey>);
    /// True if the table has a record for `key`.
    fn contains(&self, key: &ContentKey) -> bool;
    /// Counts `entry`, an entry of the table's type, under `key`, after those already counted.
    fn add(&self, key: ContentKey, entry: &ErasedRef);
    fn memory_bytes(&self) -> usize;
}

/// Identifies a pool among the pools of a process.
pub(crate) type PoolId = u64;

// An id allocator shared by every pool of the process, not part of any protocol: a plain atomic
// (also under shuttle, whose atomics belong to one execution).
static NEXT_POOL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

type TableRef = (TypeId, Arc<dyn AnyTable>);

pub(crate) struct Registry {
    pool: PoolId,
    /// The tables of the first entry types used, in the order they were made: a lookup reads
    /// them up to the first empty slot.
    fast: [OnceLock<TableRef>; FAST_TYPES],
    /// The tables of any further types.
    slow: Mutex<Vec<TableRef>>,
    /// Stored objects whose last handle was dropped since the last collection.
    garbage: AtomicU64,
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            pool: NEXT_POOL.fetch_add(1, Ordering::Relaxed),
            fast: Default::default(),
            slow: Mutex::new(Vec::new()),
            garbage: AtomicU64::new(0),
        }
    }

    /// The pool whose entries these are.
    pub fn pool(&self) -> PoolId {
        self.pool
    }

    /// Every table made so far, with its entry type.
    fn tables(&self) -> Vec<TableRef> {
        let mut out: Vec<TableRef> = self
            .fast
            .iter()
            .map_while(|slot| slot.get())
            .map(|(t, table)| (*t, Arc::clone(table)))
            .collect();
        out.extend(
            self.slow
                .lock()
                .iter()
                .map(|(t, table)| (*t, Arc::clone(table))),
        );
        out
    }

    /// Runs `f` on the table of the entry type whose `TypeId` is `id`, if there is one.
    fn with_table_of<R>(&self, id: TypeId, f: impl FnOnce(&dyn AnyTable) -> R) -> Option<R> {
        for (t, table) in self.fast.iter().map_while(|slot| slot.get()) {
            if *t == id {
                return Some(f(&**table));
            }
        }
        let table = {
            let slow = self.slow.lock();
            let (_, table) = slow.iter().find(|(t, _)| *t == id)?;
            Arc::clone(table)
        };
        Some(f(&*table))
    }

    /// Runs `f` on the table of entry type `E`, made if there is none.
    fn with_table<E: ErasedEntry + 'static, R>(&self, f: impl FnOnce(&Table<E>) -> R) -> R {
        let id = TypeId::of::<E>();
        for slot in &self.fast {
            let (t, table) = match slot.get() {
                Some(found) => found,
                None => slot.get_or_init(|| (id, Arc::new(Table::<E>::new()))),
            };
            if *t == id {
                return f(typed(&**table));
            }
        }
        let table = {
            let mut slow = self.slow.lock();
            match slow.iter().find(|(t, _)| *t == id) {
                Some((_, table)) => Arc::clone(table),
                None => {
                    let table: Arc<dyn AnyTable> = Arc::new(Table::<E>::new());
                    slow.push((id, Arc::clone(&table)));
                    table
                }
            }
        };
        f(typed(&*table))
    }

    /// The live entry of type `E` for `key`, or, if there is none, a new one from `make`
    /// (called under the shard lock), counted like any other; true if it is new.
    pub fn find_or_add<E: ErasedEntry + 'static>(
        &self,
        key: ContentKey,
        make: impl FnOnce() -> E,
    ) -> (Counted<E>, bool) {
        self.with_table(|table: &Table<E>| {
            // Entries of other keys counted while looking, dropped once the lock is released.
            let mut others = Vec::new();
            let mut shard = table.shards[shard_of(&key)].lock();
            if let Some(e) = shard.find(&key, &mut others) {
                drop(shard);
                return (e, false);
            }
            // No live entry: a new one, counted like any other.
            let entry = Counted::new(make());
            // Its record must be under the key its `drop` forgets it by.
            assert_eq!(entry.key(), Some(key), "an entry is made for its own key");
            entry.mark_registered();
            shard.add(&key, &entry);
            drop(shard);
            drop(others);
            (entry, true)
        })
    }

    /// Makes the table of entry type `E` if there is none: every entry type's table exists
    /// before an entry of it can be [`register`](Self::register)ed.
    pub fn ensure<E: ErasedEntry + 'static>(&self) {
        self.with_table::<E, ()>(|_| ());
    }

    /// Counts `entry` as a live entry of its key, once; it becomes the entry handed out for the
    /// key unless a live one of its type is there already. Its key is set, and its type's
    /// table exists (see [`ensure`](Self::ensure)).
    ///
    /// The record goes under the key the entry has, which is the one its `drop` forgets: a
    /// record under another key would outlive its entry.
    pub fn register(&self, entry: &ErasedRef) {
        let key = entry
            .key()
            .expect("an entry is registered once its key is set");
        if !entry.mark_registered() {
            return;
        }
        let id = Any::type_id(entry.as_any());
        let added = self.with_table_of(id, move |table| table.add(key, entry));
        assert!(
            added.is_some(),
            "an entry is registered in the table of its type, made with the entry"
        );
    }

    /// The entry of type `E` at `entry` (its address), counted under `key`, is gone. If it was
    /// the key's last, the key counts towards [`garbage`](Self::garbage) unless `garbage` is
    /// false (the entry went with a paged-out parent, whose stored record still refers to it)
    /// or an entry of another type is counted under the key.
    pub fn forget<E: ErasedEntry + 'static>(
        &self,
        entry: *const (),
        key: ContentKey,
        garbage: bool,
    ) {
        let last = self.with_table(|table: &Table<E>| table.forget(entry, key));
        if last && garbage {
            // Checked after the shard lock is released: a key used with two types that lose
            // their last entries at once may count twice (each removed its record before
            // looking at the other's table), which the count, a hint for when to collect,
            // allows. Read in place: with one entry type this is one slot, no lock.
            let id = TypeId::of::<E>();
            let elsewhere_of = |(t, table): &TableRef| *t != id && table.contains(&key);
            let mut elsewhere = false;
            let mut fast_full = true;
            for slot in &self.fast {
                match slot.get() {
                    Some(found) => elsewhere |= elsewhere_of(found),
                    None => {
                        fast_full = false;
                        break;
                    }
                }
            }
            if fast_full && !elsewhere {
                let slow: Vec<TableRef> = self.slow.lock().clone();
                elsewhere = slow.iter().any(elsewhere_of);
            }
            if !elsewhere {
                self.garbage.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Bytes of memory the registry's tables take (an estimate from their capacities).
    pub fn memory_bytes(&self) -> usize {
        self.tables().iter().map(|(_, t)| t.memory_bytes()).sum()
    }

    /// Keys of the objects that have live handles, each once, in order.
    pub fn live_keys(&self) -> Vec<ContentKey> {
        let mut out = Vec::new();
        for (_, table) in self.tables() {
            table.live_keys(&mut out);
        }
        // A key comes once per live entry (several if equal values were inserted apart, or
        // used with several types).
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Stored objects whose last handle was dropped since [`reset_garbage`](Self::reset_garbage),
    /// other than those whose last handle went with a paged-out parent (reachable through it).
    pub fn garbage(&self) -> u64 {
        self.garbage.load(Ordering::Relaxed)
    }

    /// A collection starts: it reclaims what the count stood for.
    pub fn reset_garbage(&self) {
        self.garbage.store(0, Ordering::Relaxed);
    }
}

impl<E: ErasedEntry> Table<E> {
    fn new() -> Table<E> {
        Table {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    /// Removes the record of the entry at `entry` under `key`; true if no live entry of the
    /// key is left.
    fn forget(&self, entry: *const (), key: ContentKey) -> bool {
        let mut others = Vec::new();
        let mut shard = self.shards[shard_of(&key)].lock();
        let hash = hash_of(tag_of(&key));
        let Ok(found) = shard.records.find_entry(hash, |rec| rec.addr() == entry) else {
            return false;
        };
        found.remove();
        let last = shard
            .find(&key, &mut others)
            .map(|e| others.push(e))
            .is_none();
        shard.shrink();
        drop(shard);
        drop(others);
        last
    }
}

impl<E: ErasedEntry + 'static> AnyTable for Table<E> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn live_keys(&self, out: &mut Vec<ContentKey>) {
        for shard in &self.shards {
            // Records go when their last live entry does: every key here is live. The entries
            // are counted under the lock and dropped after it.
            let live: Vec<Counted<E>> = shard
                .lock()
                .records
                .iter()
                .filter_map(Rec::upgrade)
                .collect();
            out.extend(live.iter().filter_map(|e| e.key()));
        }
    }

    fn contains(&self, key: &ContentKey) -> bool {
        let mut others = Vec::new();
        let found = self.shards[shard_of(key)].lock().find(key, &mut others);
        drop(others);
        found.is_some()
    }

    fn add(&self, key: ContentKey, entry: &ErasedRef) {
        assert!(
            entry.as_any().is::<E>(),
            "an entry is added to the table of its own type"
        );
        // SAFETY: the entry is an `E` (checked above), so its cell is a `Cell<E>`.
        #[expect(unsafe_code, reason = "the record of an entry of this table's type")]
        let typed = unsafe { Uncounted::of(entry).cast(|c| c.cast::<Cell<E>>()) };
        self.shards[shard_of(&key)]
            .lock()
            .insert(&key, entry, Rec::new(&typed));
    }

    fn memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| table_bytes(s.lock().records.capacity(), std::mem::size_of::<Rec<E>>()))
            .sum()
    }
}

impl<E: ErasedEntry> Shard<E> {
    /// A live entry of `key`, counted; entries of other keys with the same tag that were
    /// counted to read their keys go to `others`, for the caller to drop once the shard's lock
    /// is released.
    fn find(&self, key: &ContentKey, others: &mut Vec<Counted<E>>) -> Option<Counted<E>> {
        let tag = tag_of(key);
        for rec in self.records.iter_hash(hash_of(tag)) {
            if rec.tag() != tag {
                continue;
            }
            // An entry being dropped is gone: skipped.
            let Some(e) = rec.upgrade() else { continue };
            if e.key().as_ref() == Some(key) {
                return Some(e);
            }
            others.push(e);
        }
        None
    }

    /// Counts one more entry, `entry`, under `key`.
    fn add(&mut self, key: &ContentKey, entry: &Counted<E>) {
        self.insert(key, entry, Rec::new(&Uncounted::of(entry)));
    }

    /// Adds `rec`, the record of `counted`, under `key`: the key's tag goes into the entry's
    /// cell first, where the record's hash is read from.
    fn insert<F: ?Sized>(&mut self, key: &ContentKey, counted: &Counted<F>, rec: Rec<E>) {
        let tag = tag_of(key);
        Counted::set_tag(counted, tag);
        self.records.insert_unique(hash_of(tag), rec, Rec::hash);
    }

    /// Gives back most of the table once it is at most a quarter full (see `memory`).
    fn shrink(&mut self) {
        if let Some(to) = shrunk_capacity(self.records.len(), self.records.capacity()) {
            self.records.shrink_to(to, Rec::hash);
        }
    }
}

/// `table` as the table of entry type `E`, which it is (tables are found by their type).
fn typed<E: 'static>(table: &dyn AnyTable) -> &Table<E> {
    table
        .as_any()
        .downcast_ref::<Table<E>>()
        .expect("a registry table is found by its entry type")
}

fn shard_of(key: &ContentKey) -> usize {
    (key.prefix_u64() % SHARDS as u64) as usize
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::ptr::NonNull;
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::error::Result;
    use crate::runtime::erased::{Encoded, EntryId};

    /// An entry as the registry sees it; forgets itself when dropped, like `Entry`. `T` makes
    /// entry types of their own.
    struct Fake<const T: u8 = 0> {
        id: EntryId,
        key: ContentKey,
        registry: Arc<Registry>,
        registered: AtomicBool,
    }

    impl<const T: u8> ErasedEntry for Fake<T> {
        fn id(&self) -> EntryId {
            self.id
        }
        fn key(&self) -> Option<ContentKey> {
            Some(self.key)
        }
        fn is_stored(&self) -> bool {
            true
        }
        fn mark_stored(&self, _key: ContentKey) {}
        fn mark_registered(&self) -> bool {
            !self.registered.swap(true, Ordering::AcqRel)
        }
        fn set_key(&self, _key: ContentKey) {}
        fn encode(&self, _out: &mut Vec<u8>) -> Result<Encoded> {
            Ok(Encoded::Stored)
        }
        fn take_hits(&self) -> u8 {
            0
        }
        fn is_pinned(&self) -> bool {
            false
        }
        fn withdraw(&self) {}
        fn try_evict(&self, _: &crate::runtime::hazard::Held) -> Option<u64> {
            None
        }
        fn resident_size(&self) -> u64 {
            0
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    impl<const T: u8> Drop for Fake<T> {
        fn drop(&mut self) {
            if *self.registered.get_mut() {
                self.registry
                    .forget::<Self>(self as *const Self as *const (), self.key, true);
            }
        }
    }

    static NEXT_FAKE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

    /// `entry` as an entry of any type.
    fn erased<const T: u8>(entry: Counted<Fake<T>>) -> ErasedRef {
        // SAFETY: an unsizing coercion.
        #[expect(unsafe_code, reason = "erasing a counted pointer's type")]
        unsafe {
            Counted::map_cell(entry, |c| c as NonNull<Cell<dyn ErasedEntry>>)
        }
    }

    fn fake<const T: u8>(registry: &Arc<Registry>, key: ContentKey) -> Fake<T> {
        Fake {
            id: NEXT_FAKE.fetch_add(1, Ordering::Relaxed),
            key,
            registry: Arc::clone(registry),
            registered: AtomicBool::new(false),
        }
    }

    #[test]
    fn every_copy_of_a_key_is_counted_and_a_live_one_is_handed_out() {
        let registry = Arc::new(Registry::new());
        let key = ContentKey::of(b"one", &[]);
        let other = ContentKey::of(b"two", &[]);
        let (a, new) = registry.find_or_add(key, || fake::<0>(&registry, key));
        assert!(new);
        let (same, new) = registry.find_or_add(key, || fake::<0>(&registry, key));
        assert!(!new && Counted::ptr_eq(&a, &same));
        drop(same);
        // Two more copies of the same content, counted after the first.
        let b = erased(Counted::new(fake::<0>(&registry, key)));
        let c = erased(Counted::new(fake::<0>(&registry, key)));
        registry.register(&b);
        registry.register(&b);
        registry.register(&c);
        let (d, _) = registry.find_or_add(other, || fake::<0>(&registry, other));
        let mut live = registry.live_keys();
        live.sort();
        let mut expected = vec![key, other];
        expected.sort();
        assert_eq!(live, expected);
        // The first goes: another copy is handed out, and the key stays live.
        drop(a);
        let (next, new) = registry.find_or_add(key, || fake::<0>(&registry, key));
        assert!(!new);
        assert!(next.id() == b.id() || next.id() == c.id());
        drop(next);
        assert_eq!(registry.garbage(), 0);
        // Another copy goes: the one left is handed out.
        drop(c);
        let (next, _) = registry.find_or_add(key, || fake::<0>(&registry, key));
        assert_eq!(next.id(), b.id());
        drop(next);
        assert_eq!(registry.garbage(), 0);
        // The last goes: the key is garbage, once.
        drop(b);
        assert_eq!(registry.garbage(), 1);
        assert_eq!(registry.live_keys(), vec![other]);
        drop(d);
        assert_eq!(registry.garbage(), 2);
        assert!(registry.live_keys().is_empty());
    }

    /// Makes (or finds) the entry of a type for a key; true if it is new.
    type Maker = fn(&Arc<Registry>, ContentKey) -> (ErasedRef, bool);

    /// Makes (or finds) the entry of type `Fake<T>` for `key`, through `find_or_add`.
    fn typed<const T: u8>(registry: &Arc<Registry>, key: ContentKey) -> (ErasedRef, bool) {
        let (e, new) = registry.find_or_add(key, || fake::<T>(registry, key));
        (erased(e), new)
    }

    /// Makes an entry of type `Fake<T>` for `key` apart from the registry, as an insert does
    /// (its type's table made first, as `Entry::new` does), for the caller to `register`.
    fn apart<const T: u8>(registry: &Arc<Registry>, key: ContentKey) -> (ErasedRef, bool) {
        registry.ensure::<Fake<T>>();
        (erased(Counted::new(fake::<T>(registry, key))), true)
    }

    /// A maker per entry type, more types than are found without a lock.
    macro_rules! makers {
        ($f:ident) => {
            makers!(
                $f; 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35
            )
        };
        ($f:ident; $($t:literal),*) => { [$($f::<$t> as Maker),*] };
    }

    #[test]
    fn each_entry_type_has_its_entry_and_the_key_is_garbage_when_the_last_type_goes() {
        let registry = Arc::new(Registry::new());
        let key = ContentKey::of(b"shared", &[]);
        let makers: [Maker; 36] = makers!(typed);
        assert!(makers.len() > FAST_TYPES);
        let mut held = Vec::new();
        for make in makers {
            let (e, new) = make(&registry, key);
            assert!(new, "each type gets an entry of its own");
            assert!(held.iter().all(|h: &ErasedRef| h.id() != e.id()));
            held.push(e);
        }
        for (make, e) in makers.iter().zip(&held) {
            let (again, new) = make(&registry, key);
            assert!(!new);
            assert_eq!(again.id(), e.id(), "the same type finds its own entry");
        }
        assert!(registry.memory_bytes() > 0);
        let mut live = registry.live_keys();
        live.dedup();
        assert_eq!(live, vec![key]);
        // Every type but one goes: the key stays live and is not garbage.
        let last = held.pop().expect("an entry");
        drop(held);
        assert_eq!(registry.garbage(), 0);
        assert_eq!(registry.live_keys(), vec![key]);
        drop(last);
        assert_eq!(registry.garbage(), 1);
        assert!(registry.live_keys().is_empty());
    }

    /// Entries made apart and counted through `register`, in tables found with and without the
    /// lock, are live keys until they go, then garbage.
    #[test]
    fn registered_entries_of_every_type_are_live_until_they_go() {
        let registry = Arc::new(Registry::new());
        let makers: [Maker; 36] = makers!(apart);
        let mut held = Vec::new();
        for (i, make) in makers.iter().enumerate() {
            let key = ContentKey::of(&(i as u64).to_le_bytes(), &[]);
            let (e, _) = make(&registry, key);
            // Twice: counted once.
            registry.register(&e);
            registry.register(&e);
            held.push((key, e));
        }
        let mut live = registry.live_keys();
        live.sort();
        let mut want: Vec<ContentKey> = held.iter().map(|(k, _)| *k).collect();
        want.sort();
        assert_eq!(live, want);
        drop(held);
        assert!(registry.live_keys().is_empty());
        assert_eq!(registry.garbage(), makers.len() as u64);
    }

    /// Threads making the first entries of many types at once: each type gets one table, and
    /// every live key is listed.
    #[test]
    fn types_used_first_at_once_get_one_table_each() {
        // Half the types through `find_or_add`, half made apart and registered.
        let by_key: [Maker; 36] = makers!(typed);
        let made_apart: [Maker; 36] = makers!(apart);
        let makers: Vec<Maker> = (0..36)
            .map(|i| if i % 2 == 0 { by_key[i] } else { made_apart[i] })
            .collect();
        for round in 0..40u64 {
            let registry = Arc::new(Registry::new());
            let barrier = std::sync::Barrier::new(makers.len());
            let held: Vec<Vec<ErasedRef>> = std::thread::scope(|s| {
                let threads: Vec<_> = makers
                    .iter()
                    .enumerate()
                    .map(|(i, make)| {
                        let (registry, barrier) = (&registry, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            (0..10u64)
                                .map(|j| {
                                    let n = round * 100_000 + i as u64 * 100 + j;
                                    let key = ContentKey::of(&n.to_le_bytes(), &[]);
                                    let (e, _) = make(registry, key);
                                    registry.register(&e);
                                    e
                                })
                                .collect()
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .map(|t| t.join().expect("a thread"))
                    .collect()
            });
            let tables = registry.tables();
            let mut ids: Vec<TypeId> = tables.iter().map(|(t, _)| *t).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), makers.len(), "one table per type");
            assert_eq!(tables.len(), makers.len(), "one table per type");
            assert_eq!(registry.live_keys().len(), makers.len() * 10);
            drop(held);
            assert!(registry.live_keys().is_empty());
        }
    }
}

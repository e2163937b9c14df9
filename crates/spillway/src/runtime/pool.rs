//! The [`Pool`]: the public API, over the parts of [`runtime`](super) (see its module doc for
//! the parts and their order). Every method is a few lines that hand the work to a part.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::build::{PoolBuilder, Threads};
use super::entry::Entry;
use super::gc::{GcOptions, GcReport};
use super::handle::Paged;
use super::shared::PoolShared;
use super::stats::PoolStats;
use super::value::Pageable;
use crate::error::{Error, Result};
use crate::key::ContentKey;
use crate::store::log::CompactionReport;
use crate::store::{BlobStore, Durability};

/// A memory pool of paged values over a store, within a byte budget.
///
/// ```
/// use spillway::Pool;
///
/// let pool = Pool::builder().budget(64 << 20).build()?;
/// let leaf = pool.insert(vec![1u32, 2, 3])?;
/// let list = pool.insert(vec![leaf.clone(), leaf])?; // a value holding handles
/// assert_eq!(list.get()?[1].get()?[2], 3);
/// # Ok::<(), spillway::Error>(())
/// ```
///
/// # One pool's handles
///
/// A value stored by a pool may hold only that pool's handles (those its [`insert`](Self::insert),
/// [`load`](Self::load) and [`root`](Self::root) hand out, and those decoded from its values):
/// another pool's objects are not in this pool's store, and that pool pages them out and
/// collects them on its own. Storing a value that holds a handle of another pool fails with
/// [`Error::ForeignHandle`], which names both pools by their stores, and stores nothing of the
/// value's graph above that handle:
///
/// - from [`Paged::key`], [`persist`](Self::persist) or [`set_root`](Self::set_root) (which
///   also refuse a handle of another pool itself), the error is returned;
/// - in a page-out that the pool makes on its own to keep within its budget, the value stays in
///   memory, as with any value that cannot be stored; the error is counted in
///   [`PoolStats::errors`] and kept in [`PoolStats::last_error`], and the next call that takes
///   no value (such as [`flush`](Self::flush) or [`gc`](Self::gc)) returns it as
///   [`Error::PageOut`].
///
/// To move values between pools, insert copies of them into the other pool.
///
/// # Held values
///
/// A [`Guard`](super::Guard) keeps its value in memory: it cannot be paged out while a guard
/// (or an `Arc` from [`Guard::into_arc`](super::Guard::into_arc)) holds it. Eviction sets held
/// values aside rather than asking about them again and again, so holding many guards costs
/// nothing per read. When the held bytes alone fill the budget, a read or insert that needs room
/// is still served: the value comes in past the budget (nothing else could go), which shows in
/// [`PoolStats::peak_resident_bytes`], and [`PoolStats::held_bytes`] says how much is held. It
/// never waits for a guard to be dropped (the guard may be the caller's own). Keep guards short
/// or the budget above what is held at once.
pub struct Pool {
    shared: Arc<PoolShared>,
    threads: Threads,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.shared.fmt(f)
    }
}

const PERSIST_PREFIX: &str = "spillway.persist.";

// Here rather than in `build`, which comes before the façade and does not know `Pool`.
impl PoolBuilder {
    /// Builds the pool.
    ///
    /// A process can have 65,536 pools alive at once (a pool lives while any of its handles
    /// does): past that, this fails with [`Error::InvalidArgument`].
    pub fn build(self) -> Result<Pool> {
        let (shared, threads) = self.start()?;
        Ok(Pool { shared, threads })
    }
}

impl Pool {
    /// A pool with every default: a log store in a temporary directory and an eighth of the
    /// machine's memory as its budget.
    pub fn new() -> Result<Pool> {
        Pool::builder().build()
    }

    /// A builder for a pool with settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// Puts a value under the pool's management. Its size is the value's deep size.
    pub fn insert<T: Pageable>(&self, value: T) -> Result<Paged<T>> {
        self.insert_arc(Arc::new(value), None)
    }

    /// Like [`insert`](Self::insert), with the size to charge given by the caller.
    pub fn insert_with_size<T: Pageable>(&self, value: T, bytes: u64) -> Result<Paged<T>> {
        self.insert_arc(Arc::new(value), Some(bytes))
    }

    /// Puts a boxed value (a trait object, say) under the pool's management.
    pub fn insert_boxed<T: ?Sized + Pageable>(&self, value: Box<T>) -> Result<Paged<T>> {
        self.insert_arc(Arc::from(value), None)
    }

    /// The pool's shared state, for the collections built on it.
    pub(crate) fn shared(&self) -> &Arc<PoolShared> {
        &self.shared
    }

    fn insert_arc<T: ?Sized + Pageable>(
        &self,
        value: Arc<T>,
        fixed: Option<u64>,
    ) -> Result<Paged<T>> {
        Ok(Paged {
            entry: Entry::insert(&self.shared, value, fixed)?,
        })
    }

    /// A new handle whose value is `f` applied to a copy of this one's: values are immutable,
    /// so an update builds a new value; handles inside it that did not change are shared, and
    /// their stored data is not written again. For a value that is not `Clone` (a trait
    /// object), [`update_with`](Self::update_with).
    pub fn update<T: Pageable + Clone>(
        &self,
        handle: &Paged<T>,
        f: impl FnOnce(&mut T),
    ) -> Result<Paged<T>> {
        let mut value = T::clone(&*handle.get()?);
        f(&mut value);
        self.insert(value)
    }

    /// A new handle whose value `f` builds from this one's, read in place: the update of a
    /// value that cannot be cloned, a trait object (`Paged<dyn Trait>`) above all, whose new
    /// value is made by a method of the trait. The old value is paged in if it is out, and
    /// stays pinned while `f` runs; the new one is put under the pool's management like an
    /// [`insert_boxed`](Self::insert_boxed). As with [`update`](Self::update), handles that
    /// the new value shares with the old one are not stored again.
    ///
    /// ```
    /// # use spillway::Pool;
    /// # let pool = Pool::builder().budget(16 << 20).build()?;
    /// let words = pool.insert(vec!["a".to_string(), "b".to_string()])?;
    /// let longer = pool.update_with(&words, |w| {
    ///     Box::new(w.iter().map(|s| s.repeat(2)).collect())
    /// })?;
    /// assert_eq!(*longer.get()?, ["aa", "bb"]);
    /// # Ok::<(), spillway::Error>(())
    /// ```
    ///
    /// For a trait object, see the example of [`pageable_dyn!`](crate::pageable_dyn).
    pub fn update_with<T: ?Sized + Pageable>(
        &self,
        handle: &Paged<T>,
        f: impl FnOnce(&T) -> Box<T>,
    ) -> Result<Paged<T>> {
        let value = {
            let old = handle.get()?;
            f(&old)
        };
        self.insert_boxed(value)
    }

    /// A handle for an object already stored under `key` (written by this pool before, by
    /// another process, or on another machine). Nothing is loaded until the handle is read.
    pub fn load<T: ?Sized + Pageable>(&self, key: ContentKey) -> Result<Paged<T>> {
        // The handle first (which protects the key from a running collection), then the check.
        let handle = self.handle_for_key(key);
        if !self.shared.store.contains(&key)? {
            return Err(Error::NotFound {
                key,
                store: self.shared.store.describe(),
            });
        }
        Ok(handle)
    }

    /// The content key `value` has when this pool stores it: the key of its payload (its type
    /// tag, as this pool writes it, then its encoding) and of its children's keys. Every handle
    /// inside it must have a key already (an error otherwise), as it does once the value has
    /// been stored or read back from a store. Reading a value back and comparing `key_of` with
    /// its handle's key checks it end to end; an [upgraded](PoolBuilder::upgrade) value has a
    /// key of its own, not the one it was read under.
    pub fn key_of<T: ?Sized + Pageable>(&self, value: &T) -> Result<ContentKey> {
        crate::codec::key_of_encoding(T::type_name(), || self.shared.schemas.encode(value))
    }

    /// Stores the graph under `handle` and keeps it stored across restarts, even with no handle
    /// left, until [`unpersist`](Self::unpersist). Returns its key, for [`load`](Self::load).
    ///
    /// A handle of another pool, or one whose graph holds a handle of another pool, is refused
    /// with [`Error::ForeignHandle`] (see [`Pool`]'s "One pool's handles").
    pub fn persist<T: ?Sized + Pageable>(&self, handle: &Paged<T>) -> Result<ContentKey> {
        self.take_error()?;
        self.own(handle)?;
        let key = handle.key()?;
        self.shared
            .store
            .set_root(&format!("{PERSIST_PREFIX}{key}"), Some(key))?;
        Ok(key)
    }

    /// Lets a persisted graph become garbage again once no handle or root reaches it.
    pub fn unpersist(&self, key: ContentKey) -> Result<()> {
        self.shared
            .store
            .set_root(&format!("{PERSIST_PREFIX}{key}"), None)
    }

    /// Names the graph under `handle`: stored durably, it survives restarts and garbage
    /// collection, and [`root`](Self::root) finds it again.
    ///
    /// A handle of another pool, or one whose graph holds a handle of another pool, is refused
    /// with [`Error::ForeignHandle`] (see [`Pool`]'s "One pool's handles").
    pub fn set_root<T: ?Sized + Pageable>(
        &self,
        name: &str,
        handle: &Paged<T>,
    ) -> Result<ContentKey> {
        self.take_error()?;
        if name.starts_with(PERSIST_PREFIX) {
            return Err(Error::InvalidArgument(format!(
                "root names starting with {PERSIST_PREFIX:?} are reserved"
            )));
        }
        self.own(handle)?;
        let key = handle.key()?;
        self.shared.store.set_root(name, Some(key))?;
        Ok(key)
    }

    /// Removes a named root.
    pub fn remove_root(&self, name: &str) -> Result<()> {
        self.shared.store.set_root(name, None)
    }

    /// The graph named `name`, hydrated lazily; `None` if there is no such root.
    pub fn root<T: ?Sized + Pageable>(&self, name: &str) -> Result<Option<Paged<T>>> {
        Ok(self
            .shared
            .store
            .root(name)?
            .map(|k| self.handle_for_key(k)))
    }

    fn handle_for_key<T: ?Sized + Pageable>(&self, key: ContentKey) -> Paged<T> {
        Paged {
            entry: Entry::for_key(&self.shared, key),
        }
    }

    /// Names and keys of the named roots.
    pub fn roots(&self) -> Result<Vec<(String, ContentKey)>> {
        Ok(self
            .shared
            .store
            .roots()?
            .into_iter()
            .filter(|(n, _)| !n.starts_with(PERSIST_PREFIX))
            .collect())
    }

    /// Deletes stored objects that no live handle, named root or persisted graph reaches.
    /// Safe while other threads use the pool.
    ///
    /// Safe on a damaged store too: if a root's object, or a child of a reachable stored object,
    /// is missing, the collection stops with [`Error::IncompleteGraph`], naming the roots and
    /// the keys, and deletes nothing. [`gc_with`](Self::gc_with) and [`GcOptions::force`] go
    /// past that.
    pub fn gc(&self) -> Result<GcReport> {
        self.gc_with(GcOptions::default())
    }

    /// [`gc`](Self::gc) with options.
    pub fn gc_with(&self, opts: GcOptions) -> Result<GcReport> {
        self.take_error()?;
        self.shared.gc(opts)
    }

    /// Pages out values until at most `bytes` of values are resident (pinned values stay);
    /// returns the bytes freed. Metadata charged to the budget
    /// ([`PoolBuilder::budget_includes_metadata`]) does not count: it is not paged out.
    ///
    /// With glibc's allocator, a shrink that freed a mebibyte or more also asks the allocator
    /// to give its free pages back to the system (`malloc_trim`), as the background page-out
    /// does once an eighth of the budget was paged out: otherwise the memory of paged-out
    /// values stays in the process for later allocations.
    pub fn shrink_to(&self, bytes: u64) -> Result<u64> {
        self.take_error()?;
        let bytes = bytes.saturating_add(self.shared.metadata_charged());
        // Values whose guards were dropped since eviction set them aside can go too.
        self.shared.residency.unpark_all();
        let mut freed = 0;
        loop {
            let resident = self.shared.residency.budget().resident();
            if resident <= bytes {
                self.shared.residency.release_now();
                return Ok(freed);
            }
            // The policy does a bounded amount of work per call: call again until it frees
            // nothing more, and let other evictions in progress (whose victims count as gone)
            // end first.
            match self.shared.evict_to(bytes)? {
                0 if self.shared.residency.evictions_in_flight() => {
                    crate::sync::thread::yield_now()
                }
                0 => {
                    self.shared.residency.release_now();
                    return Ok(freed);
                }
                n => freed += n,
            }
        }
    }

    /// Compacts the [`LogStore`](crate::LogStore) the pool opened (in
    /// [`PoolBuilder::dir`] or a temporary directory): rewrites the live records of its
    /// mostly-dead segments and deletes them, giving their space back to the file system (see
    /// [`LogStore::compact`](crate::LogStore::compact)). The records of objects that
    /// [`gc`](Self::gc) deleted are the dead ones, so a collection comes first. Safe while
    /// other threads use the pool; it writes and fsyncs, so it blocks on I/O.
    ///
    /// A pool built over a store of its own ([`PoolBuilder::store`]) has nothing here to
    /// compact: that is [`Error::InvalidArgument`], and the store is compacted through its own
    /// API, where it has one.
    pub fn compact(&self) -> Result<CompactionReport> {
        self.take_error()?;
        match &self.shared.log {
            Some(log) => {
                // Records still in the store's write buffer are in no segment yet: written
                // first, every segment but the last one is sealed and considered.
                log.flush(Durability::Written)?;
                log.compact()
            }
            None => Err(Error::InvalidArgument(format!(
                "Pool::compact compacts the log store a pool opens in its directory; this pool \
                 was built over {}, which it did not open: compact that store itself",
                self.shared.store.describe()
            ))),
        }
    }

    /// Makes everything stored so far reach `durability`.
    pub fn flush(&self, durability: Durability) -> Result<()> {
        self.take_error()?;
        self.shared.store.flush(durability)
    }

    /// The store under the pool.
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.shared.store
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        let c = &s.stats;
        let budget = s.residency.budget();
        let store = s.store.stats();
        // Measured once, for the charge and the report.
        let metadata_bytes = s.metadata_bytes();
        s.charge_measured(|| metadata_bytes + store.index_bytes);
        let resident = budget.resident();
        PoolStats {
            resident_bytes: resident,
            budget_bytes: budget.hard_limit(),
            peak_resident_bytes: s.residency.peak(),
            held_bytes: s.residency.held_bytes(),
            pressure: budget.pressure_at(resident),
            stored_objects: store.objects,
            stored_bytes: store.live_bytes,
            hits: c.hits.get(),
            misses: c.misses.load(Ordering::Relaxed),
            page_ins: c.page_ins.load(Ordering::Relaxed),
            page_outs: c.page_outs.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            objects_written: c.objects_written.load(Ordering::Relaxed),
            dedup_hits: c.dedup_hits.load(Ordering::Relaxed),
            evictions_by_pressure: budget.stats().evictions,
            entries: c.entries.load(Ordering::Relaxed),
            store_index_bytes: store.index_bytes,
            metadata_bytes,
            metadata_charged_bytes: s.metadata_charged(),
            dropped_since_gc: s.registry.garbage(),
            gc_runs: c.gc_runs.load(Ordering::Relaxed),
            gc_deleted: c.gc_deleted.load(Ordering::Relaxed),
            errors: s.errors.count(),
            last_error: s.errors.last(),
        }
    }

    /// The typed sections of the container file at `path` (created if it does not exist),
    /// held under this pool's budget beside its values: see [`Sections`](super::sections::Sections).
    pub fn sections(&self, path: impl AsRef<std::path::Path>) -> Result<super::sections::Sections> {
        super::sections::Sections::open(&self.shared, path.as_ref())
    }

    /// `Ok` if `handle` is this pool's.
    fn own<T: ?Sized + Pageable>(&self, handle: &Paged<T>) -> Result<()> {
        if std::ptr::eq(handle.entry.pool(), &*self.shared) {
            return Ok(());
        }
        Err(Error::ForeignHandle {
            what: format!("a handle ({})", std::any::type_name::<Paged<T>>()),
            pool: self.shared.store.describe(),
            other: handle.entry.pool().store.describe(),
        })
    }

    /// Reports (once) a page-out error that happened since the last call: in the background, or
    /// while making room for an insert or a page-in (which then went ahead past the budget
    /// rather than lose the value). Calls that take a value never fail this way.
    fn take_error(&self) -> Result<()> {
        match self.shared.errors.take_unreported() {
            Some(cause) => Err(Error::PageOut { cause }),
            None => Ok(()),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.threads.stop(&self.shared);
        if let Err(e) = self.shared.store.flush(Durability::Written) {
            tracing::error!(error = %e, "spillway pool: final flush failed");
        }
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Pool>();
    is::<Paged<Vec<u8>>>();
}

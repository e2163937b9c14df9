//! Building a pool: the [`PoolBuilder`] and its defaults, the parts it puts together, and the
//! pool's threads (the I/O threads of [`threads`](super::threads), and the background thread
//! that pages out between the watermarks and collects garbage once enough accumulated; a
//! deterministic pool has no background thread).
//!
//! The threads hold the pool's parts only weakly or not at all: the [`Pool`](super::Pool)
//! stops them when it is dropped ([`Threads::stop`]), and handles that outlive it keep working
//! without them.

use crate::sync::thread::{self, JoinHandle};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::gc::{Collector, GcOptions};
use super::loading::Loads;
use super::pool_table::PoolNumber;
use super::registry::Registry;
use super::residency::Residency;
use super::schema::SchemaBuilder;
use super::shared::PoolShared;
use super::stats::{Counters, Errors};
use super::threads::{IoPool, Signal};
use crate::error::{Error, Result};
use crate::memory::{Budget, PolicyKind, Watermarks};
use crate::store::{BlobStore, LogStore, LogStoreOptions};

/// Builds a [`Pool`](super::Pool). Every setting has a default a newcomer can use.
#[derive(Debug, Default)]
pub struct PoolBuilder {
    budget: Option<u64>,
    store: Option<Arc<dyn BlobStore>>,
    dir: Option<PathBuf>,
    log_options: Option<LogStoreOptions>,
    policy: PolicyKind,
    io_threads: Option<usize>,
    gc_after: Option<u64>,
    watermarks: Option<(u8, u8)>,
    deterministic: bool,
    metadata_in_budget: bool,
    schemas: SchemaBuilder,
}

impl PoolBuilder {
    /// The byte budget for resident values (default: an eighth of the machine's memory).
    pub fn budget(mut self, bytes: u64) -> Self {
        self.budget = Some(bytes);
        self
    }

    /// Store paged-out values in this store (default: a [`LogStore`] in [`dir`](Self::dir), or
    /// in a temporary directory removed when the pool is dropped).
    pub fn store(mut self, store: Arc<dyn BlobStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Open a [`LogStore`] in this directory (created if it does not exist), with the pool's
    /// default settings, [`LogStoreOptions::for_pool`]: reads go through `pread`, so that the
    /// page cache does not count in the process's resident set.
    /// [`Pool::compact`](super::Pool::compact) compacts it.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Open a [`LogStore`] in this directory with these settings (segment size, compaction
    /// threshold, checkpoints, read-only, ...): [`dir`](Self::dir) followed by
    /// [`log_options`](Self::log_options).
    pub fn dir_with(self, dir: impl Into<PathBuf>, options: LogStoreOptions) -> Self {
        self.dir(dir).log_options(options)
    }

    /// Settings of the [`LogStore`] the pool opens, in [`dir`](Self::dir) or in its temporary
    /// directory, used as given: start from [`LogStoreOptions::for_pool`] to keep the pool's
    /// way of reading (see [`dir`](Self::dir)). `build` refuses them
    /// beside a [`store`](Self::store), which the pool does not open.
    pub fn log_options(mut self, options: LogStoreOptions) -> Self {
        self.log_options = Some(options);
        self
    }

    /// The eviction policy (default S3-FIFO).
    pub fn policy(mut self, policy: PolicyKind) -> Self {
        self.policy = policy;
        self
    }

    /// Threads that run async page-ins (default 2).
    pub fn io_threads(mut self, n: usize) -> Self {
        self.io_threads = Some(n.max(1));
        self
    }

    /// Run a garbage collection in the background once this many stored objects lost their last
    /// handle (default 100,000; 0 turns background collection off). A child whose last handle
    /// goes out of memory with its paged-out parent is not counted: the parent's record still
    /// refers to it. [`PoolStats::dropped_since_gc`](crate::PoolStats::dropped_since_gc) shows
    /// the count.
    pub fn gc_after(mut self, dropped_objects: u64) -> Self {
        self.gc_after = Some(dropped_objects);
        self
    }

    /// Where page-out starts and where it stops, in percent of the budget (default 98 and 95):
    /// once resident bytes pass `start_percent` of the budget, the background thread pages
    /// out down to `stop_percent`, so that inserts and page-ins seldom have to evict
    /// themselves. An insert or page-in that finds the budget full before the background
    /// thread got there does that page-out itself, down to `stop_percent`, in one batch;
    /// `page_out_watermarks(100, 100)` makes it evict exactly what it needs instead. Resident
    /// bytes stay within the budget whatever the marks. `build` refuses marks that do not
    /// satisfy `0 < stop <= start <= 100`.
    pub fn page_out_watermarks(mut self, start_percent: u8, stop_percent: u8) -> Self {
        self.watermarks = Some((start_percent, stop_percent));
        self
    }

    /// A deterministic pool (default off): no background thread, so no background page-out and
    /// no background garbage collection (`gc_after` and the watermarks are not used); values
    /// are evicted only in the caller, when an insert or a page-in would pass the budget, and
    /// exactly as much as it needs (whole values, so at least that). Two runs of one sequence of calls from one thread then
    /// count the same hits, misses, page-ins and page-outs, which makes it the mode for tests
    /// and for replaying traces against a cache simulator. Async reads still page in on the
    /// pool's I/O threads; awaited one at a time, they are as deterministic.
    pub fn deterministic(mut self, on: bool) -> Self {
        self.deterministic = on;
        self
    }

    /// Count the pool's own memory against its budget (default off): its entries (one per
    /// object it has handles to, resident or paged out), the registry of live keys, the
    /// eviction policy's tables and the store's in-memory index, as
    /// [`PoolStats::metadata_bytes`](crate::PoolStats::metadata_bytes) and
    /// [`store_index_bytes`](crate::PoolStats::store_index_bytes) report them. That memory
    /// grows with the number of handles, not with the values' sizes: charged to the budget, it
    /// leaves the values what is left, so that the process's memory follows the budget rather
    /// than the budget plus a few hundred bytes per handle. At most three quarters of the
    /// budget is charged, so values always keep a quarter (a warning is logged once when
    /// metadata passes that). The charge is brought up to date as entries come and go and
    /// objects are written, and shows in
    /// [`PoolStats::metadata_charged_bytes`](crate::PoolStats::metadata_charged_bytes);
    /// [`Pool::shrink_to`](super::Pool::shrink_to) counts values only.
    pub fn budget_includes_metadata(mut self, on: bool) -> Self {
        self.metadata_in_budget = on;
        self
    }

    /// Stores values of type `T` under the stable name `name`, at schema version `version`
    /// (see "Changing a stored type" in the crate docs). Every stored value carries a tag of
    /// its type's name and version, which every read checks: a value read as another type is
    /// [`Error::TypeMismatch`], a value of another version [`Error::SchemaVersion`] unless an
    /// [`upgrade`](Self::upgrade) from it is registered. A type not registered here is tagged
    /// with its Rust path (`std::any::type_name`, which Rust does not promise to keep across
    /// compilers, and which moving or renaming the type changes) at version 0; a name given
    /// here keeps the values readable across such changes. `build` refuses one type registered
    /// twice and two types under one name.
    ///
    /// ```
    /// # use spillway::{Pool, serde::{Deserialize, Serialize}};
    /// #[derive(Serialize, Deserialize, get_size2::GetSize)]
    /// # #[serde(crate = "spillway::serde")]
    /// struct Config {
    ///     name: String,
    /// }
    /// let pool = Pool::builder().budget(16 << 20).schema::<Config>("config", 1).build()?;
    /// # Ok::<(), spillway::Error>(())
    /// ```
    pub fn schema<T: ?Sized + super::value::Pageable>(
        mut self,
        name: impl Into<String>,
        version: u32,
    ) -> Self {
        self.schemas.add::<T>(name.into(), version);
        self
    }

    /// Reads values of `New` stored at the older version `from` of its schema: they are
    /// decoded as `Old` (the type as it was at that version) and converted by `f`. `New` must
    /// be registered with [`schema`](Self::schema) at a later version (`build` refuses the
    /// upgrade otherwise); one upgrade per old version, each straight to the current type.
    ///
    /// An upgraded value keeps the key it is stored under: its handle's key, its record, and
    /// its parents' records do not change, and each page-in upgrades it again. In memory it is
    /// the new type; [`Pool::update`](super::Pool::update) (or an insert of the value) stores it
    /// at the current version, under a new key.
    pub fn upgrade<Old, New>(
        mut self,
        from: u32,
        f: impl Fn(Old) -> New + Send + Sync + 'static,
    ) -> Self
    where
        Old: serde::de::DeserializeOwned + 'static,
        New: super::value::Pageable,
    {
        self.schemas.upgrade(from, f);
        self
    }

    /// The parts of a pool with these settings, and its threads, running.
    pub(crate) fn start(self) -> Result<(Arc<PoolShared>, Threads)> {
        let limit = self.budget.unwrap_or_else(default_budget);
        let budget = Budget::with_limit(limit)
            .map_err(|e| Error::InvalidArgument(format!("pool budget of {limit} bytes: {e}")))?;
        let watermarks = match self.watermarks {
            Some((start, stop)) => Watermarks::new(start, stop).map_err(|e| {
                Error::InvalidArgument(format!("page-out watermarks {start} % and {stop} %: {e}"))
            })?,
            None => Watermarks::default(),
        };
        let schemas = self.schemas.build()?;
        let mut tmp = None;
        let given_options = self.log_options.is_some();
        let options = self.log_options.unwrap_or_else(LogStoreOptions::for_pool);
        let (store, log): (Arc<dyn BlobStore>, _) = match (self.store, self.dir) {
            (Some(_), _) if given_options => {
                return Err(Error::InvalidArgument(
                    "log store options were given to a pool built over a store of its own \
                     (`store`): set them where that store is opened, or give the pool a \
                     directory (`dir`) instead of a store"
                        .into(),
                ));
            }
            (Some(s), _) => (s, None),
            (None, Some(dir)) => {
                let log = Arc::new(LogStore::open_with(dir, options)?);
                (Arc::clone(&log) as Arc<dyn BlobStore>, Some(log))
            }
            (None, None) => {
                let t = tempfile::Builder::new()
                    .prefix("spillway-pool-")
                    .tempdir()
                    .map_err(|e| {
                        Error::io("create temporary directory", std::env::temp_dir(), e)
                    })?;
                let log = Arc::new(LogStore::open_with(t.path(), options)?);
                tmp = Some(t);
                (Arc::clone(&log) as Arc<dyn BlobStore>, Some(log))
            }
        };
        if let Some(e) = store.untagged_values() {
            return Err(e);
        }
        // Before any value of the pool can be read (see `hazard`).
        super::hazard::init();
        let number = PoolNumber::claim()?;
        let signal = Arc::new(Signal::default());
        let (io, mut handles) = IoPool::start(self.io_threads.unwrap_or(2))?;
        let shared = Arc::new(PoolShared {
            number,
            store,
            log,
            schemas,
            stats: Counters::default(),
            errors: Errors::default(),
            residency: Residency::new(
                budget,
                self.policy.build(limit),
                (!self.deterministic).then_some(watermarks),
                Arc::clone(&signal),
            ),
            registry: Registry::new(),
            collector: Collector::new(self.gc_after.unwrap_or(100_000)),
            loads: Loads::new(),
            fixed_sizes: Default::default(),
            large_sizes: Default::default(),
            metadata: self
                .metadata_in_budget
                .then(|| super::metadata::MetadataCharge::new(limit)),
            io,
            _tmp: tmp,
        });
        shared.number.publish(Arc::as_ptr(&shared).cast());
        if !self.deterministic {
            let weak = Arc::downgrade(&shared);
            // If this fails, the I/O threads end when `shared`, and with it their queue, is
            // dropped.
            handles.push(
                thread::Builder::new()
                    .name("spillway-pageout".into())
                    .spawn(move || background(weak, signal))
                    .map_err(|e| Error::io("spawn thread", "spillway-pageout", e))?,
            );
        }
        Ok((shared, Threads { handles }))
    }
}

/// A running pool's threads.
#[derive(Debug)]
pub(crate) struct Threads {
    handles: Vec<JoinHandle<()>>,
}

impl Threads {
    /// Stops the threads: closing the I/O queue ends the I/O threads, and the background
    /// thread sees it on its next wake-up.
    pub fn stop(&mut self, shared: &PoolShared) {
        shared.io.close();
        shared.residency.wake();
        for t in self.handles.drain(..) {
            let _ = t.join();
        }
    }
}

fn default_budget() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kib| kib * 1024)
        .unwrap_or(8 << 30);
    (total / 8).max(64 << 20)
}

/// The background thread: pages out from the start watermark down to the stop watermark,
/// collects garbage when enough accumulated. Holds the pool only weakly, so it ends when the
/// pool is gone.
fn background(pool: Weak<PoolShared>, signal: Arc<Signal>) {
    loop {
        signal.wait(Duration::from_millis(50));
        let Some(p) = pool.upgrade() else { return };
        if p.io.is_closed() {
            return;
        }
        p.charge_metadata();
        if let Some(target) = p.residency.page_out_target() {
            // Round after round (each bounded) down to the stop mark.
            loop {
                match p.evict_to(target) {
                    Ok(0) => break,
                    Ok(_) if p.io.is_closed() => break,
                    Ok(_) => {}
                    Err(e) => {
                        p.errors.record(e);
                        break;
                    }
                }
            }
            p.residency.release_if_due();
        }
        if p.collector.due(p.registry.garbage())
            && let Err(e) = p.gc(GcOptions::default())
        {
            p.errors.record(e);
        }
    }
}

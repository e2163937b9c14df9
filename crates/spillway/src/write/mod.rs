//! The write pipeline: a generic coordinator on which a database's (or a store's) write path
//! runs.
//!
//! Writes come in through named, bounded [`WriteChannel`]s from any number of producers. They
//! are applied one at a time, in one total order, to a mutable [`Delta`], and numbered with
//! [`Epoch`]s `1, 2, 3, ...`. When a trigger fires (the delta's size, a timer, an explicit
//! [`Coordinator::flush`], a waiter that needs storage, shutdown) the delta is
//! [frozen](Freeze) into an immutable batch plus a read view, the next delta starts, and the
//! batch is stored through a [`Flusher`] while the next delta fills. Each write's
//! [`WriteHandle`] waits for the [`Durability`](crate::Durability) level its caller needs:
//! `Applied` (in the delta, visible to readers), `Written` (stored by the flusher), `Durable`
//! (synced).
//!
//! Who does the work: there is one *writer role* (apply, freeze) and one *flush role* (store,
//! sync), each a lock, so one thread at a time plays each. A producer whose channel has
//! nothing queued applies its own write on its own thread and gets its handle back applied; a
//! thread blocked in a wait for `Written` or `Durable` takes the flush role when it is free and
//! freezes, stores and syncs itself, for its own write and every write applied before
//! (group commit: the threads that come while it syncs share the next round). A writer thread
//! and a flush thread do the rest in the background: writes that had to queue (a full delta,
//! a paused channel), the size and timer triggers, and async waiters, which must not block
//! their executor. So an uncontended `write` + `wait(Durable)` costs locks and the sync, not
//! thread hand-offs.
//!
//! Readers take a [`View`]: the current delta, the frozen deltas not yet stored (newest
//! first) and the last storage snapshot, published as one value and swapped whole; a
//! [`Subscription`] is told of each new view.
//!
//! # Invariants
//!
//! - Epochs are handed out in apply order, from 1, without gaps; each frozen batch holds a
//!   contiguous range of them, batches are stored in order, so `Written` and `Durable` are
//!   always a prefix of the applied epochs: `durable <= written <= applied`.
//! - A view never shows a write twice or loses one: its layers hold adjacent epoch ranges.
//! - Backpressure is bounded everywhere: each channel holds at most its capacity, at most
//!   [`Config::max_frozen`] frozen batches wait for storage (beyond that the writer stops
//!   applying writes and the channels fill up), and a subscriber's queue is bounded.
//! - Nobody waits forever on the pipeline: every wait ends with the level reached or an
//!   error, and every queued write is applied (by shutdown at the latest) or refused to its
//!   handle. Two waits are in the caller's hands: a write parked in a paused channel waits for
//!   a resume (or shutdown), and a flusher that blocks holds everything behind it.
//! - Read your writes: once a handle reports `Applied`, every view taken afterwards shows the
//!   write (until a newer write to the same data).
//!
//! # Failure
//!
//! A failed [`Flusher::write`] is retried on the same batch per the [`RetryPolicy`] (a few
//! retries with doubling backoff by default). Waiters keep waiting during retries, so a
//! waiter never gets an error for a write that is then stored. When the retries run out (or a
//! [`Flusher::sync`] fails, which is never retried since the storage is then in an unknown
//! state) the pipeline enters its **failed state**: every wait not yet satisfied, and every
//! later write, flush or wait, reports [`Error::WriteFailed`](crate::Error::WriteFailed); the
//! batches not stored stay visible in the views, and [`Coordinator::shutdown`] hands them
//! back in [`Shutdown::unflushed`] together with the writes applied since (frozen into a last
//! batch). So an acknowledged write is either stored or handed back with an error, never
//! dropped silently.
//!
//! A panic in user code is a bug, but it still strands nobody: a panic in
//! [`Flusher::write`] or [`Flusher::sync`] is caught, fails the pipeline, and the batch it held
//! is handed back like any other; a panic in [`Delta::apply`] or [`Freeze::freeze`] takes the
//! current delta down (its writes are lost, and their waiters get
//! [`Error::ThreadPanicked`](crate::Error::ThreadPanicked) as the cause), while the batches
//! already frozen are handed back. The panic itself goes on up the thread that ran the code:
//! the writer thread, or the producer whose `write` applied it.
//!
//! # Time
//!
//! Timers read a [`Clock`]. [`SystemClock`] is real time; with a [`ManualClock`] the interval
//! trigger fires exactly when a test advances the clock.
//!
//! # Example: a small key-value database
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use spillway::Durability;
//! use spillway::write::{
//!     Config, Coordinator, Delta, EpochRange, Freeze, Frozen, Flusher, Layer,
//! };
//!
//! /// Writes: set a key, or delete it (`None`).
//! type Put = (String, Option<String>);
//!
//! /// The delta: the latest write per key.
//! #[derive(Default)]
//! struct Memtable {
//!     map: BTreeMap<String, Option<String>>,
//!     bytes: usize,
//! }
//!
//! impl Delta for Memtable {
//!     type Write = Put;
//!     type Applied = ();
//!     fn apply(&mut self, _epoch: spillway::write::Epoch, (k, v): Put) {
//!         self.bytes += k.len() + v.as_ref().map_or(0, String::len);
//!         self.map.insert(k, v);
//!     }
//!     fn size_bytes(&self) -> usize {
//!         self.bytes
//!     }
//! }
//!
//! impl Freeze for Memtable {
//!     type Batch = Arc<BTreeMap<String, Option<String>>>;
//!     type FrozenView = Arc<BTreeMap<String, Option<String>>>;
//!     fn freeze(self) -> Frozen<Self> {
//!         let map = Arc::new(self.map);
//!         Frozen { batch: map.clone(), view: map, next: Memtable::default() }
//!     }
//! }
//!
//! /// Storage: a map behind an `Arc` that each flush copies and extends (a real one would
//! /// write a file and return a handle to it).
//! struct Disk {
//!     table: Arc<BTreeMap<String, String>>,
//! }
//!
//! impl Flusher for Disk {
//!     type Batch = Arc<BTreeMap<String, Option<String>>>;
//!     type Snapshot = Arc<BTreeMap<String, String>>;
//!     fn write(&mut self, batch: &Self::Batch, _epochs: EpochRange) -> spillway::Result<Self::Snapshot> {
//!         let mut next = BTreeMap::clone(&self.table);
//!         for (k, v) in batch.iter() {
//!             match v {
//!                 Some(v) => next.insert(k.clone(), v.clone()),
//!                 None => next.remove(k),
//!             };
//!         }
//!         self.table = Arc::new(next);
//!         Ok(self.table.clone())
//!     }
//!     fn sync(&mut self) -> spillway::Result<()> {
//!         Ok(())
//!     }
//! }
//!
//! /// A lookup: the newest layer that knows the key wins.
//! fn get(db: &Coordinator<Memtable, Disk>, key: &str) -> Option<String> {
//!     let view = db.view();
//!     let read = view.read();
//!     for layer in read.layers() {
//!         let found = match layer {
//!             Layer::Live(m) => m.map.get(key).cloned(),
//!             Layer::Frozen(m) => m.get(key).cloned(),
//!         };
//!         if let Some(v) = found {
//!             return v;
//!         }
//!     }
//!     read.snapshot().get(key).cloned()
//! }
//!
//! # fn main() -> spillway::Result<()> {
//! let empty = Arc::new(BTreeMap::new());
//! let db = Coordinator::start(
//!     Memtable::default(),
//!     Disk { table: empty.clone() },
//!     empty,
//!     Config::default(),
//! )?;
//! let writes = db.channel("app", 64);
//! let put = |k: &str, v: Option<&str>| writes.write((k.into(), v.map(Into::into))).expect("open");
//!
//! // Visible to readers as soon as it is applied...
//! put("apple", Some("red")).wait(Durability::Applied)?;
//! assert_eq!(get(&db, "apple").as_deref(), Some("red"));
//!
//! // ...and stored once the caller needs it.
//! let e = put("pear", Some("green")).wait(Durability::Written)?;
//! assert!(db.watermark(Durability::Written) >= e);
//! assert_eq!(db.view().snapshot().get("pear").map(String::as_str), Some("green"));
//!
//! put("apple", None);
//! let covered = db.flush(true)?;
//! assert_eq!(covered.get(), 3);
//! assert_eq!(get(&db, "apple"), None);
//!
//! let out = db.shutdown();
//! out.result?;
//! assert!(out.unflushed.is_empty());
//! # Ok(())
//! # }
//! ```

mod channel;
mod clock;
mod config;
mod coordinator;
mod delta;
mod epoch;
mod flush;
mod flusher;
mod handle;
mod lead;
mod role;
mod view;
mod watermark;
mod word;
mod writer;

pub use channel::{RejectReason, Rejected, WriteChannel};
pub use clock::{Clock, ClockWatcher, ManualClock, SystemClock};
pub use config::Config;
pub use coordinator::{Coordinator, Shutdown, Unflushed};
pub use delta::{Delta, Freeze, Frozen};
pub use epoch::{Epoch, EpochRange};
pub use flusher::{Flusher, RetryPolicy};
pub use handle::{HandleWait, WriteHandle};
pub use view::{FrozenLayer, Layer, Subscription, SubscriptionError, View, ViewGuard};
pub use watermark::EpochWait;

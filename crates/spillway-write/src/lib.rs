#![doc = include_str!("../README.md")]
//! # How it works
//!
//! Writes come in through named, bounded [`WriteChannel`]s from any number of producers. They
//! are applied one at a time, in one total order, to a mutable [`Delta`], and numbered with
//! [`Epoch`]s `1, 2, 3, ...`. When a trigger fires (the delta's size, a timer, an explicit
//! [`Coordinator::flush`], a waiter that needs storage, shutdown) the delta is
//! [frozen](Freeze) into an immutable batch plus a read view, the next delta starts, and the
//! batch is stored through a [`Flusher`] while the next delta fills. Each write's
//! [`WriteHandle`] waits for the [`Durability`] level its caller needs:
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
//! ## Invariants
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
//! ## Failure
//!
//! A failed [`Flusher::write`] is retried on the same batch per the [`RetryPolicy`] (a few
//! retries with doubling backoff by default). Waiters keep waiting during retries, so a
//! waiter never gets an error for a write that is then stored. When the retries run out (or a
//! [`Flusher::sync`] fails, which is never retried since the storage is then in an unknown
//! state) the pipeline enters its **failed state**: every wait not yet satisfied, and every
//! later write, flush or wait, reports [`Error::WriteFailed`] with the flusher's own error as
//! its cause ([`Failure::Flusher`]); the batches not stored stay visible in the views, and
//! [`Coordinator::shutdown`] hands them back in [`Shutdown::unflushed`] together with the
//! writes applied since (frozen into a last batch). So an acknowledged write is either stored
//! or handed back with an error, never dropped silently.
//!
//! A panic in user code is a bug, but it still strands nobody: a panic in
//! [`Flusher::write`] or [`Flusher::sync`] is caught, fails the pipeline, and the batch it held
//! is handed back like any other; a panic in [`Delta::apply`] or [`Freeze::freeze`] takes the
//! current delta down (its writes are lost, and their waiters get [`Failure::Panicked`] as the
//! cause), while the batches already frozen are handed back. The panic itself goes on up the
//! thread that ran the code: the writer thread, or the producer whose `write` applied it.
//!
//! ## Time
//!
//! Timers read a [`Clock`]. [`SystemClock`] is real time; with a [`ManualClock`] the interval
//! trigger fires exactly when a test advances the clock.
//!
//! ## Modules
//!
//! Each module imports only modules listed before it, so the imports run one way and there is
//! no circle (a test holds the code to this list):
//!
//! 0. `sync`: every lock, condition variable, atomic, thread, timed wait and futex word the
//!    others use: the real ones, or shuttle's under `--cfg spillway_shuttle` (the model checks
//!    of `tests/write_shuttle.rs`);
//! 1. `durability`, `epoch`, `error`, `clock`: the vocabulary, importing no sibling but the
//!    one above;
//! 2. `delta`, `flusher`: the traits a user implements; `config`: the knobs;
//! 3. `watermark`: the marks and the waits on them; `handle`: a write's handle;
//! 4. `status`: what the writer knows of the current delta; `channel`: the producers' bounded
//!    queues; `view`: what readers see;
//! 5. `shared`: the state the threads and the two roles share (the channels' inbox, the
//!    marks, the views, the frozen batches waiting for storage, the current delta);
//! 6. `role`: the writer role (apply, freeze); `flush`: the flush role (store, sync) and the
//!    flush thread;
//! 7. `lead`: a blocked waiter leading a flush round; `writer`: the writer thread;
//! 8. `coordinator`: the public face that starts, serves and stops it all.

#![deny(missing_docs)]

mod channel;
mod clock;
mod config;
mod coordinator;
mod delta;
mod durability;
mod epoch;
mod error;
mod flush;
mod flusher;
mod handle;
mod lead;
mod role;
mod shared;
mod status;
mod sync;
mod view;
mod watermark;
mod writer;

pub use channel::{RejectReason, Rejected, WriteChannel};
pub use clock::{Clock, ClockWatcher, ManualClock, SystemClock};
pub use config::Config;
pub use coordinator::{Coordinator, Shutdown, Unflushed};
pub use delta::{Delta, Freeze, Frozen};
pub use durability::Durability;
pub use epoch::{Epoch, EpochRange};
pub use error::{Error, Failure, Result};
pub use flusher::{Flusher, RetryPolicy};
pub use handle::{HandleWait, WriteHandle};
pub use view::{FrozenLayer, Layer, Subscription, SubscriptionError, View, ViewGuard};
pub use watermark::EpochWait;

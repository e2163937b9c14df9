//! [`Shared`]: the state of one pipeline that its coordinator, its two threads and whoever
//! plays its two roles share: the channels' inbox, the watermarks, the views, the frozen
//! batches waiting for storage, and the writer role's current delta. The channels and write
//! handles hold narrower parts of it (the inbox, the marks).
//!
//! The roles work on it from their own modules ([`role`](crate::role) applies and freezes,
//! [`flush`](crate::flush) stores and syncs, [`lead`](crate::lead) does both for a blocked
//! waiter), and the [`coordinator`](crate::coordinator) owns it; this module imports none of
//! them.
//!
//! Invariants:
//! - one holder of the writer role at a time applies writes and freezes (the writer thread, or
//!   a producer applying its own write, or a leading waiter freezing), and one holder of the
//!   flush role at a time stores batches, oldest first (the flush thread or a leading waiter),
//!   so epochs reach storage as a growing prefix;
//! - frozen batches not yet stored are at most [`Config::max_frozen`];
//! - every batch frozen is either stored or, after a failure, handed back by the coordinator's
//!   shutdown: no applied write is dropped silently;
//! - once the pipeline failed, the channels are stopped and every wait that had not been
//!   satisfied ends with the failure.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::channel::Inbox;
use crate::clock::Clock;
use crate::config::Config;
use crate::delta::Freeze;
use crate::epoch::{Epoch, EpochRange};
use crate::error::Failure;
use crate::sync::{AtomicBool, Condvar, Mutex};
use crate::view::{DeltaCell, Views};
use crate::watermark::Watermarks;

/// A frozen batch waiting for (or in) its flush.
pub(crate) struct Job<B> {
    pub(crate) epochs: EpochRange,
    pub(crate) batch: B,
}

/// The frozen batches waiting for storage, oldest first.
pub(crate) struct JobState<B> {
    pub(crate) queue: VecDeque<Job<B>>,
    /// The writer has exited: store what is queued, then exit.
    pub(crate) closing: bool,
}

/// The writer role's state: the current delta (see [`role`](crate::role)).
pub(crate) struct Role<D: Freeze> {
    pub(crate) cell: DeltaCell<D>,
}

/// State shared by the coordinator, its two threads and the holders of its roles, for a
/// pipeline with delta `D`, storage snapshot `S` and flusher error `E`.
pub(crate) struct Shared<D: Freeze, S, E> {
    pub(crate) name: Arc<str>,
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) inbox: Arc<Inbox<D::Write, D::Applied, E>>,
    pub(crate) marks: Arc<Watermarks<E>>,
    pub(crate) views: Views<D, S>,
    pub(crate) jobs: Mutex<JobState<D::Batch>>,
    pub(crate) jobs_changed: Condvar,
    /// The writer role: the current delta.
    pub(crate) role: Mutex<Role<D>>,
    /// The current delta was lost to a panic in `apply` or `freeze`.
    pub(crate) lost: AtomicBool,
}

impl<D: Freeze, S, E> Shared<D, S, E> {
    /// Wakes the flush thread (under its lock, so that no wake-up is lost).
    pub(crate) fn poke_flusher(&self) {
        let _j = self.jobs.lock();
        self.jobs_changed.notify_all();
    }
}

impl<D: Freeze, S, E: std::fmt::Display> Shared<D, S, E> {
    /// Puts the pipeline in its failed state: `first` is the first epoch that did not reach
    /// the level it was on its way to.
    pub(crate) fn fail(&self, first: Epoch, cause: Failure<E>) {
        tracing::error!(pipeline = %self.name, first = first.get(), error = %cause, "write pipeline failed");
        // Stopped and failed together, under the inbox lock: whoever sees the failure and
        // then sends a write finds the channels stopped, and a refused write finds the failure.
        let wakers = {
            let mut s = self.inbox.state.lock();
            s.stopped = true;
            self.marks.fail(first, cause)
        };
        self.inbox.writer.notify_all();
        self.inbox.space.notify_all();
        wakers.into_iter().for_each(std::task::Waker::wake);
    }
}

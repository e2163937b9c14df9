//! The first two stages: the mutable [`Delta`] that writes are applied to, and [`Freeze`],
//! which turns a full delta into an immutable batch for the flusher plus a read view of it.
//!
//! Invariants the coordinator keeps for every implementation:
//! - `apply` and `freeze` run only under the writer role (on the writer thread, or on a
//!   producer's or a waiter's thread that holds it), one at a time, on the current delta;
//! - readers see the current delta only through a shared lock, so `apply` never runs while a
//!   reader looks at it, and a reader sees the delta between two whole writes;
//! - `freeze` runs while the writer role holds the delta's lock: it must be cheap (moving a map
//!   into an `Arc` is the model), because nothing is applied while it runs;
//! - a delta holding no write is never frozen.

use crate::epoch::Epoch;

/// A mutable set of writes not yet frozen.
///
/// `Sync` because readers look at it (through a lock) while the writer role fills it.
pub trait Delta: Send + Sync + 'static {
    /// One write as producers send it.
    type Write: Send + 'static;
    /// What applying a write returns to its producer (the old value, a conflict, `()`...).
    type Applied: Send + 'static;

    /// Applies `write`, which the pipeline numbered `epoch`.
    fn apply(&mut self, epoch: Epoch, write: Self::Write) -> Self::Applied;

    /// An estimate of the bytes this delta holds; compared with the freeze threshold after
    /// each write.
    fn size_bytes(&self) -> usize;
}

/// Freezing a [`Delta`]: the step between the writer and the flusher.
pub trait Freeze: Delta + Sized {
    /// The immutable batch handed to the flusher (kept until it is stored, for retries).
    type Batch: Send + 'static;
    /// What readers see of a frozen delta until its batch is in the storage snapshot.
    type FrozenView: Send + Sync + 'static;

    /// Turns this delta into its batch and read view, and starts the next delta, carrying over
    /// whatever context the next one needs (a sequence number, a schema, a reused allocation).
    fn freeze(self) -> Frozen<Self>;
}

/// The parts a [`Freeze::freeze`] returns.
#[derive(Debug)]
pub struct Frozen<D: Freeze> {
    /// The batch for the flusher.
    pub batch: D::Batch,
    /// The read view of the same writes.
    pub view: D::FrozenView,
    /// The empty delta that takes the next writes.
    pub next: D,
}

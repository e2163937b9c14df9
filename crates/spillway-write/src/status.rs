//! [`DeltaStatus`]: what the writer thread needs to know of the current delta to decide on a
//! freeze, kept in the channels' inbox so that it reads it under the lock it waits on.
//!
//! Invariant: it changes only under both the writer role's lock and the inbox lock (see
//! [`role`](crate::role)), so a reader holding either lock sees it consistent.

use std::time::Duration;

use crate::epoch::Epoch;

/// The current delta as the writer thread sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeltaStatus {
    /// The first epoch of the current delta.
    pub(crate) first: Epoch,
    /// The epoch the next write gets.
    pub(crate) next: Epoch,
    /// The current delta's size, as of its last write.
    pub(crate) size: usize,
    /// Clock time of the current delta's first write.
    pub(crate) opened_at: Option<Duration>,
}

impl DeltaStatus {
    pub(crate) fn new(size: usize) -> DeltaStatus {
        DeltaStatus {
            first: Epoch::FIRST,
            next: Epoch::FIRST,
            size,
            opened_at: None,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.next == self.first
    }

    /// The last epoch applied.
    pub(crate) fn last(&self) -> Epoch {
        Epoch::new(self.next.get() - 1)
    }

    /// True while the current delta takes another write: below the freeze size, or empty.
    pub(crate) fn has_room(&self, freeze_bytes: usize) -> bool {
        self.size < freeze_bytes || self.is_empty()
    }

    /// Hands out the next epoch, starting the delta's timer with its first write.
    pub(crate) fn take_epoch(&mut self, now: impl FnOnce() -> Duration) -> Epoch {
        let epoch = self.next;
        self.next = epoch.next();
        if self.opened_at.is_none() {
            self.opened_at = Some(now());
        }
        epoch
    }
}

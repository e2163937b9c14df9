//! The third stage: a [`Flusher`] stores frozen batches and makes storage durable; and the
//! [`RetryPolicy`] the coordinator follows when it fails.
//!
//! Invariants: batches are flushed one at a time, in epoch order, by whoever holds the flush
//! role (the pipeline's flush thread, or a thread waiting for the batch to be stored), so a
//! flusher is `Send` but never used by two threads at once; a batch is handed to
//! [`Flusher::write`] again (the same batch, by reference) after a failure until it succeeds
//! or the retries run out, so `write` must be idempotent for a batch it may have half-stored;
//! `sync` is never retried (after a failed sync the state of the storage is unknown, so the
//! pipeline stops).

use std::fmt;
use std::time::Duration;

use crate::epoch::EpochRange;

/// Stores frozen batches.
///
/// A key-value store over a file fits it as: `write` = append the batch's records and hand
/// them to the OS, returning what readers should see of the file (an index, a handle, or `()`
/// if readers go to the file); `sync` = `fdatasync` the file (and `fsync` its directory if the
/// file is new). Its errors reach the waiters as themselves, in [`Failure::Flusher`].
///
/// [`Failure::Flusher`]: crate::Failure::Flusher
pub trait Flusher: Send + 'static {
    /// The frozen batch it stores (the delta's [`Freeze::Batch`](crate::Freeze::Batch)).
    type Batch: Send + 'static;
    /// What readers see of storage after a write.
    type Snapshot: Send + Sync + 'static;
    /// What a failed `write` or `sync` reports.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores `batch`, the writes of `epochs`, so that they survive a crash of this process
    /// ([`Durability::Written`](crate::Durability::Written)), and returns the storage snapshot
    /// that includes them.
    fn write(
        &mut self,
        batch: &Self::Batch,
        epochs: EpochRange,
    ) -> Result<Self::Snapshot, Self::Error>;

    /// Makes everything written so far survive power loss
    /// ([`Durability::Durable`](crate::Durability::Durable)).
    fn sync(&mut self) -> Result<(), Self::Error>;
}

/// What to do when [`Flusher::write`] fails: try the same batch again up to `max_retries`
/// times, waiting `backoff` before the first retry and twice as long before each next one (up
/// to `max_backoff`); then give up and fail the pipeline. Each wait counts on the pipeline's
/// clock from the start of the failed attempt, so an attempt that took longer than the wait
/// is retried at once.
#[derive(Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 fails the pipeline on the first error.
    pub max_retries: u32,
    /// Wait before the first retry.
    pub backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// No retry: the first failure fails the pipeline.
    pub fn never() -> RetryPolicy {
        RetryPolicy {
            max_retries: 0,
            backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        }
    }

    /// The wait before retry number `retry` (1 for the first), or `None` if retries are used up.
    pub(crate) fn backoff_before(&self, retry: u32) -> Option<Duration> {
        if retry == 0 || retry > self.max_retries {
            return None;
        }
        let factor = 1u32.checked_shl(retry - 1).unwrap_or(u32::MAX);
        Some(self.backoff.saturating_mul(factor).min(self.max_backoff))
    }
}

impl Default for RetryPolicy {
    /// Three retries after 10 ms, 20 ms and 40 ms.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RetryPolicy({} retries, backoff {:?} doubling to {:?})",
            self.max_retries, self.backoff, self.max_backoff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stops_after_max_retries() {
        let p = RetryPolicy {
            max_retries: 5,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        };
        let waits: Vec<_> = (1..=6).map(|r| p.backoff_before(r)).collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(waits, vec![ms(10), ms(20), ms(40), ms(50), ms(50), None]);
        assert_eq!(p.backoff_before(0), None);
        assert_eq!(RetryPolicy::never().backoff_before(1), None);
        let huge = RetryPolicy {
            max_retries: u32::MAX,
            ..p
        };
        assert_eq!(huge.backoff_before(200), ms(50));
    }
}

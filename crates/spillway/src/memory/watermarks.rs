//! [`Watermarks`]: where a pool's background page-out starts and where it stops.
//!
//! Eviction in the caller keeps resident bytes within the hard limit: a reservation that would
//! pass it evicts first. Page-out between the marks batches that work and, where a pool runs a
//! background thread, takes it off the callers' path: once the resident bytes pass the *start*
//! mark, the thread pages out down to the *stop* mark, and a caller that finds the budget full
//! before the thread got there does the same page-out itself. Both marks are percent of the
//! hard limit, close to it by default (98 % and 95 %), so that a pool under steady pressure
//! holds 95 to 100 % of its budget rather than leaving a fifth of it unused; marks of 100 %
//! make a caller evict exactly what it needs.
//!
//! Invariant: `0 < stop <= start <= 100` (percent), checked by [`Watermarks::new`].

use super::budget::BudgetError;

/// Where background page-out starts and where it stops, in percent of the budget's hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    start_percent: u8,
    stop_percent: u8,
}

impl Watermarks {
    /// Default start mark, in percent of the hard limit.
    pub const DEFAULT_START_PERCENT: u8 = 98;
    /// Default stop mark, in percent of the hard limit.
    pub const DEFAULT_STOP_PERCENT: u8 = 95;

    /// Background page-out starts when resident bytes pass `start_percent` of the hard limit and
    /// pages out down to `stop_percent`. Fails unless `0 < stop <= start <= 100`.
    pub fn new(start_percent: u8, stop_percent: u8) -> Result<Watermarks, BudgetError> {
        if !(0 < stop_percent && stop_percent <= start_percent && start_percent <= 100) {
            return Err(BudgetError::InvalidConfig(
                "page-out watermarks must satisfy 0 < stop <= start <= 100 (percent)",
            ));
        }
        Ok(Watermarks {
            start_percent,
            stop_percent,
        })
    }

    /// The start mark, in percent of the hard limit.
    pub fn start_percent(&self) -> u8 {
        self.start_percent
    }

    /// The stop mark, in percent of the hard limit.
    pub fn stop_percent(&self) -> u8 {
        self.stop_percent
    }

    /// The start mark in bytes, under a hard limit of `limit` bytes.
    pub fn start_bytes(&self, limit: u64) -> u64 {
        percent_of(limit, self.start_percent)
    }

    /// The stop mark in bytes, under a hard limit of `limit` bytes.
    pub fn stop_bytes(&self, limit: u64) -> u64 {
        percent_of(limit, self.stop_percent)
    }

    /// True once `resident` bytes pass the start mark: page-out should run, down to the stop
    /// mark.
    pub fn passed(&self, limit: u64, resident: u64) -> bool {
        resident > self.start_bytes(limit)
    }
}

impl Default for Watermarks {
    fn default() -> Watermarks {
        Watermarks {
            start_percent: Self::DEFAULT_START_PERCENT,
            stop_percent: Self::DEFAULT_STOP_PERCENT,
        }
    }
}

fn percent_of(limit: u64, percent: u8) -> u64 {
    // u128 so that limits near u64::MAX do not overflow; the result is <= limit.
    ((u128::from(limit) * u128::from(percent)) / 100) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_out_runs_from_the_start_mark_down_to_the_stop_mark() {
        let w = Watermarks::default();
        assert_eq!((w.start_percent(), w.stop_percent()), (98, 95));
        assert_eq!((w.start_bytes(1000), w.stop_bytes(1000)), (980, 950));
        assert!(!w.passed(1000, 980));
        assert!(w.passed(1000, 981));
        let stop = (u128::from(u64::MAX) * 95 / 100) as u64;
        assert_eq!(w.stop_bytes(u64::MAX), stop);
        assert!(w.passed(u64::MAX, u64::MAX));
        let w = Watermarks::new(70, 60).unwrap();
        assert!(!w.passed(1000, 700));
        assert!(w.passed(1000, 701));
        assert_eq!(w.stop_bytes(1000), 600);
        assert!(!Watermarks::new(100, 100).unwrap().passed(1000, 1000));
    }

    #[test]
    fn bad_marks_are_refused() {
        for (start, stop) in [(90, 95), (0, 0), (50, 0), (101, 90)] {
            assert!(Watermarks::new(start, stop).is_err(), "{start}, {stop}");
        }
    }
}

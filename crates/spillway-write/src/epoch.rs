//! [`Epoch`]s: the position of a write in the pipeline's one total order.
//!
//! Invariants: the writer thread hands out epochs `1, 2, 3, ...` in the order it applies writes,
//! with no gap and no repeat; [`Epoch::ZERO`] is never a write's epoch and means "nothing yet"
//! in watermarks. An [`EpochRange`] is never empty.

use std::fmt;

/// The sequence number of a write: `1` for the first write a pipeline applies, then one more
/// for each write after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(u64);

impl Epoch {
    /// Before the first write; the value of a watermark that nothing has passed.
    pub const ZERO: Epoch = Epoch(0);
    /// The first write's epoch.
    pub const FIRST: Epoch = Epoch(1);

    /// An epoch from its number.
    pub const fn new(n: u64) -> Epoch {
        Epoch(n)
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The epoch after this one.
    pub const fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The epochs of the writes in one frozen batch: `first..=last`, never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochRange {
    first: Epoch,
    last: Epoch,
}

impl EpochRange {
    /// The range `first..=last`; `None` if it would be empty.
    pub fn new(first: Epoch, last: Epoch) -> Option<EpochRange> {
        (first <= last && first > Epoch::ZERO).then_some(EpochRange { first, last })
    }

    /// The first epoch in the range.
    pub fn first(&self) -> Epoch {
        self.first
    }

    /// The last epoch in the range.
    pub fn last(&self) -> Epoch {
        self.last
    }

    /// How many writes the range holds.
    pub fn len(&self) -> u64 {
        self.last.0 - self.first.0 + 1
    }

    /// Always false: a range holds at least one write. (Here for the `len` convention.)
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for EpochRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_never_empty() {
        assert!(EpochRange::new(Epoch::new(3), Epoch::new(2)).is_none());
        assert!(EpochRange::new(Epoch::ZERO, Epoch::new(2)).is_none());
        let r = EpochRange::new(Epoch::new(2), Epoch::new(4)).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r.first(), r.last()), (Epoch::new(2), Epoch::new(4)));
        assert_eq!(r.to_string(), "2..=4");
    }

    #[test]
    fn epochs_order_by_number() {
        assert!(Epoch::ZERO < Epoch::FIRST);
        assert_eq!(Epoch::FIRST.next(), Epoch::new(2));
        assert_eq!(Epoch::new(7).get(), 7);
    }
}

//! [`Numbers`]: small numbers handed out lowest first and given back, for the tables indexed
//! by them (the directory of the cells' chunks, the process's table of pools).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Numbers never taken start at `next`; numbers given back wait in `freed` (a min-heap), and
/// are taken again, lowest first, before any new one.
#[derive(Debug)]
pub(crate) struct Numbers {
    next: usize,
    freed: BinaryHeap<Reverse<u32>>,
}

impl Numbers {
    pub const fn new() -> Numbers {
        Numbers {
            next: 0,
            freed: BinaryHeap::new(),
        }
    }

    /// A number below `capacity` that is not taken, or `None` if all are.
    pub fn take(&mut self, capacity: usize) -> Option<u32> {
        if let Some(Reverse(n)) = self.freed.pop() {
            return Some(n);
        }
        if self.next == capacity {
            return None;
        }
        self.next += 1;
        Some((self.next - 1) as u32)
    }

    /// Gives back `number`, which was taken.
    pub fn give_back(&mut self, number: u32) {
        debug_assert!((number as usize) < self.next);
        self.freed.push(Reverse(number));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_taken_lowest_first_up_to_the_capacity() {
        let mut n = Numbers::new();
        assert_eq!(
            [n.take(3), n.take(3), n.take(3)],
            [Some(0), Some(1), Some(2)]
        );
        assert_eq!(n.take(3), None, "every number is taken");
        n.give_back(2);
        n.give_back(0);
        assert_eq!([n.take(3), n.take(3), n.take(3)], [Some(0), Some(2), None]);
    }
}

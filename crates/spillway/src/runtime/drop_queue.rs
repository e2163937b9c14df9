//! Iterative dropping of deep graphs, and what caused each drop.
//!
//! Dropping a value drops the handles inside it; dropping the last handle of a child drops the
//! child's value, and so on: a linked list of a million nodes would recurse a million frames
//! deep. Instead, values are handed to [`defer`]: the outermost call on a thread drops them one
//! by one in a loop, and nested calls only queue.
//!
//! Each queued value remembers whether it descends from a page-out ([`defer_evicted`]): the
//! value a page-out takes out of memory, the handles inside it, their values, and so on. A
//! handle dropped in such a drop is a child of an object that is stored, so its object stays
//! reachable through that record: the handle marks its entry so ([`in_eviction`]), and the
//! entry's last handle going later does not count towards garbage collection. Any other drop
//! inherits the cause of the drop it happens in.

use std::any::Any;
use std::cell::{Cell, RefCell};

// Thread-locals from the sync module: under shuttle each of its threads has its own, as each
// real thread does (shuttle runs all of them on one).
crate::sync::thread_local! {
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    /// True while the value being dropped descends from a page-out.
    static EVICTED: Cell<bool> = const { Cell::new(false) };
    static QUEUE: RefCell<Vec<(Box<dyn Any>, bool)>> = const { RefCell::new(Vec::new()) };
}

/// Drops `value` now, or soon after if a drop is already running on this thread.
pub(crate) fn defer(value: Box<dyn Any>) {
    run(value, EVICTED.with(Cell::get));
}

/// Drops `value`, which a page-out took out of memory: see the module docs.
pub(crate) fn defer_evicted(value: Box<dyn Any>) {
    run(value, true);
}

/// True if the drop running on this thread descends from a page-out.
pub(crate) fn in_eviction() -> bool {
    EVICTED.with(Cell::get)
}

fn run(value: Box<dyn Any>, evicted: bool) {
    if DRAINING.with(Cell::get) {
        QUEUE.with(|q| q.borrow_mut().push((value, evicted)));
        return;
    }
    DRAINING.with(|d| d.set(true));
    // Reset even if a user's `Drop` panics: otherwise every later drop on this thread would
    // only queue, and nothing would be freed again.
    let _draining = Draining;
    EVICTED.with(|e| e.set(evicted));
    drop(value);
    while let Some((next, evicted)) = QUEUE.with(|q| q.borrow_mut().pop()) {
        EVICTED.with(|e| e.set(evicted));
        drop(next);
    }
}

struct Draining;

impl Drop for Draining {
    fn drop(&mut self) {
        DRAINING.with(|d| d.set(false));
        EVICTED.with(|e| e.set(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records, when dropped, whether its drop descends from a page-out, then drops what it
    /// holds through the queue.
    struct Node {
        seen: std::rc::Rc<RefCell<Vec<(u32, bool)>>>,
        id: u32,
        child: Option<Box<Node>>,
    }

    impl Drop for Node {
        fn drop(&mut self) {
            self.seen.borrow_mut().push((self.id, in_eviction()));
            if let Some(c) = self.child.take() {
                defer(c);
            }
        }
    }

    fn chain(seen: &std::rc::Rc<RefCell<Vec<(u32, bool)>>>, ids: std::ops::Range<u32>) -> Node {
        let mut node: Option<Box<Node>> = None;
        for id in ids.rev() {
            node = Some(Box::new(Node {
                seen: seen.clone(),
                id,
                child: node,
            }));
        }
        *node.expect("a non-empty chain")
    }

    #[test]
    fn a_drop_inherits_its_cause_and_the_flag_is_cleared_after() {
        let seen = std::rc::Rc::new(RefCell::new(Vec::new()));
        defer_evicted(Box::new(chain(&seen, 0..3)));
        assert!(!in_eviction());
        defer(Box::new(chain(&seen, 10..12)));
        assert_eq!(
            *seen.borrow(),
            [(0, true), (1, true), (2, true), (10, false), (11, false)]
        );
    }

    #[test]
    fn drops_queued_inside_another_keep_the_cause_they_were_given() {
        // A page-out that happens inside an ordinary drop queues as evicted; what is queued
        // by the ordinary drop stays ordinary.
        struct Outer {
            seen: std::rc::Rc<RefCell<Vec<(u32, bool)>>>,
        }
        impl Drop for Outer {
            fn drop(&mut self) {
                defer_evicted(Box::new(chain(&self.seen, 0..2)));
                defer(Box::new(chain(&self.seen, 10..11)));
            }
        }
        let seen = std::rc::Rc::new(RefCell::new(Vec::new()));
        defer(Box::new(Outer { seen: seen.clone() }));
        let mut got = seen.borrow().clone();
        got.sort();
        assert_eq!(got, [(0, true), (1, true), (10, false)]);
    }
}

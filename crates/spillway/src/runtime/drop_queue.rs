//! Iterative dropping of deep graphs.
//!
//! Dropping a value drops the handles inside it; dropping the last handle of a child drops the
//! child's value, and so on: a linked list of a million nodes would recurse a million frames
//! deep. Instead, values are handed to [`defer`]: the outermost call on a thread drops them one
//! by one in a loop, and nested calls only queue.

use std::any::Any;
use std::cell::{Cell, RefCell};

thread_local! {
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    static QUEUE: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Drops `value` now, or soon after if a drop is already running on this thread.
pub(crate) fn defer(value: Box<dyn Any>) {
    if DRAINING.with(Cell::get) {
        QUEUE.with(|q| q.borrow_mut().push(value));
        return;
    }
    DRAINING.with(|d| d.set(true));
    // Reset even if a user's `Drop` panics: otherwise every later drop on this thread would
    // only queue, and nothing would be freed again.
    let _draining = Draining;
    drop(value);
    while let Some(next) = QUEUE.with(|q| q.borrow_mut().pop()) {
        drop(next);
    }
}

struct Draining;

impl Drop for Draining {
    fn drop(&mut self) {
        DRAINING.with(|d| d.set(false));
    }
}

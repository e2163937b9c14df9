//! Collections built on a [`Pool`](crate::Pool): keyed structures of millions of entries whose
//! parts are paged values, so that they page in only what an operation touches.
//!
//! - [`PagedMap`]: a persistent ordered map, a B+-tree of immutable, content-addressed nodes
//!   (`node`); a change copies one root-to-leaf path and shares the rest, so a clone is a
//!   snapshot and two versions store their common nodes once.
//! - [`PagedSet`]: an ordered set over it.
//!
//! This layer sits above the runtime and uses only what a pool offers its handles: inserting a
//! value, reading it through its handle, and named roots.

mod map;
mod node;
mod set;

pub use map::{MapOptions, PagedMap, Range};
pub use node::{Item, Node};
pub use set::PagedSet;

//! Memory: the byte budget and the eviction policies that keep resident values within it.
//!
//! This layer is pure bookkeeping: synchronous, no I/O, no knowledge of values or stores. The
//! paging runtime drives it:
//!
//! - [`Budget`] counts resident bytes against a hard limit, reports a [`Pressure`] level, and
//!   hands out [`Reservation`]s for page-ins; [`Budget::try_reserve`] refuses to pass the hard
//!   limit and says how much must be evicted first.
//! - [`Watermarks`] say where a pool's background page-out starts and stops (98 % and 95 % of
//!   the budget by default), so that a pool under steady pressure uses its budget.
//! - An eviction policy orders the resident entries and picks victims by bytes: S3-FIFO (the
//!   default, scan-resistant, as published) or LRU (for comparison), chosen with
//!   [`PolicyKind`] and sized by the budget.
//!
//! A policy sees exactly the accesses a cache simulator would see for the same requests: a value
//! coming into memory (created, or paged in) is a miss, told as an insertion after the room for
//! it was made; a read of a resident value is a use; a value that S3-FIFO evicts from its small
//! queue leaves a ghost, under its content key, which a later page-in of that content finds.
//! The crate's tests replay traces through a pool and through an independent simulator and
//! require the same misses.
//!
//! Invariant the runtime relies on: the budget never evicts and the policy never accounts; the
//! runtime keeps the two in step (insert into the policy and add to the budget together; evict
//! through the policy, then subtract from the budget what it wrote out and dropped).

mod budget;
mod kind;
mod lru;
mod policy;
mod s3fifo;
mod watermarks;

pub use budget::{Budget, BudgetConfig, BudgetError, BudgetStats, Pressure, Reservation};
pub use kind::{PolicyKind, UnknownPolicy};
pub use watermarks::Watermarks;

// The pool chooses a policy by [`PolicyKind`]; the policies themselves are the runtime's (a
// custom policy cannot be handed to a pool). The `testing` feature makes them public for the
// crate's own tests (a policy driven by a trace, against a simulator).
#[cfg(feature = "testing")]
pub use lru::Lru;
#[cfg(feature = "testing")]
pub use policy::{EntryId, EvictionPolicy, Residents, Victim};
#[cfg(not(feature = "testing"))]
pub(crate) use policy::{EvictionPolicy, Residents, Victim};
#[cfg(feature = "testing")]
pub use s3fifo::{S3Fifo, S3FifoConfig, S3FifoStats};

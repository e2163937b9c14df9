//! Memory: the byte budget and the eviction policies that keep resident values within it.
//!
//! This layer is pure bookkeeping: synchronous, no I/O, no knowledge of values or stores. The
//! paging runtime drives it:
//!
//! - [`Budget`] counts resident bytes against a hard limit, reports a [`Pressure`] level, and
//!   hands out [`Reservation`]s for page-ins; [`Budget::try_reserve`] refuses to pass the hard
//!   limit and says how much must be evicted first.
//! - An eviction policy orders the resident entries and picks victims by bytes: S3-FIFO (the
//!   default, scan-resistant) or LRU (for comparison), chosen with [`PolicyKind`].
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

//! Memory: the byte budget and the eviction policies that keep resident values within it.
//!
//! This layer is pure bookkeeping: synchronous, no I/O, no knowledge of values or stores. The
//! paging runtime drives it:
//!
//! - [`Budget`] counts resident bytes against a hard limit, reports a [`Pressure`] level, and
//!   hands out [`Reservation`]s for page-ins; [`Budget::try_reserve`] refuses to pass the hard
//!   limit and says how much must be evicted first.
//! - An [`EvictionPolicy`] orders the resident entries and picks victims by bytes:
//!   [`S3Fifo`] (the default, scan-resistant) or [`Lru`] (for comparison), chosen with
//!   [`PolicyKind`].
//!
//! Invariant the runtime relies on: the budget never evicts and the policy never accounts; the
//! runtime keeps the two in step (insert into the policy and add to the budget together; evict
//! through the policy, then subtract from the budget what it wrote out and dropped).

mod budget;
mod lru;
mod policy;
mod s3fifo;

pub use budget::{Budget, BudgetConfig, BudgetError, BudgetStats, Pressure, Reservation};
pub use lru::Lru;
pub use policy::{EntryId, EvictionPolicy, PolicyKind, Residents, UnknownPolicy};
pub use s3fifo::{S3Fifo, S3FifoConfig, S3FifoStats};

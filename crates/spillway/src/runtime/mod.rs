//! The paging runtime: [`Pool`], [`Paged<T>`] handles and [`Guard`]s.
//!
//! A pool holds values in memory up to a byte budget. Values are immutable and reached through
//! handles; when the budget is exceeded the coldest unpinned values (chosen by the eviction
//! policy of [`memory`](crate::memory)) are stored, bottom-up as a Merkle DAG, and dropped from
//! memory, to come back on their next access. The docs of the private modules `entry` (an
//! object's lifecycle) and `pool` (the invariants the pool keeps) say how.

mod drop_queue;
pub(crate) mod entry;
mod handle;
pub(crate) mod pool;
mod stats;
mod value;

pub use handle::{GetFuture, Guard, Paged};
pub use pool::{GcOptions, GcReport, MAX_MISSING_LISTED, Pool, PoolBuilder};
pub use stats::PoolStats;
pub use value::{DeepSize, Pageable};

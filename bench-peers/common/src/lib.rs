//! What every peer contender shares with the harness: the harness's own `shared.rs`, compiled
//! here by path so that the job, the measurement and the workloads are one definition.

#[path = "../../../crates/spillway-bench/src/shared.rs"]
mod shared;

pub use shared::*;

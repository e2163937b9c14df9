//! TEMPORARY placeholder for the memory layer (replaced by the memory-layer branch).
pub mod policy;
pub use policy::{EntryId, EvictionPolicy, PolicyKind, Residents};

/// Pressure levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Pressure {
    /// < 70 %.
    #[default]
    Normal,
    /// < 85 %.
    Moderate,
    /// < 95 %.
    High,
    /// ≥ 95 %.
    Critical,
}

impl Pressure {
    /// Level for resident/limit.
    pub fn of(resident: u64, limit: u64) -> Pressure {
        let f = resident as f64 / limit.max(1) as f64;
        if f < 0.70 { Pressure::Normal } else if f < 0.85 { Pressure::Moderate } else if f < 0.95 { Pressure::High } else { Pressure::Critical }
    }
}

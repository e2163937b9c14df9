//! The eviction-policy trait, and [`PolicyKind`] to pick an implementation.
//!
//! A policy only orders entries: it never touches values, storage or the budget. The runtime
//! tells it about every resident, unpinned-or-not entry ([`EvictionPolicy::insert`], `resize`,
//! `remove`) and asks it for victims when the budget is under pressure; while choosing, the
//! policy asks the runtime through [`Residents`] how often an entry was hit and whether it can go.
//!
//! Contract every implementation keeps (checked by the same property tests):
//! - `evict` returns only entries it tracks, each at most once, with the size it last recorded,
//!   and forgets them;
//! - `evict` never returns an entry for which [`Residents::can_evict`] said false; such entries
//!   stay tracked;
//! - `evict` returns at least the bytes asked for whenever the evictable entries add up to that;
//! - `evict` does a bounded amount of work per call and terminates even if every entry is pinned;
//! - after `remove(id)`, `id` is not returned until it is inserted again;
//! - [`EvictionPolicy::tracked_bytes`] is the sum of the sizes of the tracked entries.

use std::fmt;
use std::str::FromStr;

use super::lru::Lru;
use super::s3fifo::S3Fifo;

/// The runtime's identifier of a resident entry.
pub type EntryId = u64;

/// What the policy may ask the runtime about an entry while choosing victims.
pub trait Residents {
    /// Hits since the policy last asked, and reset to zero (the runtime keeps a small saturating
    /// counter per entry, bumped on each access without taking any lock).
    fn take_hits(&mut self, id: EntryId) -> u8;
    /// False while the entry is pinned (a guard is alive) or cannot be written out now; the
    /// policy then keeps it and moves on.
    fn can_evict(&mut self, id: EntryId) -> bool;
}

/// Orders resident entries and chooses which to evict.
pub trait EvictionPolicy: Send + std::fmt::Debug {
    /// A new resident entry of `bytes`; `ghost` is a stable 64-bit id of its content (e.g. a
    /// prefix of its content key) if it has one, used to recognise entries evicted recently.
    ///
    /// Inserting an id that is already tracked replaces it.
    fn insert(&mut self, id: EntryId, bytes: u64, ghost: Option<u64>);
    /// The entry's resident size changed. Unknown ids are ignored.
    fn resize(&mut self, id: EntryId, bytes: u64);
    /// The entry left memory for another reason (its last handle was dropped): forget it.
    /// O(1) or amortised O(1). Unknown ids are ignored.
    fn remove(&mut self, id: EntryId);
    /// Accesses recorded by the runtime in order (used by LRU; S3-FIFO ignores them).
    fn record_accesses(&mut self, ids: &[EntryId]) {
        let _ = ids;
    }
    /// True if the policy needs `record_accesses` (the runtime then logs accesses in a buffer).
    fn wants_access_log(&self) -> bool {
        false
    }
    /// Chooses victims totalling at least `bytes` (fewer if not enough are evictable), removes
    /// them from the policy and returns them with their sizes. The runtime then writes them out
    /// and drops them from memory.
    fn evict(&mut self, bytes: u64, residents: &mut dyn Residents) -> Vec<(EntryId, u64)>;
    /// Bytes the policy tracks.
    fn tracked_bytes(&self) -> u64;
    /// Entries the policy tracks.
    fn len(&self) -> usize;
    /// True if the policy tracks no entry.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True if `id` is tracked.
    fn contains(&self, id: EntryId) -> bool;
}

/// Which eviction policy to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PolicyKind {
    /// S3-FIFO by bytes: scan-resistant, the default.
    #[default]
    S3Fifo,
    /// Least recently used by bytes: kept for comparison.
    Lru,
}

impl PolicyKind {
    /// Every kind, the default first.
    pub const ALL: [PolicyKind; 2] = [PolicyKind::S3Fifo, PolicyKind::Lru];

    /// The name used in configuration and on the command line: `s3fifo` or `lru`.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::S3Fifo => "s3fifo",
            PolicyKind::Lru => "lru",
        }
    }

    /// A new, empty policy of this kind.
    pub fn build(self) -> Box<dyn EvictionPolicy> {
        match self {
            PolicyKind::S3Fifo => Box::new(S3Fifo::new()),
            PolicyKind::Lru => Box::new(Lru::new()),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy name that is neither `s3fifo` nor `lru`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown eviction policy {0:?}; expected \"s3fifo\" or \"lru\"")]
pub struct UnknownPolicy(pub String);

impl FromStr for PolicyKind {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<PolicyKind, UnknownPolicy> {
        let wanted = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| UnknownPolicy(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in PolicyKind::ALL {
            assert_eq!(kind.to_string().parse::<PolicyKind>(), Ok(kind));
        }
        assert_eq!("S3-FIFO".parse::<PolicyKind>(), Ok(PolicyKind::S3Fifo));
        assert!("clock".parse::<PolicyKind>().is_err());
        assert_eq!(PolicyKind::default(), PolicyKind::S3Fifo);
        assert!(PolicyKind::Lru.build().wants_access_log());
        assert!(!PolicyKind::S3Fifo.build().wants_access_log());
    }
}

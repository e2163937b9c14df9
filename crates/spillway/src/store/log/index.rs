//! The log store's in-memory index: key → record location (a dense [`KeyTable`]), plus live and total bytes per
//! segment (what compaction needs to choose its victims).
//!
//! Invariant: `live[s]` is the sum of `len` over the entries of `map` located in segment `s`,
//! and `sizes[s]` is the length of segment `s` (for the active segment: bytes appended so far,
//! unwritten ones included). `tail` is the end of the last record appended: the index describes
//! exactly the records before it, which is what a checkpoint needs.

use std::collections::BTreeMap;

use super::table::KeyTable;
use crate::format::checkpoint::{Location, LogPosition};
use crate::key::ContentKey;

#[derive(Debug, Default)]
pub(super) struct Index {
    pub map: KeyTable,
    pub live: BTreeMap<u64, u64>,
    pub sizes: BTreeMap<u64, u64>,
    /// Where the next record goes.
    pub tail: LogPosition,
    /// Log bytes appended since the last index checkpoint.
    pub since_checkpoint: u64,
}

impl Index {
    /// Points `key` at `loc`; returns where it was before.
    pub fn insert(&mut self, key: ContentKey, loc: Location) -> Option<Location> {
        let old = self.map.insert(key, loc);
        if let Some(o) = old {
            self.unaccount(o);
        }
        *self.live.entry(loc.segment).or_default() += u64::from(loc.len);
        old
    }

    /// Forgets `key`; returns where it was.
    pub fn remove(&mut self, key: &ContentKey) -> Option<Location> {
        let old = self.map.remove(key);
        if let Some(o) = old {
            self.unaccount(o);
        }
        old
    }

    fn unaccount(&mut self, loc: Location) {
        if let Some(l) = self.live.get_mut(&loc.segment) {
            *l = l.saturating_sub(u64::from(loc.len));
        }
    }

    pub fn live_bytes(&self) -> u64 {
        self.live.values().sum()
    }

    pub fn disk_bytes(&self) -> u64 {
        self.sizes.values().sum()
    }
}

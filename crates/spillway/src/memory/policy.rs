//! TEMPORARY placeholder.
use std::collections::{HashMap, VecDeque};
/// Id.
pub type EntryId = u64;
/// Residents.
pub trait Residents {
    /// Hits.
    fn take_hits(&mut self, id: EntryId) -> u8;
    /// Evictable.
    fn can_evict(&mut self, id: EntryId) -> bool;
}
/// Policy.
pub trait EvictionPolicy: Send + std::fmt::Debug {
    /// Insert.
    fn insert(&mut self, id: EntryId, bytes: u64, ghost: Option<u64>);
    /// Resize.
    fn resize(&mut self, id: EntryId, bytes: u64);
    /// Remove.
    fn remove(&mut self, id: EntryId);
    /// Accesses.
    fn record_accesses(&mut self, ids: &[EntryId]) { let _ = ids; }
    /// Wants log.
    fn wants_access_log(&self) -> bool { false }
    /// Evict.
    fn evict(&mut self, bytes: u64, residents: &mut dyn Residents) -> Vec<(EntryId, u64)>;
    /// Tracked.
    fn tracked_bytes(&self) -> u64;
    /// Len.
    fn len(&self) -> usize;
}
/// Kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PolicyKind {
    /// S3.
    #[default]
    S3Fifo,
    /// Lru.
    Lru,
}
impl PolicyKind {
    /// Build.
    pub fn build(self) -> Box<dyn EvictionPolicy> { Box::new(Clock::default()) }
}
#[derive(Debug, Default)]
struct Clock { q: VecDeque<EntryId>, sizes: HashMap<EntryId, u64>, bytes: u64 }
impl EvictionPolicy for Clock {
    fn insert(&mut self, id: EntryId, bytes: u64, _g: Option<u64>) { self.q.push_back(id); self.sizes.insert(id, bytes); self.bytes += bytes; }
    fn resize(&mut self, id: EntryId, bytes: u64) { if let Some(s) = self.sizes.get_mut(&id) { self.bytes = self.bytes - *s + bytes; *s = bytes; } }
    fn remove(&mut self, id: EntryId) { if let Some(s) = self.sizes.remove(&id) { self.bytes -= s; } }
    fn evict(&mut self, bytes: u64, r: &mut dyn Residents) -> Vec<(EntryId, u64)> {
        let mut out = Vec::new(); let mut freed = 0; let mut budget = 2 * self.q.len();
        while freed < bytes && budget > 0 { budget -= 1;
            let Some(id) = self.q.pop_front() else { break };
            let Some(&s) = self.sizes.get(&id) else { continue };
            if r.take_hits(id) > 0 || !r.can_evict(id) { self.q.push_back(id); continue; }
            self.sizes.remove(&id); self.bytes -= s; freed += s; out.push((id, s));
        }
        out
    }
    fn tracked_bytes(&self) -> u64 { self.bytes }
    fn len(&self) -> usize { self.sizes.len() }
}

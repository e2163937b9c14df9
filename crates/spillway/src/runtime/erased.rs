//! An object as the parts below `entry` see it: without its value type.
//!
//! The registry, page-out and eviction hold entries of every type side by side, so they know an
//! entry only through [`ErasedEntry`]: its id and key, whether it is stored, and the few
//! operations they apply to it (encode, evict, ask whether it is pinned). `entry::Entry`
//! implements it.

use std::any::Any;

use super::counted::Counted;
use crate::error::Result;
use crate::key::ContentKey;

/// Id of an entry, its address: unique among the live entries of the process (an id is reused
/// only once its entry is gone and forgotten); the eviction policy's name for it.
pub(crate) type EntryId = u64;

/// The result of encoding an entry's value.
pub(crate) enum Encoded {
    /// Payload (where it was appended in the caller's buffer) and child keys; the key is
    /// computed from both.
    Done {
        key: ContentKey,
        children: Vec<ContentKey>,
        payload: std::ops::Range<usize>,
    },
    /// Children not stored yet: encode them first.
    Missing(Vec<ErasedRef>),
    /// Another thread stored the entry (and may have evicted it) meanwhile: nothing to do.
    Stored,
}

/// What the pool needs of an entry without knowing its value type.
pub(crate) trait ErasedEntry: Send + Sync {
    fn id(&self) -> EntryId;
    fn key(&self) -> Option<ContentKey>;
    fn is_stored(&self) -> bool;
    fn mark_stored(&self, key: ContentKey);
    /// Marks the entry as counted in the registry; false if it already was.
    fn mark_registered(&self) -> bool;
    fn set_key(&self, key: ContentKey);
    /// Encodes the value, appending its payload to `out`; appends nothing unless it is
    /// [`Encoded::Done`].
    fn encode(&self, out: &mut Vec<u8>) -> Result<Encoded>;
    fn take_hits(&self) -> u8;
    fn is_pinned(&self) -> bool;
    /// Takes the entry, a victim of the caller's eviction, off the reads that take no lock
    /// (see `hazard`): the first step of evicting it, before the eviction's barrier.
    fn withdraw(&self);
    /// Drops the value from memory if it is resident, stored and unpinned, and no reader named
    /// in `held` (read after the barrier that followed [`withdraw`](Self::withdraw)) is
    /// counting it; returns the bytes released. A value that stays is put back on the reads
    /// that take no lock.
    fn try_evict(&self, held: &super::hazard::Held) -> Option<u64>;
    fn resident_size(&self) -> u64;
    /// The entry as its own type, for the registry's table of that type.
    fn as_any(&self) -> &dyn Any;
}

/// A child handle met during an encode: carried in the codec's "missing" list.
pub(crate) struct ChildRef(pub ErasedRef);

/// A counted entry of any type.
pub(crate) type ErasedRef = Counted<dyn ErasedEntry>;

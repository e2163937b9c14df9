//! [`Durability`]: the levels a write passes through on its way to storage, and which failure
//! each of them survives.

/// How far a write has travelled, and so which failure it survives.
///
/// The levels are ordered: `Applied < Written < Durable`, and reaching one implies the ones
/// below it. A pipeline counts a write `Written` once the [`Flusher::write`] that stored its
/// batch has returned, and `Durable` once a [`Flusher::sync`] after that has returned; so what
/// a level survives is what the flusher promises for that call. For a flusher over files it is:
///
/// | level | survives |
/// |---|---|
/// | `Applied` | nothing: a crash of the process loses it |
/// | `Written` | a crash or `kill -9` of the process |
/// | `Durable` | power loss and kernel crashes too |
///
/// [`Flusher::write`]: crate::Flusher::write
/// [`Flusher::sync`]: crate::Flusher::sync
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Durability {
    /// In the pipeline's memory (applied to the current delta) and visible to every reader of
    /// its views. Survives nothing: a crash of this process loses it.
    Applied,
    /// Stored by the flusher; for files, handed to the operating system (`write(2)` returned).
    /// Survives a crash or `kill -9` of this process; lost if the machine loses power or the
    /// kernel crashes before writeback.
    Written,
    /// Synced by the flusher; for files, the data `fdatasync`ed and any new file's directory
    /// entry `fsync`ed. Survives power loss and kernel crashes (given a disk that honours
    /// flushes).
    Durable,
}

#[cfg(test)]
mod tests {
    use super::Durability;

    #[test]
    fn levels_are_ordered_from_memory_to_stable_storage() {
        assert!(Durability::Applied < Durability::Written);
        assert!(Durability::Written < Durability::Durable);
    }
}

//! spillway keeps objects in memory up to a byte budget and pages the cold ones to storage.
//!
//! The crate is built in layers, each knowing only those below it:
//!
//! 1. [`key`]: content keys (BLAKE3 over payload and child keys);
//! 2. [`mod@format`]: the byte-level on-disk formats (`docs/FORMAT.md`);
//! 3. [`store`]: the [`BlobStore`] trait and its backends, with [`vfs`] underneath them;
//! 4. [`write`](mod@write): the write pipeline (deltas, freeze, background flush, epochs, durability
//!    waits, consistent views, backpressure), its own crate `spillway-write`, re-exported;
//! 5. [`memory`]: the byte budget, pressure levels and eviction policies;
//! 6. [`runtime`]: the [`Pool`] and its [`Paged`] handles.

#![deny(missing_docs)]

pub mod codec;
pub mod error;
pub mod format;
pub mod key;
pub mod memory;
pub mod runtime;
pub mod store;
pub mod vfs;

/// The write pipeline, from the `spillway-write` crate, which depends on nothing of spillway:
/// a generic coordinator on which a database's (or a store's) write path runs. The stores'
/// own write path runs on it ([`LogStore`], [`StoreWriter`](store::StoreWriter)); a pipeline
/// whose flusher fails with [`Error`] reports [`write::Error<Error>`](write::Error), which
/// converts into [`Error::Write`] with `?`.
pub mod write {
    pub use spillway_write::*;
}

#[doc(hidden)]
pub use postcard as __postcard;
pub use runtime::{
    DeepSize, GcOptions, GcReport, Guard, Pageable, Paged, Pool, PoolBuilder, PoolStats,
};

pub use error::{Error, Result};
pub use key::ContentKey;
pub use store::{
    Blob, BlobStore, Durability, LogStore, LogStoreOptions, MemStore, Put, StoreStats,
};

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

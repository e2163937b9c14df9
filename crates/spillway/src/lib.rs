//! spillway keeps objects in memory up to a byte budget and pages the cold ones to storage.
//!
//! The crate is built in layers, each knowing only those below it:
//!
//! 1. [`key`]: content keys (BLAKE3 over payload and child keys);
//! 2. [`format`]: the byte-level on-disk formats (`docs/FORMAT.md`);
//! 3. [`store`]: the [`BlobStore`] trait and its backends, with [`vfs`] underneath them;
//! 4. [`write`]: the write pipeline (deltas, freeze, background flush, epochs, durability
//!    waits, consistent views, backpressure);
//!
//! with the memory manager and paging runtime to come above them.

#![warn(missing_docs)]

pub mod error;
pub mod format;
pub mod key;
pub mod store;
pub mod vfs;
pub mod write;

pub use error::{Error, Result};
pub use key::ContentKey;
pub use store::{
    Blob, BlobStore, Durability, LogStore, LogStoreOptions, MemStore, Put, StoreStats,
};

//! spillway keeps objects in memory up to a byte budget and pages the cold ones to storage.
//!
//! A typical use: a pool over a directory with a budget, values that hold handles to other
//! values, a named root that finds the graph again after a restart.
//!
//! ```
//! use get_size2::GetSize;
//! use serde::{Deserialize, Serialize};
//! use spillway::{Paged, Pool};
//!
//! #[derive(Serialize, Deserialize, GetSize)]
//! struct Author {
//!     name: String,
//! }
//!
//! #[derive(Serialize, Deserialize, GetSize)]
//! struct Book {
//!     title: String,
//!     author: Paged<Author>, // a handle: stored as its own object, loaded when read
//! }
//!
//! fn main() -> spillway::Result<()> {
//!     let dir = tempfile::tempdir().expect("a temporary directory");
//!     {
//!         // Values beyond 64 MiB are paged out to a log store in `dir`.
//!         let pool = Pool::builder().budget(64 << 20).dir(dir.path()).build()?;
//!         let author = pool.insert(Author { name: "Ursula".into() })?;
//!         let book = pool.insert(Book { title: "The Dispossessed".into(), author })?;
//!         assert_eq!(book.get()?.author.get()?.name, "Ursula");
//!         // Stores the graph and names it, durably: it survives the process.
//!         pool.set_root("favourite", &book)?;
//!     } // the pool and its handles dropped: the store is closed
//!
//!     let pool = Pool::builder().budget(64 << 20).dir(dir.path()).build()?;
//!     let book: Paged<Book> = pool.root("favourite")?.expect("the root set before");
//!     let book = book.get()?; // read from the store now, its author when touched
//!     assert_eq!(book.title, "The Dispossessed");
//!     assert_eq!(book.author.get()?.name, "Ursula");
//!     Ok(())
//! }
//! ```
//!
//! [`Paged::get`] returns a [`Guard`], which owns a reference to the value: it may outlive the
//! handle and move between threads. [`Paged::read`] returns a [`Ref`], which borrows the handle
//! and stays on its thread. For a resident value either costs two atomic read-modify-writes,
//! as an `Arc::clone` and its drop do (a `get` takes no lock).
//!
//! The store stays open, and locked against other processes, while any handle of its pool
//! lives, even after the [`Pool`] is dropped: drop the handles too before opening the directory
//! again.
//!
//! # Layers
//!
//! The crate is built in layers, each knowing only those below it:
//!
//! 1. [`key`]: content keys (BLAKE3 over payload and child keys), and the codec that turns
//!    values into payloads and child keys ([`Pool::key_of`]);
//! 2. `format`: the byte-level on-disk formats (`docs/FORMAT.md`);
//! 3. [`store`]: the [`BlobStore`] trait and its backends, with the file-system layer `vfs`
//!    underneath them;
//! 4. [`write`](mod@write): the write pipeline (deltas, freeze, background flush, epochs, durability
//!    waits, consistent views, backpressure), its own crate `spillway-write`, re-exported;
//! 5. [`memory`]: the byte budget, pressure levels and eviction policies;
//! 6. [`runtime`]: the [`Pool`] and its [`Paged`] handles.
//!
//! What a user needs is at the crate root ([`Pool`], [`Paged`], [`LogStore`], [`DirStore`],
//! [`Durability`], ...) and in [`store`], [`runtime`], [`write`](mod@write) and [`memory`] (the
//! policy to choose). `SqliteStore` needs the `sqlite` feature. `format`, `vfs` (with the
//! simulated file system for crash tests), the eviction policies' internals and
//! `LogStore::open_on` / `DirStore::open_on` are public only with the `testing` feature: for this
//! crate's tests and fuzz targets, not a stable API.
//!
//! # Values: the derives, and bytes
//!
//! A value is [`Pageable`] when it implements serde's `Serialize` and `Deserialize` and
//! get-size2's `GetSize` (its deep size, which the budget counts). spillway re-exports the
//! versions it implements against, [`serde`] and [`get_size2`], so that a derive cannot
//! implement another version's trait (a type would then not be `Pageable`, and the compiler
//! says so):
//!
//! - serde's derives work through the re-export, with no serde dependency of your own:
//!   `use spillway::serde::{Deserialize, Serialize};` and `#[serde(crate = "spillway::serde")]`
//!   on the type;
//! - get-size2's derive names its crate as `::get_size2` in the code it generates, so it needs
//!   `get-size2` as a dependency of your crate under that name, at the version of
//!   `spillway::get_size2` (0.11, feature `derive`); manual implementations can go through the
//!   re-export.
//!
//! Byte buffers belong in [`Bytes`] fields, not `Vec<u8>`: serde encodes a `Vec<u8>` as a
//! sequence, one call per byte each way, where a `Bytes` is one length and one copy. The two
//! are stored the same way, so a field can change from one to the other and still read what
//! was stored before.

//!
//! # What the budget counts
//!
//! A pool's budget counts its resident values by their deep sizes (and the container
//! sections it holds beside them, [`Pool::sections`]). The pool's own memory, which grows with
//! the number of handles rather than with the values' sizes, is reported but not counted by
//! default: an entry per object it has handles to (resident or paged out), the registry of
//! live keys, the eviction policy's tables and the store's in-memory index: about 120 bytes
//! per paged-out handle ([`PoolStats::metadata_bytes`], [`PoolStats::store_index_bytes`]).
//! [`PoolBuilder::budget_includes_metadata`] counts it too, up to three quarters of the
//! budget, so that the process's memory follows the budget: the values get what is left.
//!
//! The pool's large tables (the registry's, the policy's, the resident set's) are
//! anonymous mappings of their own, like the store's index, so the copies that their growth
//! and shrinking let go leave the process whatever the allocator's thresholds. Its entries
//! are packed in chunks of their own, apart from the values, so that the pages paged-out
//! values leave free are wholly free; with glibc, page-out asks the allocator to give them
//! back (`malloc_trim`, by the background page-out once an eighth of the budget was paged
//! out, and by [`Pool::shrink_to`]).
//!
//! The process also holds what its allocator keeps. glibc's malloc raises its mmap threshold
//! to the size of every large mapping it frees, after which large values come from the heap
//! and the holes that paged-out values leave there stay in the process. The pool and the log
//! store keep their own large blocks out of glibc's mappings while they run: their large tables
//! and lists are mappings of their own, and the log store's page-out batches (64 KiB) stay in
//! the heap unless one object is larger than about half a batch. A program whose
//! values run to hundreds of KiB can fix the threshold (`mallopt(M_MMAP_THRESHOLD, 128 *
//! 1024)` at start, or `MALLOC_MMAP_THRESHOLD_=131072` in the environment), as the `spillway`
//! tool does: its demo's peak RSS at a 64 MiB budget went from 101–102 MiB to 90–91 MiB, for
//! about a tenth more run time (a mapping and its page faults per large allocation).
//!
//! glibc also gives threads heaps (arenas) of their own. Values made on one thread and paged
//! in again on another sit in two heaps, and a page of the first stays in the process until
//! every value on it is paged out: after a load on one thread, reads on another hold both for
//! a while. A program that loads on one thread and reads on others can cap the arenas
//! (`mallopt(M_ARENA_MAX, 1)` at start, or `MALLOC_ARENA_MAX=1`; more contention on the
//! allocator's lock in exchange). W4's child (200,000 values of 1 KiB under a 20 MB budget,
//! loaded on the main thread, read on a thread of its own, glibc's defaults) peaked at
//! 58.7–61.0 MiB in ten runs, against 60.0–63.0 MiB in five alternating runs of the build
//! before the log store's batches shrank to 64 KiB and its last large lists became mappings of
//! their own. The peak comes as the reads begin: the values paged in fill the reading thread's
//! heap while pages of the loading thread's heap still hold a value or two each; after it the
//! child holds about 56 MiB (one run followed every 10 ms; 59 MiB before, in one run followed
//! second by second).
//!
//! # Changing a stored type
//!
//! Every stored value begins with a type tag: a hash of its type's stable name and the type's
//! schema version (`docs/FORMAT.md`, "Value payload"). Every read checks it before decoding
//! (a page-in of a handle from [`Pool::root`], [`Pool::load`], or a parent's child list,
//! also of a graph another process wrote), so a value read as another type is
//! [`Error::TypeMismatch`], never wrong data. [`Pool::root`] and [`Pool::load`] hand out
//! their handle without reading: the error comes with the first read.
//!
//! - **Name the types you keep.** A type is tagged with the name registered by
//!   [`PoolBuilder::schema`] (or given to [`pageable_dyn!`]), else with its Rust path,
//!   `std::any::type_name`, which Rust does not promise to keep across compilers and which
//!   moving or renaming the type changes. `Pool::builder().schema::<Config>("config", 1)`
//!   fixes the name and the version; the Rust type can then move and be renamed freely.
//! - **Compatible changes keep the version.** A change that reads the old bytes as they are
//!   (a `Vec<u8>` field becoming [`Bytes`], a field renamed, a type renamed under its stable
//!   name) needs nothing.
//! - **Other changes take a new version and an upgrade.** Adding, removing or reordering
//!   fields changes the bytes, and postcard is not self-describing, so `#[serde(default)]`
//!   cannot fill a new field in: an old record would end too early. Raise the version, keep
//!   the old definition, and register the conversion:
//!   `.schema::<Config>("config", 2).upgrade::<ConfigV1, Config>(1, |old| Config { retries: 3, .. })`.
//!   Without one, an old record is [`Error::SchemaVersion`], which names both versions. An
//!   upgraded value keeps the key it is stored under (its handle and its parents do not
//!   change, and each page-in upgrades it again); [`Pool::update`] stores the new value at
//!   the current version under a new key. The example `migrate` does it end to end.
//! - **Stores written before the tag** (log and directory stores, SQLite databases and packs
//!   of version 1) are refused by a pool with [`Error::OldFormat`]; they still read as blobs.

#![deny(missing_docs)]

// The log store's file layer uses Unix positioned I/O (`std::os::unix::fs::FileExt`).
#[cfg(not(unix))]
compile_error!(
    "spillway builds on Unix systems only: Linux is built and tested; macOS and the BSDs are expected to work but are not tested"
);

mod bytes;
mod codec;
pub mod collections;
pub mod container;
pub mod error;
pub mod key;
pub mod memory;
pub mod runtime;
pub mod store;
mod sync;

// Internals made public by the `testing` feature (the crate's own tests, its fuzz targets,
// tools that read the formats); private, and not part of the API, otherwise.
#[cfg(feature = "testing")]
pub mod format;
#[cfg(not(feature = "testing"))]
#[allow(dead_code, unreachable_pub)]
mod format;
#[cfg(feature = "testing")]
pub mod vfs;
#[cfg(not(feature = "testing"))]
#[allow(dead_code, unreachable_pub)]
mod vfs;

/// The write pipeline, from the `spillway-write` crate, which depends on nothing of spillway:
/// a generic coordinator on which a database's (or a store's) write path runs. The stores'
/// own write path runs on it ([`LogStore`], [`StoreWriter`](store::StoreWriter)); a pipeline
/// whose flusher fails with [`Error`] reports [`write::Error<Error>`](write::Error), which
/// converts into [`Error::Write`] with `?`.
pub mod write {
    pub use spillway_write::*;
}

/// The get-size2 crate that [`Pageable`]'s deep size comes from: see "Values" above.
pub use get_size2;
#[doc(hidden)]
pub use postcard as __postcard;
#[doc(hidden)]
pub use runtime::encode_into as __encode_into;
/// The serde crate that [`Pageable`]'s encoding goes through: see "Values" above.
pub use serde;

pub use bytes::Bytes;
pub use collections::{MapOptions, PagedMap, PagedSet};
pub use runtime::{
    DeepSize, GcOptions, GcReport, Guard, Pageable, Paged, Pool, PoolBuilder, PoolStats, Priority,
    Ref, SectionOptions, SectionStats, Sections, Tier,
};

pub use error::{Error, ErrorKind, Result};
pub use key::ContentKey;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{
    Blob, BlobStore, DirStore, Durability, LogStore, LogStoreOptions, MemStore, PackStore, Put,
    StoreStats,
};
#[cfg(feature = "s3")]
pub use store::{S3Store, S3StoreOptions};

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

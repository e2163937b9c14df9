//! The crate's one error type.
//!
//! Every variant carries enough context for a user to act: which file or key, where in the file,
//! and what to do next. Variants are `#[non_exhaustive]` so that new failure kinds can be added
//! without a breaking change.

use std::io;
use std::path::PathBuf;

use crate::key::ContentKey;

/// Result alias used throughout spillway.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in spillway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("{op} failed on {}: {source}", path.display())]
    Io {
        /// What we were doing ("write", "fsync", "open", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Stored bytes do not decode: a bad magic number, an impossible length, a truncated record.
    #[error("{what} is corrupted at {location}: {detail}")]
    Corrupted {
        /// The structure that failed to decode ("record", "segment header", "index checkpoint").
        what: &'static str,
        /// Where: a file and a byte offset.
        location: String,
        /// What exactly is wrong.
        detail: String,
    },

    /// Stored bytes decode but their checksum does not match.
    #[error(
        "checksum mismatch in {what} at {location}: stored {expected:#010x}, computed {got:#010x}"
    )]
    ChecksumMismatch {
        /// The structure whose checksum failed.
        what: &'static str,
        /// Where: a file and a byte offset.
        location: String,
        /// The checksum stored on disk.
        expected: u32,
        /// The checksum computed over the bytes read.
        got: u32,
    },

    /// A file written by a newer (or unknown) format version.
    #[error(
        "{} uses format version {found}, but this build of spillway reads versions up to {supported}; upgrade spillway to open it",
        path.display()
    )]
    UnsupportedVersion {
        /// The file concerned.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },

    /// A path that exists but is not a spillway store.
    #[error("{} is not a spillway store: {detail}", path.display())]
    NotAStore {
        /// The directory or file concerned.
        path: PathBuf,
        /// Why we think so.
        detail: String,
    },

    /// Another process holds the store open for writing.
    #[error(
        "store {} is locked for writing by {holder}; stop that process or open the store read-only",
        path.display()
    )]
    Locked {
        /// The store directory.
        path: PathBuf,
        /// Who holds the lock, as recorded in the lock file.
        holder: String,
    },

    /// An earlier write or sync failed, so the state of the files is unknown and the store
    /// refuses further writes. Reads still work; data acknowledged as durable is safe.
    #[error(
        "store {} refuses writes after an earlier I/O failure ({cause}); reads still work, reopen the store to recover",
        path.display()
    )]
    Poisoned {
        /// The store directory.
        path: PathBuf,
        /// The failure that poisoned the store.
        #[source]
        cause: std::sync::Arc<Error>,
    },

    /// A write was attempted on a store opened read-only.
    #[error("store {} is open read-only; open it with write access to change it", path.display())]
    ReadOnly {
        /// The store directory.
        path: PathBuf,
    },

    /// A key that the caller expected is not in the store.
    #[error("key {key} is not in {store}")]
    NotFound {
        /// The key looked up.
        key: ContentKey,
        /// The store (its kind and path) that was asked.
        store: String,
    },

    /// A container section that must stay in memory does not fit: past its cap, or past the
    /// pool's budget with every value evicted and every other section spilled.
    #[error(
        "section {section:?} of {} needs {len} bytes of memory, over {why} of {limit} bytes; it is back at its last checkpoint (give the pool a larger budget, or let the section spill: tier Auto)",
        file.display()
    )]
    SectionTooLarge {
        /// The section.
        section: String,
        /// Its container file.
        file: PathBuf,
        /// The memory it would take.
        len: u64,
        /// The cap or budget it would pass.
        limit: u64,
        /// "its RAM cap" or "the pool's budget".
        why: &'static str,
    },

    /// A value or length beyond what spillway accepts.
    #[error("{what} of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: u64,
        /// The limit.
        limit: u64,
    },

    /// A value failed to serialize or deserialize.
    #[error("{} {type_name}: {detail}", match key { Some(k) => format!("cannot encode or decode object {k} of type"), None => "cannot encode a new object of type".to_string() })]
    Codec {
        /// The Rust type concerned.
        type_name: &'static str,
        /// The object's key, if it has one.
        key: Option<ContentKey>,
        /// The codec's message.
        detail: String,
    },

    /// A stored value is not of the type it was read as (its type tag names another type):
    /// nothing was decoded. Read it as the type it was stored as.
    #[error(
        "object {key} is stored as {found}, but was read as {expected}; read it as the type it was stored as (a type is known by its stable name, `PoolBuilder::schema`, or else by its Rust path)"
    )]
    TypeMismatch {
        /// The object.
        key: ContentKey,
        /// The type it was read as: its stable name, version, Rust type and type hash.
        expected: String,
        /// What its tag says: a type of this pool with its version, or the hash and version
        /// found, with the types the pool has names for.
        found: String,
    },

    /// A stored value is another schema version of the type it was read as, and the pool has
    /// no upgrade from that version: nothing was decoded.
    #[error(
        "object {key} is {name:?} version {found}, but this pool reads {name:?} ({type_name}) at version {expected}; {}",
        if found < expected {
            format!("register an upgrade from version {found} on the pool builder, `.upgrade::<Old, {type_name}>({found}, |old| ...)`, with `Old` the type as it was at version {found}")
        } else {
            "it was written by a newer version of the program: read it with that version (upgrades go from older versions to the current one)".to_string()
        }
    )]
    SchemaVersion {
        /// The object.
        key: ContentKey,
        /// The type's stable name.
        name: String,
        /// The Rust type it was read as.
        type_name: &'static str,
        /// The version this pool reads (`PoolBuilder::schema`).
        expected: u32,
        /// The version the object was stored with.
        found: u32,
    },

    /// A store written by an older format that this build's pools do not read (its values
    /// carry no type tag, say). The store itself is not changed.
    #[error("{what} is format version {found}; this build's pools use version {current}: {detail}")]
    OldFormat {
        /// The store (its kind and path).
        what: String,
        /// The version found.
        found: u32,
        /// The version this build writes.
        current: u32,
        /// What the old version lacks and what to do.
        detail: String,
    },

    /// A page-out in the background failed; the values concerned stay in memory.
    #[error("an earlier page-out failed ({cause}); the values concerned stay in memory")]
    PageOut {
        /// The failure.
        #[source]
        cause: std::sync::Arc<Error>,
    },

    /// A pool was asked to store a handle of another pool, or a value holding one. A pool stores
    /// only its own handles: another pool's objects are not in its store, and that pool may
    /// page them out or collect them on its own. Nothing was stored, and the value stays in
    /// memory; to move values to another pool, insert copies of them there.
    #[error(
        "{what} of another pool (over {other}) cannot be stored by the pool over {pool}, which stores only its own handles; insert the value into this pool to get handles of its own"
    )]
    ForeignHandle {
        /// What was to be stored: a value holding the handle, or the handle itself.
        what: String,
        /// The pool asked to store it, by its store (kind and path).
        pool: String,
        /// The pool the handle belongs to, by its store.
        other: String,
    },

    /// A broken internal invariant: a bug in spillway, reported rather than panicking.
    #[error("internal error in spillway: {0}; this is a bug, please report it")]
    Internal(String),

    /// Garbage collection found objects that roots or live handles reach but that are not
    /// stored: the store is damaged, and the collection deleted nothing.
    #[error(
        "garbage collection of {store} stopped and deleted nothing: the graphs of {} miss {} ({}{}); check the store (`spillway verify`), or force the collection to delete only what the surviving parts of the graphs do not reach",
        roots_text(roots),
        count(*missing_count, "object"),
        missing.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", "),
        if *missing_count > missing.len() as u64 { ", ..." } else { "" }
    )]
    IncompleteGraph {
        /// The store (its kind and path).
        store: String,
        /// The roots whose graphs miss objects ("a live handle" for a live handle's graph).
        roots: Vec<String>,
        /// The first missing keys, sorted.
        missing: Vec<ContentKey>,
        /// How many objects are missing in all.
        missing_count: u64,
    },

    /// A request to a remote store (S3-compatible object storage) failed, after its retries.
    #[error("could not {what} {location}: {detail}")]
    Remote {
        /// What was being done ("upload", "read", "list", ...).
        what: &'static str,
        /// The object or prefix, as a URL (no credentials).
        location: String,
        /// The service's or the client's message.
        detail: String,
    },

    /// A change lost a race with another writer (a root changed by another machine at the same
    /// time); nothing was overwritten.
    #[error("{what} of {store} was not changed: {detail}")]
    Conflict {
        /// What was to change.
        what: String,
        /// The store.
        store: String,
        /// What happened and what to do.
        detail: String,
    },

    /// A bad argument or configuration value.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Code panicked (a bug, ours or in a user-supplied delta, flusher or value) in work that
    /// others wait on; what it was doing is abandoned and reported to everyone who waited.
    #[error("{thread} panicked; {consequence}")]
    ThreadPanicked {
        /// Which work, on which thread.
        thread: String,
        /// What the panic means for the caller.
        consequence: &'static str,
    },

    /// An error that several callers share: the failure of one page-in that they all waited
    /// on. Displays as the error itself.
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),

    /// A write pipeline (see [`crate::write`]) failed, was shut down, or could not start: the
    /// pipeline's own error, with the flusher's error as its source.
    #[error(transparent)]
    Write(#[from] spillway_write::Error<Error>),
}

/// What kind of failure an [`Error`] is, looking through [`Error::Shared`]: match on
/// [`Error::kind`] rather than on the error, which may be a shared one.
///
/// ```
/// # fn f(store: &spillway::LogStore) -> spillway::Result<()> {
/// use spillway::{BlobStore, ErrorKind};
/// match store.flush(spillway::Durability::Durable) {
///     Err(e) if e.kind() == ErrorKind::Poisoned => { /* reopen the store */ }
///     other => other?,
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Io`].
    Io,
    /// [`Error::Corrupted`].
    Corrupted,
    /// [`Error::ChecksumMismatch`].
    ChecksumMismatch,
    /// [`Error::UnsupportedVersion`].
    UnsupportedVersion,
    /// [`Error::NotAStore`].
    NotAStore,
    /// [`Error::Locked`].
    Locked,
    /// [`Error::Poisoned`].
    Poisoned,
    /// [`Error::ReadOnly`].
    ReadOnly,
    /// [`Error::NotFound`].
    NotFound,
    /// [`Error::TooLarge`].
    TooLarge,
    /// [`Error::Codec`].
    Codec,
    /// [`Error::TypeMismatch`].
    TypeMismatch,
    /// [`Error::SchemaVersion`].
    SchemaVersion,
    /// [`Error::OldFormat`].
    OldFormat,
    /// [`Error::PageOut`].
    PageOut,
    /// [`Error::Internal`].
    Internal,
    /// [`Error::IncompleteGraph`].
    IncompleteGraph,
    /// [`Error::InvalidArgument`].
    InvalidArgument,
    /// [`Error::ThreadPanicked`].
    ThreadPanicked,
    /// [`Error::Write`].
    Write,
    /// [`Error::ForeignHandle`].
    ForeignHandle,
    /// [`Error::Remote`].
    Remote,
    /// [`Error::Conflict`].
    Conflict,
}

/// `n` and the noun, singular or plural: "1 object", "2 objects".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn roots_text(roots: &[String]) -> String {
    let named: Vec<String> = roots
        .iter()
        .map(|r| {
            if r == "a live handle" {
                r.clone()
            } else {
                format!("root {r:?}")
            }
        })
        .collect();
    named.join(", ")
}

impl Error {
    /// Wraps an [`io::Error`] with the operation and path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True for errors that mean stored bytes are damaged (as opposed to I/O or usage errors).
    pub fn is_corruption(&self) -> bool {
        match self {
            Error::Shared(e) => e.is_corruption(),
            e => matches!(
                e,
                Error::Corrupted { .. }
                    | Error::ChecksumMismatch { .. }
                    | Error::IncompleteGraph { .. }
            ),
        }
    }

    /// What kind of failure this is, seen through [`Error::Shared`] wrappers.
    pub fn kind(&self) -> ErrorKind {
        match self.root() {
            Error::Io { .. } => ErrorKind::Io,
            Error::Corrupted { .. } => ErrorKind::Corrupted,
            Error::ChecksumMismatch { .. } => ErrorKind::ChecksumMismatch,
            Error::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            Error::NotAStore { .. } => ErrorKind::NotAStore,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::Poisoned { .. } => ErrorKind::Poisoned,
            Error::ReadOnly { .. } => ErrorKind::ReadOnly,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::SectionTooLarge { .. } => ErrorKind::TooLarge,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::Codec { .. } => ErrorKind::Codec,
            Error::TypeMismatch { .. } => ErrorKind::TypeMismatch,
            Error::SchemaVersion { .. } => ErrorKind::SchemaVersion,
            Error::OldFormat { .. } => ErrorKind::OldFormat,
            Error::PageOut { .. } => ErrorKind::PageOut,
            Error::Internal(_) => ErrorKind::Internal,
            Error::IncompleteGraph { .. } => ErrorKind::IncompleteGraph,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::ThreadPanicked { .. } => ErrorKind::ThreadPanicked,
            Error::Write(_) => ErrorKind::Write,
            Error::ForeignHandle { .. } => ErrorKind::ForeignHandle,
            Error::Remote { .. } => ErrorKind::Remote,
            Error::Conflict { .. } => ErrorKind::Conflict,
            // `root` never returns a shared error.
            Error::Shared(_) => ErrorKind::Internal,
        }
    }

    /// The error itself, seen through [`Error::Shared`] wrappers.
    pub fn root(&self) -> &Error {
        match self {
            Error::Shared(e) => e.root(),
            e => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_kind_and_the_source_are_seen_through_shared_errors() {
        let io = Error::io("fsync", "/store/seg.log", io::Error::other("disk on fire"));
        let shared = Error::Shared(Arc::new(Error::Shared(Arc::new(io))));
        assert_eq!(shared.kind(), ErrorKind::Io);
        let poisoned = Error::Poisoned {
            path: "/store".into(),
            cause: Arc::new(shared),
        };
        assert_eq!(poisoned.kind(), ErrorKind::Poisoned);
        // The cause is an error, with its own chain, not a string.
        let source = std::error::Error::source(&poisoned).expect("a source");
        assert!(source.to_string().contains("disk on fire"), "{source}");
        assert!(poisoned.to_string().contains("disk on fire"), "{poisoned}");
    }
}

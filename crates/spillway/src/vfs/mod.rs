//! The file-system layer under the stores.
//!
//! Stores do all their file I/O through [`Vfs`], so that the same store code runs on the real
//! file system ([`OsFs`]) and on [`SimFs`], an in-memory file system that keeps, for every file,
//! what has been *written* and what has been made *durable*, and can fail or "lose power" at the
//! N-th mutating call. Crash tests use it to check that everything acknowledged as durable
//! survives any crash point.
//!
//! The trait is deliberately small and positional (`read_at`/`write_at`): the log store never
//! relies on a shared file cursor.

use std::any::Any;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

#[cfg(any(test, feature = "testing"))]
mod fault;
mod os;
#[cfg(any(test, feature = "testing"))]
mod sim;

#[cfg(any(test, feature = "testing"))]
pub use fault::{Fault, FaultFs};
pub use os::OsFs;
#[cfg(any(test, feature = "testing"))]
pub use sim::{PAGE as SIM_PAGE, SimFs, SimOp};

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Existing file, read only.
    Read,
    /// Existing file, read and write.
    ReadWrite,
    /// Create the file (truncating any existing one), read and write.
    Create,
}

/// A read-only view of a whole file that no one modifies any more (a sealed segment).
pub type FileView = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// The outcome of trying to take a store's lock.
pub enum LockOutcome {
    /// The lock is ours until the guard is dropped.
    Acquired(Box<dyn Any + Send + Sync>),
    /// Someone else holds it; the text is what the holder recorded about itself.
    HeldBy(String),
}

impl fmt::Debug for LockOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockOutcome::Acquired(_) => f.write_str("Acquired"),
            LockOutcome::HeldBy(h) => write!(f, "HeldBy({h:?})"),
        }
    }
}

/// A file system, as the stores see it.
pub trait Vfs: Send + Sync + fmt::Debug + 'static {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Lists the names of the entries in a directory (files and subdirectories).
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>>;
    /// Maps a file that will not change any more, for zero-copy reads.
    fn map(&self, path: &Path) -> io::Result<FileView>;
    /// Maps the first `len` bytes of a file that is still growing by appends, for zero-copy
    /// reads of the part already written. `None` if this file system cannot (the caller then
    /// reads with `read_at`). The caller must never read the view past the file's current end.
    fn map_growing(&self, path: &Path, len: u64) -> io::Result<Option<FileView>> {
        let _ = (path, len);
        Ok(None)
    }
    /// Renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Gives the file at `from` a second name, `to` (which must not exist): a hard link, one
    /// file under two names.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, dir: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Tries to take an exclusive lock on `path`, recording `holder` in it when it succeeds.
    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<LockOutcome>;

    /// Reads a whole file.
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let f = self.open(path, OpenMode::Read)?;
        let len = usize::try_from(f.len()?).map_err(io::Error::other)?;
        let mut buf = vec![0u8; len];
        f.read_at(&mut buf, 0)?;
        Ok(buf)
    }
}

/// An open file.
pub trait VfsFile: Send + Sync + fmt::Debug {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// True if the file holds no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Fills `buf` from `offset`; a short file is an `UnexpectedEof` error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
}

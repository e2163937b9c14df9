//! The write lock of a store on the file system: an exclusive `flock` on a lock file, so that
//! two processes cannot open one store for writing. The kernel releases it when the holder
//! exits or is killed, so a lock file left behind is harmless; the file records its holder in
//! words, for the error the next process gets.

use std::any::Any;
use std::path::Path;

use crate::error::{Error, Result};
use crate::vfs::{LockOutcome, Vfs};

/// Who we are, as recorded in a lock file: `process <pid> (<program>) on <host>`.
pub(crate) fn holder_text() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".into());
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown program".into());
    format!("process {} ({exe}) on {host}", std::process::id())
}

/// Takes the lock of the store `store` through the lock file `file`; the guard holds it until
/// dropped. [`Error::Locked`] names the holder if another process has it.
pub(crate) fn lock(vfs: &dyn Vfs, file: &Path, store: &Path) -> Result<Box<dyn Any + Send + Sync>> {
    match vfs
        .try_lock(file, &holder_text())
        .map_err(|e| Error::io("lock", file, e))?
    {
        LockOutcome::Acquired(guard) => Ok(guard),
        LockOutcome::HeldBy(holder) => Err(Error::Locked {
            path: store.to_path_buf(),
            holder,
        }),
    }
}

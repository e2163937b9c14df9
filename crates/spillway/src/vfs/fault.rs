//! [`FaultFs`]: one injected I/O fault, of a chosen kind, at a chosen call of any file system.
//!
//! Where [`SimFs::fail_at`](super::SimFs::fail_at) stops the whole machine at an instant (every
//! later call fails, as after a crash), `FaultFs` injects a single *transient* fault and lets
//! every other call through to the file system it wraps: the error a store meets when a disk
//! fills up for a moment, one read returns EIO, or a write is cut short. What the store does with
//! it (retry, poison itself, report it) is then the store's, and tests check that the caller got
//! either a result or an error, never a wrong value.
//!
//! Calls are counted in two sequences: *mutating* calls (writes, truncations, syncs, creations,
//! renames, removals, links) and *reads* (`read_at`, `read_file`, `read_dir`, `map`). A plan names
//! the sequence number at which its fault fires; a dry run with no plan counts the calls a
//! workload makes, so that a sweep can aim at each one in turn. Mapped reads after `map`
//! returned are memory accesses, not calls, and cannot fail here.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{FileView, LockOutcome, OpenMode, Vfs, VfsFile};

/// What the injected fault is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A mutating call fails with EIO, having done nothing.
    Fail,
    /// A write applies its first half, then fails with EIO (as a torn write does); any other
    /// mutating call fails as with [`Fault::Fail`].
    ShortWrite,
    /// A mutating call fails with ENOSPC ("no space left on device"), having done nothing.
    NoSpace,
    /// A read fails with EIO.
    ReadError,
}

impl Fault {
    /// Every kind, for sweeps.
    pub const ALL: [Fault; 4] = [
        Fault::Fail,
        Fault::ShortWrite,
        Fault::NoSpace,
        Fault::ReadError,
    ];

    /// True if the fault is aimed at reads (else at mutating calls).
    pub fn on_reads(self) -> bool {
        self == Fault::ReadError
    }

    fn error(self) -> io::Error {
        match self {
            Fault::NoSpace => io::Error::new(
                io::ErrorKind::StorageFull,
                "injected fault: no space left on device",
            ),
            _ => io::Error::other("injected fault: input/output error"),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    mutations: AtomicU64,
    reads: AtomicU64,
    plan: Mutex<Option<(Fault, u64)>>,
    fired: AtomicU64,
}

/// What a call may do: go through, or meet the fault.
enum Verdict {
    Pass,
    Inject(Fault),
}

impl Counters {
    fn count(&self, read: bool) -> Verdict {
        let n = if read {
            self.reads.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.mutations.fetch_add(1, Ordering::SeqCst) + 1
        };
        let mut plan = self.plan.lock();
        match *plan {
            Some((fault, at)) if fault.on_reads() == read && at == n => {
                *plan = None;
                self.fired.fetch_add(1, Ordering::SeqCst);
                Verdict::Inject(fault)
            }
            _ => Verdict::Pass,
        }
    }

    fn check(&self, read: bool) -> io::Result<()> {
        match self.count(read) {
            Verdict::Pass => Ok(()),
            Verdict::Inject(f) => Err(f.error()),
        }
    }
}

/// A file system that passes every call to another one, except one planned fault.
#[derive(Debug, Clone)]
pub struct FaultFs {
    inner: Arc<dyn Vfs>,
    counters: Arc<Counters>,
}

impl FaultFs {
    /// Wraps `inner`, with no fault planned.
    pub fn new(inner: Arc<dyn Vfs>) -> FaultFs {
        FaultFs {
            inner,
            counters: Arc::default(),
        }
    }

    /// Plans `fault` at the `n`-th call (1-based, counted from the start) of its sequence:
    /// mutating calls, or reads for [`Fault::ReadError`].
    pub fn plan(&self, fault: Fault, n: u64) {
        *self.counters.plan.lock() = Some((fault, n));
    }

    /// Mutating calls so far.
    pub fn mutations(&self) -> u64 {
        self.counters.mutations.load(Ordering::SeqCst)
    }

    /// Reads so far.
    pub fn reads(&self) -> u64 {
        self.counters.reads.load(Ordering::SeqCst)
    }

    /// True once the planned fault fired.
    pub fn fired(&self) -> bool {
        self.counters.fired.load(Ordering::SeqCst) > 0
    }
}

impl Vfs for FaultFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.counters.check(false)?;
        self.inner.create_dir_all(dir)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.counters.check(true)?;
        self.inner.read_dir(dir)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        if mode == OpenMode::Create {
            self.counters.check(false)?;
        }
        let file = self.inner.open(path, mode)?;
        Ok(Arc::new(FaultFile {
            inner: file,
            counters: Arc::clone(&self.counters),
        }))
    }

    fn map(&self, path: &Path) -> io::Result<FileView> {
        self.counters.check(true)?;
        self.inner.map(path)
    }

    fn map_growing(&self, path: &Path, len: u64) -> io::Result<Option<FileView>> {
        self.counters.check(true)?;
        self.inner.map_growing(path, len)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.counters.check(false)?;
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.counters.check(false)?;
        self.inner.remove_file(path)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.counters.check(false)?;
        self.inner.hard_link(from, to)
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        self.counters.check(false)?;
        self.inner.remove_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.counters.check(false)?;
        self.inner.sync_dir(dir)
    }

    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<LockOutcome> {
        self.counters.check(false)?;
        self.inner.try_lock(path, holder)
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.counters.check(true)?;
        self.inner.read_file(path)
    }
}

#[derive(Debug)]
struct FaultFile {
    inner: Arc<dyn VfsFile>,
    counters: Arc<Counters>,
}

impl VfsFile for FaultFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.counters.check(true)?;
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        match self.counters.count(false) {
            Verdict::Pass => self.inner.write_at(buf, offset),
            Verdict::Inject(Fault::ShortWrite) => {
                self.inner.write_at(&buf[..buf.len() / 2], offset)?;
                Err(Fault::ShortWrite.error())
            }
            Verdict::Inject(f) => Err(f.error()),
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.counters.check(false)?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.counters.check(false)?;
        self.inner.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::SimFs;

    #[test]
    fn one_fault_fires_at_its_call_and_the_others_pass() {
        let fs = FaultFs::new(Arc::new(SimFs::new()));
        fs.create_dir_all(Path::new("/d")).unwrap();
        let f = fs.open(Path::new("/d/a"), OpenMode::Create).unwrap();
        assert_eq!(fs.mutations(), 2);
        fs.plan(Fault::ShortWrite, 3);
        let err = f.write_at(b"abcdef", 0).unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        assert!(fs.fired());
        // Half of it landed; the next write goes through.
        assert_eq!(fs.read_file(Path::new("/d/a")).unwrap(), b"abc");
        f.write_at(b"xyz", 3).unwrap();
        assert_eq!(fs.read_file(Path::new("/d/a")).unwrap(), b"abcxyz");

        fs.plan(Fault::ReadError, fs.reads() + 1);
        assert!(fs.read_file(Path::new("/d/a")).is_err());
        assert_eq!(fs.read_file(Path::new("/d/a")).unwrap(), b"abcxyz");

        fs.plan(Fault::NoSpace, fs.mutations() + 1);
        let err = f.sync_data().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        f.sync_data().unwrap();
    }
}

//! [`Vfs`] over the real file system.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::{FileView, LockOutcome, OpenMode, Vfs, VfsFile};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

#[derive(Debug)]
struct OsFile(File);

impl Vfs for OsFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let mut o = OpenOptions::new();
        match mode {
            OpenMode::Read => o.read(true),
            OpenMode::ReadWrite => o.read(true).write(true),
            OpenMode::Create => o.read(true).write(true).create(true).truncate(true),
        };
        Ok(Arc::new(OsFile(o.open(path)?)))
    }

    fn map(&self, path: &Path) -> io::Result<FileView> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Arc::new(Vec::<u8>::new()));
        }
        // SAFETY: spillway maps only sealed segment files of a store whose exclusive lock this
        // process holds. No spillway process writes to or truncates a sealed segment (compaction
        // only unlinks whole files, which leaves existing mappings valid), so the mapped bytes do
        // not change under us. A foreign process modifying the store's files breaks this, as it
        // breaks every memory-mapped database; `docs/FORMAT.md` states the assumption.
        #[expect(
            unsafe_code,
            reason = "memory-mapped reads of immutable sealed segments"
        )]
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Arc::new(map))
    }

    fn map_growing(&self, path: &Path, len: u64) -> io::Result<Option<FileView>> {
        let file = File::open(path)?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        // SAFETY: as for `map`, the file is a segment of a store whose exclusive lock this
        // process holds; spillway only appends to it, and truncates segments only while
        // opening, before any mapping exists. The mapping may extend past the end of the file
        // (touching those pages would raise SIGBUS), but the store reads only bytes it has
        // already written, which lie inside the file.
        #[expect(
            unsafe_code,
            reason = "memory-mapped reads of the written part of the active segment"
        )]
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&file)? };
        Ok(Some(Arc::new(map)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<LockOutcome> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                file.rewind()?;
                file.write_all(holder.as_bytes())?;
                Ok(LockOutcome::Acquired(Box::new(file)))
            }
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                file.read_to_string(&mut text)?;
                Ok(LockOutcome::HeldBy(if text.trim().is_empty() {
                    "another process".to_string()
                } else {
                    text.trim().to_string()
                }))
            }
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

impl VfsFile for OsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

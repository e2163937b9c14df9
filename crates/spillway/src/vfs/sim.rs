//! [`SimFs`]: an in-memory file system for crash tests.
//!
//! For every file it keeps two images: `written` (what a reader sees now, as in the page cache)
//! and `durable` (what survives power loss: the state at the last `sync_data`). Directory entries
//! likewise exist in a written and a durable namespace; `sync_dir` makes a directory's entries
//! durable. Every mutating call counts as one *operation*; [`SimFs::fail_at`] makes the N-th
//! operation fail (a write may be applied partly, as a torn write is) and every later operation
//! fail too, as if the machine had stopped at that instant. [`SimFs::power_loss_image`] and
//! [`SimFs::process_crash_image`] then give the file system a restarted process would find.
//!
//! A power loss loses unsynced data as disks do: a file's unsynced bytes are written back page
//! by page ([`PAGE`] bytes, aligned to the file's start) in no particular order, so any subset
//! of its changed pages may survive, a page may survive only in part (a prefix of it: a torn
//! page), and the file's length may have reached the disk without the data (the file ends in
//! zeros). Where an earlier page was lost and a later one kept, the lost page reads as it was
//! at the last sync (zeros past the synced length): a hole. Every choice comes from the seed.
//!
//! Every mutating operation is also recorded in a trace ([`SimFs::trace`]) so that a test can
//! pick the operations of one kind on one file to fail at.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileView, LockOutcome, OpenMode, Vfs, VfsFile};

#[derive(Debug, Default, Clone)]
struct Inode {
    written: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    trace: Vec<SimOp>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: HashSet<PathBuf>,
    locks: HashMap<PathBuf, String>,
    ops: u64,
    fail_at: Option<u64>,
    failed: bool,
    rng: u64,
}

impl State {
    /// Counts one mutating operation; errors if the file system has "stopped".
    fn tick(&mut self, kind: &'static str, path: &Path) -> io::Result<bool> {
        if self.failed {
            return Err(io::Error::other(
                "simulated crash: the file system has stopped",
            ));
        }
        self.ops += 1;
        self.trace.push(SimOp {
            n: self.ops,
            kind,
            path: path.to_path_buf(),
        });
        if self.fail_at == Some(self.ops) {
            self.failed = true;
            return Ok(true);
        }
        Ok(false)
    }

    fn next_rand(&mut self) -> u64 {
        // splitmix64: deterministic from the seed, good enough for choosing tear points.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn inode(&self, path: &Path) -> io::Result<u64> {
        self.names
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{}", path.display())))
    }
}

/// The unit in which a disk writes unsynced data back: a power loss keeps or loses each page
/// of a file's unsynced changes on its own, or keeps a prefix of it.
pub const PAGE: usize = 4096;

/// One mutating operation, as recorded in [`SimFs::trace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOp {
    /// Its number: [`SimFs::fail_at`] counts in these.
    pub n: u64,
    /// `create`, `write`, `set_len`, `sync_data`, `rename`, `remove_file`, `hard_link`,
    /// `remove_dir` or `sync_dir`.
    pub kind: &'static str,
    /// The file or directory it acted on (the source of a rename or link).
    pub path: PathBuf,
}

/// What a power loss leaves of a file whose last synced image is `durable` and whose current
/// one is `written` (see the module docs).
fn lose_unsynced(rng: &mut impl FnMut() -> u64, durable: &[u8], written: &[u8]) -> Vec<u8> {
    if durable == written {
        return durable.to_vec();
    }
    let max = durable.len().max(written.len());
    let mut out = vec![0u8; max];
    out[..durable.len()].copy_from_slice(durable);
    // How far the file's kept content reaches.
    let mut reach = durable.len().min(written.len());
    for start in (0..max).step_by(PAGE) {
        let end = (start + PAGE).min(max);
        let w_end = end.min(written.len());
        let new = written.get(start..w_end).unwrap_or(&[]);
        if out[start..start + new.len()] == *new && w_end == end {
            reach = reach.max(w_end);
            continue;
        }
        let keep = match rng() % 3 {
            0 => 0,
            1 => new.len(),
            _ => (rng() % (new.len() as u64 + 1)) as usize,
        };
        out[start..start + keep].copy_from_slice(&new[..keep]);
        if keep > 0 {
            reach = reach.max(start + keep);
        }
    }
    let len = if written.len() < durable.len() {
        // A truncation that may not have reached the disk.
        if rng().is_multiple_of(2) {
            written.len().max(reach)
        } else {
            durable.len()
        }
    } else if rng().is_multiple_of(4) {
        // The new length reached the disk, the data not all: the file ends in zeros.
        written.len()
    } else {
        reach.max(durable.len())
    };
    out.truncate(len);
    out
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: injected I/O failure")
}

/// An in-memory file system with written and durable images and failure injection.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    inode: u64,
    writable: bool,
}

impl SimFs {
    /// An empty file system.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// Makes the `n`-th mutating operation from now (1-based) fail, and every one after it.
    pub fn fail_at(&self, n: u64) {
        let mut s = self.state.lock();
        s.fail_at = Some(s.ops + n);
    }

    /// Number of mutating operations so far.
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// True once an injected failure has stopped the file system.
    pub fn has_failed(&self) -> bool {
        self.state.lock().failed
    }

    /// Every mutating operation so far, in order.
    pub fn trace(&self) -> Vec<SimOp> {
        self.state.lock().trace.clone()
    }

    /// The file system after a power loss: only durable names remain, and each file keeps its
    /// synced bytes plus any seeded choice of its unsynced pages, whole or torn, with holes
    /// where an earlier page was lost (see the module docs).
    pub fn power_loss_image(&self, seed: u64) -> SimFs {
        let mut s = self.state.lock();
        s.rng ^= seed;
        let mut out = State {
            dirs: s.dirs.clone(),
            rng: seed,
            ..State::default()
        };
        let durable_names = s.durable_names.clone();
        for (path, ino) in durable_names {
            let inode = s.inodes.get(&ino).cloned().unwrap_or_default();
            let data = lose_unsynced(&mut || s.next_rand(), &inode.durable, &inode.written);
            out.add_file(path, data);
        }
        SimFs {
            state: Arc::new(Mutex::new(out)),
        }
    }

    /// The file system after the process was killed: everything written survives (it is in the
    /// OS page cache), synced or not.
    pub fn process_crash_image(&self) -> SimFs {
        let s = self.state.lock();
        let mut out = State {
            dirs: s.dirs.clone(),
            ..State::default()
        };
        for (path, ino) in &s.names {
            let data = s
                .inodes
                .get(ino)
                .map(|i| i.written.clone())
                .unwrap_or_default();
            out.add_file(path.clone(), data);
        }
        SimFs {
            state: Arc::new(Mutex::new(out)),
        }
    }

    /// Overwrites bytes of an existing file in both images (to plant corruption in tests).
    pub fn corrupt(&self, path: &Path, offset: usize, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.state.lock();
        let ino = s.inode(path)?;
        let inode = s.inodes.get_mut(&ino).ok_or_else(crashed)?;
        for img in [&mut inode.written, &mut inode.durable] {
            if img.len() < offset + bytes.len() {
                img.resize(offset + bytes.len(), 0);
            }
            img[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        Ok(())
    }
}

impl State {
    fn add_file(&mut self, path: PathBuf, data: Vec<u8>) {
        let ino = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(
            ino,
            Inode {
                written: data.clone(),
                durable: data,
            },
        );
        self.names.insert(path.clone(), ino);
        self.durable_names.insert(path, ino);
    }
}

impl Vfs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        // Directory creation is treated as durable: stores fsync the parent themselves only in
        // the real file system, and tests start from an existing directory.
        let mut d = Some(dir);
        while let Some(p) = d {
            s.dirs.insert(p.to_path_buf());
            d = p.parent();
        }
        Ok(())
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.state.lock();
        if !s.dirs.contains(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}", dir.display()),
            ));
        }
        Ok(s.names
            .keys()
            .chain(s.dirs.iter())
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let mut s = self.state.lock();
        let inode = match mode {
            OpenMode::Read | OpenMode::ReadWrite => s.inode(path)?,
            OpenMode::Create => {
                if s.tick("create", path)? {
                    return Err(crashed());
                }
                match s.names.get(path).copied() {
                    Some(ino) => {
                        if let Some(i) = s.inodes.get_mut(&ino) {
                            i.written.clear();
                        }
                        ino
                    }
                    None => {
                        let ino = s.next_inode;
                        s.next_inode += 1;
                        s.inodes.insert(ino, Inode::default());
                        s.names.insert(path.to_path_buf(), ino);
                        ino
                    }
                }
            }
        };
        Ok(Arc::new(SimFile {
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
            inode,
            writable: mode != OpenMode::Read,
        }))
    }

    fn map(&self, path: &Path) -> io::Result<FileView> {
        let s = self.state.lock();
        let ino = s.inode(path)?;
        let data = s
            .inodes
            .get(&ino)
            .map(|i| i.written.clone())
            .unwrap_or_default();
        Ok(Arc::new(data))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        if s.tick("rename", from)? {
            return Err(crashed());
        }
        let ino = s.inode(from)?;
        s.names.remove(from);
        s.names.insert(to.to_path_buf(), ino);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        if s.tick("remove_file", path)? {
            return Err(crashed());
        }
        s.inode(path)?;
        s.names.remove(path);
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        if s.tick("hard_link", from)? {
            return Err(crashed());
        }
        let ino = s.inode(from)?;
        if s.names.contains_key(to) || s.dirs.contains(to) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}", to.display()),
            ));
        }
        s.names.insert(to.to_path_buf(), ino);
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        if s.tick("remove_dir", dir)? {
            return Err(crashed());
        }
        if !s.dirs.contains(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}", dir.display()),
            ));
        }
        let inside = |p: &PathBuf| p.parent() == Some(dir);
        if s.names.keys().any(inside) || s.dirs.iter().any(inside) {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{}", dir.display()),
            ));
        }
        // Like creation, removal of a directory is treated as durable at once.
        s.dirs.remove(dir);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        if s.tick("sync_dir", dir)? {
            return Err(crashed());
        }
        s.durable_names.retain(|p, _| p.parent() != Some(dir));
        let entries: Vec<_> = s
            .names
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        s.durable_names.extend(entries);
        Ok(())
    }

    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<LockOutcome> {
        let mut s = self.state.lock();
        if let Some(h) = s.locks.get(path) {
            return Ok(LockOutcome::HeldBy(h.clone()));
        }
        s.locks.insert(path.to_path_buf(), holder.to_string());
        Ok(LockOutcome::Acquired(Box::new(SimLock {
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
        })))
    }
}

#[derive(Debug)]
struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.state.lock().locks.remove(&self.path);
    }
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut Inode) -> T) -> io::Result<T> {
        let mut s = self.state.lock();
        let inode = s.inodes.get_mut(&self.inode).ok_or_else(crashed)?;
        Ok(f(inode))
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "file opened read-only",
            ))
        }
    }
}

impl VfsFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        self.with(|i| i.written.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with(|i| {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            match start.checked_add(buf.len()) {
                Some(end) if end <= i.written.len() => {
                    buf.copy_from_slice(&i.written[start..end]);
                    Ok(())
                }
                _ => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past end of file",
                )),
            }
        })?
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut s = self.state.lock();
        let fail = s.tick("write", &self.path)?;
        // A failing write may land partly: a torn write.
        let n = if fail {
            (s.next_rand() % (buf.len() as u64 + 1)) as usize
        } else {
            buf.len()
        };
        let inode = s.inodes.get_mut(&self.inode).ok_or_else(crashed)?;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        if inode.written.len() < start + n {
            inode.written.resize(start + n, 0);
        }
        inode.written[start..start + n].copy_from_slice(&buf[..n]);
        if fail { Err(crashed()) } else { Ok(()) }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut s = self.state.lock();
        if s.tick("set_len", &self.path)? {
            return Err(crashed());
        }
        let inode = s.inodes.get_mut(&self.inode).ok_or_else(crashed)?;
        inode
            .written
            .resize(usize::try_from(len).map_err(io::Error::other)?, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.state.lock();
        if s.tick("sync_data", &self.path)? {
            return Err(crashed());
        }
        let inode = s.inodes.get_mut(&self.inode).ok_or_else(crashed)?;
        inode.durable = inode.written.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_data_and_names_are_lost_on_power_loss() {
        let fs = SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let f = fs.open(&dir.join("a"), OpenMode::Create).unwrap();
        f.write_at(b"hello", 0).unwrap();
        // Neither data nor name synced: the file is gone.
        assert!(fs.power_loss_image(1).read_dir(dir).unwrap().is_empty());
        f.sync_data().unwrap();
        fs.sync_dir(dir).unwrap();
        f.write_at(b" world", 5).unwrap();
        let mut seen = HashSet::new();
        for seed in 0..64 {
            let data = fs.power_loss_image(seed).read_file(&dir.join("a")).unwrap();
            // The synced bytes always; of the rest a prefix, or zeros where the length made it
            // to the disk and the data did not.
            assert!(data.starts_with(b"hello"), "{data:?}");
            let tail = &data[5..];
            let n = tail.iter().take_while(|&&b| b != 0).count();
            assert!(b" world".starts_with(&tail[..n]), "{data:?}");
            assert!(tail[n..].iter().all(|&b| b == 0), "{data:?}");
            seen.insert(data.len());
        }
        assert!(
            seen.len() > 2,
            "the seeds should give different lengths: {seen:?}"
        );
        // A killed process loses nothing that was written.
        let img = fs.process_crash_image();
        assert_eq!(img.read_file(&dir.join("a")).unwrap(), b"hello world");
    }

    #[test]
    fn power_loss_keeps_any_subset_of_unsynced_pages() {
        let fs = SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let path = dir.join("a");
        let f = fs.open(&path, OpenMode::Create).unwrap();
        f.write_at(&[1u8; 100], 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(dir).unwrap();
        // Three more pages, unsynced: each 2, 3 or 4.
        for p in 0..3u8 {
            let at = 100 + usize::from(p) * PAGE;
            f.write_at(&vec![p + 2; PAGE], at as u64).unwrap();
        }
        let (mut holes, mut torn, mut zero_tails) = (0, 0, 0);
        for seed in 0..200 {
            let data = fs.power_loss_image(seed).read_file(&path).unwrap();
            assert_eq!(&data[..100], &[1u8; 100][..], "synced bytes are kept");
            let rest = &data[100..];
            // Byte i of the rest was written with the value of its write, or reads as zero.
            for (i, &b) in rest.iter().enumerate() {
                assert!(b == 0 || usize::from(b) == 2 + i / PAGE, "byte {i}: {b}");
            }
            let first_zero = rest.iter().position(|&b| b == 0);
            if let Some(z) = first_zero {
                if rest[z..].iter().any(|&b| b != 0) {
                    holes += 1;
                } else {
                    zero_tails += 1;
                }
                // The first lost byte inside a page whose start was kept: a torn page
                // (page 0 starts with the synced bytes, so it counts only past them).
                if z > 0 && (100 + z) % PAGE != 0 {
                    torn += 1;
                }
            }
        }
        assert!(zero_tails > 0, "no seed ended the file in zeros");
        assert!(holes > 0, "no seed left a hole");
        assert!(torn > 0, "no seed tore a page");
    }

    #[test]
    fn the_trace_names_each_operation() {
        let fs = SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let f = fs.open(&dir.join("a"), OpenMode::Create).unwrap();
        f.write_at(b"x", 0).unwrap();
        f.sync_data().unwrap();
        fs.rename(&dir.join("a"), &dir.join("b")).unwrap();
        let kinds: Vec<_> = fs.trace().iter().map(|o| (o.n, o.kind)).collect();
        assert_eq!(
            kinds,
            [(1, "create"), (2, "write"), (3, "sync_data"), (4, "rename")]
        );
        assert_eq!(fs.trace()[3].path, dir.join("a"));
    }

    #[test]
    fn failure_injection_stops_everything_after() {
        let fs = SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let f = fs.open(&dir.join("a"), OpenMode::Create).unwrap();
        fs.fail_at(2);
        f.write_at(b"one", 0).unwrap();
        assert!(f.sync_data().is_err());
        assert!(fs.has_failed());
        assert!(f.write_at(b"two", 3).is_err());
    }
}

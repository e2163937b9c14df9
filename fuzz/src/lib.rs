//! Shared helpers of the fuzz targets.

use std::path::Path;
use std::sync::Arc;

use spillway::format::{checkpoint, marker, roots, segment};
use spillway::vfs::{OpenMode, SimFs, Vfs};

/// The store directory inside the simulated file system.
pub const DIR: &str = "/store";

/// Builds a store directory from fuzz input: a flags byte (bit 0: the first file is the index
/// checkpoint; bit 1: the next file is `ROOTS`), then files as `[u32 little-endian
/// length][bytes]`; the files after those are segments 1, 2, ... (at most 4).
pub fn store_from_bytes(data: &[u8]) -> Arc<SimFs> {
    let fs = Arc::new(SimFs::new());
    let dir = Path::new(DIR);
    let _ = fs.create_dir_all(dir);
    write(
        &fs,
        &dir.join(marker::MARKER_FILE),
        &marker::encode(marker::STORE_VERSION),
    );
    let Some((&flags, mut rest)) = data.split_first() else {
        return fs;
    };
    let mut files = Vec::new();
    while rest.len() >= 4 && files.len() < 6 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = &rest[4..];
        let take = len.min(body.len());
        files.push(&body[..take]);
        rest = &body[take..];
    }
    let mut files = files.into_iter();
    if flags & 1 == 1 {
        if let Some(f) = files.next() {
            write(&fs, &dir.join(checkpoint::CHECKPOINT_FILE), f);
        }
    }
    if flags & 2 == 2 {
        if let Some(f) = files.next() {
            write(&fs, &dir.join(roots::ROOTS_FILE), f);
        }
    }
    for (i, f) in files.take(4).enumerate() {
        write(&fs, &dir.join(segment::file_name(i as u64 + 1)), f);
    }
    let _ = fs.sync_dir(dir);
    fs
}

/// The inverse of [`store_from_bytes`], used to make seeds from real stores.
pub fn bytes_from_files(checkpoint: Option<&[u8]>, segments: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![u8::from(checkpoint.is_some())];
    for f in checkpoint
        .into_iter()
        .chain(segments.iter().map(Vec::as_slice))
    {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

fn write(fs: &SimFs, path: &Path, bytes: &[u8]) {
    if let Ok(f) = fs.open(path, OpenMode::Create) {
        let _ = f.write_at(bytes, 0);
        let _ = f.sync_data();
    }
}

/// Every file of the store directory with its bytes, to show that something changed nothing.
pub fn snapshot(fs: &SimFs) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(DIR);
    let mut names = fs.read_dir(dir).unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let bytes = fs.read_file(&dir.join(&n)).unwrap_or_default();
            (n, bytes)
        })
        .collect()
}

/// A simulated file system holding one file, `path`, with `data` as its bytes (its directory
/// created).
pub fn file_from_bytes(path: &Path, data: &[u8]) -> SimFs {
    let fs = SimFs::new();
    if let Some(dir) = path.parent() {
        fs.create_dir_all(dir).expect("mkdir");
    }
    let f = fs.open(path, OpenMode::Create).expect("create");
    f.write_at(data, 0).expect("write");
    fs
}

/// An operation-sequence run of a whole pool over a log store, for the `pool_ops` target.
///
/// The input's first three bytes choose one injected I/O fault (none, a failed write, a short
/// write, a full disk or a failed read) and the call it fires at; each following byte is one
/// operation: insert a leaf, insert a parent over the last two handles, read a graph back, set
/// or remove one of four roots, collect garbage, flush, reopen the pool and its store. Every
/// call may fail; none may panic, and a read that returns must return the right bytes. At the
/// end the store is reopened (without faults) from what the process left, and every root whose
/// setting was acknowledged, and not removed since, must be there with its whole graph.
pub mod pool_ops {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use spillway::vfs::{Fault, FaultFs, SimFs, Vfs};
    use spillway::{BlobStore, Durability, LogStore, LogStoreOptions, Paged, Pool};

    /// A leaf: its label, then bytes that follow from it.
    type Leaf = Vec<u8>;
    /// A parent: its label and its children.
    type Parent = (u64, Vec<Paged<Leaf>>);

    fn leaf(label: u64) -> Leaf {
        let mut v = label.to_le_bytes().to_vec();
        v.extend((0..(label % 300) as usize).map(|j| (label as usize + j) as u8));
        v
    }

    fn check_leaf(bytes: &[u8]) {
        let label = u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes"));
        assert_eq!(bytes, leaf(label).as_slice(), "a leaf read back wrong");
    }

    /// Reads a parent's graph: its leaf count, or the first error.
    fn read(p: &Paged<Parent>) -> spillway::Result<usize> {
        let g = p.get()?;
        for c in &g.1 {
            check_leaf(&c.get()?);
        }
        Ok(g.1.len())
    }

    fn open(vfs: Arc<dyn Vfs>) -> spillway::Result<Pool> {
        let opts = LogStoreOptions::default()
            .segment_size(4096)
            .write_buffer(1000)
            .checkpoint_every(5000)
            .compact_below(0.9);
        let store = Arc::new(LogStore::open_on(vfs, Path::new(super::DIR), opts)?);
        Pool::builder()
            .budget(2048)
            .deterministic(true)
            .gc_after(u64::MAX)
            .io_threads(1)
            .store(store as Arc<dyn BlobStore>)
            .build()
    }

    pub fn run(data: &[u8]) {
        let [kind, a, b, ops @ ..] = data else {
            return;
        };
        let sim = SimFs::new();
        let faulty = FaultFs::new(Arc::new(sim.clone()));
        let at = u64::from(u16::from_le_bytes([*a, *b]));
        match kind % 5 {
            0 => {}
            k => faulty.plan(Fault::ALL[usize::from(k - 1)], at.max(1)),
        }
        let vfs: Arc<dyn Vfs> = Arc::new(faulty);
        // name → (parent label, leaf count), acknowledged; `None`: acknowledged removed.
        let mut acked: BTreeMap<String, Option<(u64, usize)>> = BTreeMap::new();
        // Names whose last change failed: either state may have landed.
        let mut open_names: BTreeMap<String, (u64, usize)> = BTreeMap::new();
        let mut pool = open(Arc::clone(&vfs)).ok();
        let mut leaves: Vec<Paged<Leaf>> = Vec::new();
        let mut parents: Vec<(u64, usize, Paged<Parent>)> = Vec::new();
        let mut next = 1u64;
        for &op in ops.iter().take(64) {
            let Some(p) = &pool else {
                pool = open(Arc::clone(&vfs)).ok();
                continue;
            };
            match op % 8 {
                0 | 1 => {
                    if let Ok(h) = p.insert(leaf(next)) {
                        leaves.push(h);
                    }
                    next += 1;
                }
                2 if leaves.len() >= 2 => {
                    let kids = leaves[leaves.len() - 2..].to_vec();
                    if let Ok(h) = p.insert((next, kids)) {
                        parents.push((next, 2, h));
                    }
                    next += 1;
                }
                3 => {
                    if let Some((_, n, h)) = parents.get(usize::from(op / 8) % parents.len().max(1))
                    {
                        if let Ok(got) = read(h) {
                            assert_eq!(got, *n, "a graph read back with another shape");
                        }
                    }
                }
                4 => {
                    if let Some((label, n, h)) = parents.last() {
                        let name = format!("r{}", op / 8 % 4);
                        match p.set_root(&name, h) {
                            Ok(_) => {
                                open_names.remove(&name);
                                acked.insert(name, Some((*label, *n)));
                            }
                            Err(_) => {
                                open_names.insert(name.clone(), (*label, *n));
                                acked.remove(&name);
                            }
                        }
                    }
                }
                5 => {
                    let name = format!("r{}", op / 8 % 4);
                    match p.remove_root(&name) {
                        Ok(()) => {
                            open_names.remove(&name);
                            acked.insert(name, None);
                        }
                        Err(_) => {
                            if let Some(Some(g)) = acked.remove(&name) {
                                open_names.insert(name, g);
                            }
                        }
                    }
                }
                6 => {
                    let _ = p.gc();
                }
                7 if op & 0x80 != 0 => {
                    let _ = p.flush(Durability::Durable);
                }
                _ => {
                    // Reopen: the pool and its store go, handles with them.
                    leaves.clear();
                    parents.clear();
                    drop(pool.take());
                    pool = open(Arc::clone(&vfs)).ok();
                }
            }
        }
        drop((leaves, parents, pool));
        // What the process left, reopened without faults.
        let pool = open(Arc::new(sim.process_crash_image()))
            .expect("a store that saw an I/O fault reopens");
        for (name, state) in &acked {
            let root = pool.root::<Parent>(name).expect("roots read");
            match (state, root) {
                (Some((label, n)), Some(h)) => {
                    assert_eq!(read(&h).expect("an acknowledged root's graph"), *n);
                    assert_eq!(h.get().expect("root").0, *label, "root {name}");
                }
                (Some(_), None) => panic!("acknowledged root {name} is missing"),
                (None, Some(_)) => panic!("root {name} was removed, acknowledged, and is back"),
                (None, None) => {}
            }
        }
        for name in open_names.keys() {
            if let Some(h) = pool.root::<Parent>(name).expect("roots read") {
                read(&h).expect("a root whose change failed is whole if it is there");
            }
        }
    }
}

//! Shared helpers of the fuzz targets.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use spillway::format::{checkpoint, marker, roots, segment};
use spillway::serde::{Deserialize, Serialize};
use spillway::vfs::{OpenMode, SimFs, Vfs};
use spillway::{BlobStore, ContentKey, Durability, LogStore, LogStoreOptions, Paged, Put};

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

/// Writes `bytes` as the file `path` and syncs it (errors ignored: the file is then missing).
pub fn write(fs: &SimFs, path: &Path, bytes: &[u8]) {
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

/// The files of a small, cleanly closed log store (marker, `SYNC`, a segment, `ROOTS`, a
/// checkpoint), made once.
fn template() -> &'static [(String, Vec<u8>)] {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let fs = Arc::new(SimFs::new());
        let dir = Path::new(DIR);
        let store = LogStore::open_on(fs.clone(), dir, LogStoreOptions::default()).expect("open");
        let leaf = Put::new(b"a leaf", &[]);
        let children = [leaf.key];
        let root = Put::new(b"a root", &children);
        store.put_batch(&[leaf, root]).expect("put");
        store.set_root("main", Some(root.key)).expect("root");
        store.flush(Durability::Durable).expect("flush");
        store.close().expect("close");
        snapshot(&fs)
    })
}

/// A simulated file system holding the small store of [`template`] in [`DIR`], with its file
/// `name` replaced by `bytes`.
pub fn store_with_file(name: &str, bytes: &[u8]) -> Arc<SimFs> {
    let fs = Arc::new(SimFs::new());
    let dir = Path::new(DIR);
    fs.create_dir_all(dir).expect("mkdir");
    for (n, b) in template() {
        if n != name {
            write(&fs, &dir.join(n), b);
        }
    }
    write(&fs, &dir.join(name), bytes);
    let _ = fs.sync_dir(dir);
    fs
}

/// A value with nested handles, for the codec target: children of its own type and of another.
#[derive(Serialize, Deserialize)]
#[serde(crate = "spillway::serde")]
pub struct Node {
    /// A number.
    pub value: u64,
    /// Bytes.
    pub data: Vec<u8>,
    /// Handles of its own type.
    pub children: Vec<Paged<Node>>,
    /// A handle of another type.
    pub leaf: Option<Paged<Leaf>>,
}

/// The other type [`Node`] holds handles of.
#[derive(Serialize, Deserialize)]
#[serde(crate = "spillway::serde")]
pub struct Leaf {
    /// A name.
    pub name: String,
    /// Numbers.
    pub values: Vec<u32>,
}

impl spillway::get_size2::GetSize for Node {
    fn get_heap_size(&self) -> usize {
        self.data.len() + self.children.len() * std::mem::size_of::<Paged<Node>>()
    }
}

impl spillway::get_size2::GetSize for Leaf {
    fn get_heap_size(&self) -> usize {
        self.name.len() + self.values.len() * 4
    }
}

/// Objects from fuzz input, at most 6: each is `[u8 n][n child references][u16 length][payload]`.
/// A child reference below 0x80 names an earlier object (its index modulo their number; with
/// none, a key of 16 copies of the byte); from 0x80 on, a key of 16 copies of the byte, which no
/// object has.
pub fn objects_from_bytes(mut data: &[u8]) -> Vec<(Vec<u8>, Vec<ContentKey>)> {
    let mut out: Vec<(Vec<u8>, Vec<ContentKey>)> = Vec::new();
    let mut keys: Vec<ContentKey> = Vec::new();
    while out.len() < 6 {
        let Some((&n, rest)) = data.split_first() else {
            break;
        };
        let n = (n as usize % 8).min(rest.len());
        let (refs, rest) = rest.split_at(n);
        let children: Vec<ContentKey> = refs
            .iter()
            .map(|&r| {
                if r < 0x80 && !keys.is_empty() {
                    keys[r as usize % keys.len()]
                } else {
                    ContentKey::from_bytes([r; 16])
                }
            })
            .collect();
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]) as usize, rest),
            _ => (rest.len(), &[][..]),
        };
        let (payload, rest) = rest.split_at(len.min(rest.len()));
        keys.push(ContentKey::of(payload, &children));
        out.push((payload.to_vec(), children));
        data = rest;
    }
    out
}

/// The inverse of [`objects_from_bytes`] for objects whose children are earlier objects (given
/// by index), to make seeds.
pub fn bytes_from_objects(objects: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (payload, children) in objects {
        out.push(children.len() as u8);
        out.extend_from_slice(children);
        out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        out.extend_from_slice(payload);
    }
    out
}

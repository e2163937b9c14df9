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

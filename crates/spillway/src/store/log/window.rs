//! [`Window`]: a segment read through a bounded buffer, for the recovery scan of an open: the
//! records from an offset on, one at a time, with about [`WINDOW`] bytes of the segment in
//! memory (or the one record being decoded, if it is larger) rather than the whole segment.
//!
//! Invariants:
//! - `buf` holds the file's bytes `[base, base + buf.len())`, all within `len`: the file's
//!   length when the scan started (the store is not open yet, so nothing writes to it).
//! - [`record_at`](Window::record_at) decodes a record from a buffer that holds as much of it
//!   as the file does: a record that the window's end cut short is read again with the window
//!   moved to its start and grown to its length, so that the answer (a record, or why not) is
//!   the one a decode of the whole file gives at that offset.

use std::io;
use std::sync::Arc;

use crate::format::DecodeError;
use crate::format::record::{self, Record};
use crate::vfs::VfsFile;

/// Bytes read at a time.
pub(super) const WINDOW: usize = 1 << 20;

/// See the module docs.
pub(super) struct Window {
    file: Arc<dyn VfsFile>,
    len: u64,
    base: u64,
    buf: Vec<u8>,
}

impl Window {
    /// A window on `file`, `len` bytes long; nothing read yet.
    pub fn new(file: Arc<dyn VfsFile>, len: u64) -> Window {
        Window {
            file,
            len,
            base: 0,
            buf: Vec::new(),
        }
    }

    /// The end of what the buffer holds.
    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Reads `[at, at + n)`, cut at the file's end, into the buffer.
    fn fill(&mut self, at: u64, n: u64) -> io::Result<()> {
        let end = at.saturating_add(n).min(self.len);
        let n = usize::try_from(end.saturating_sub(at)).map_err(io::Error::other)?;
        self.buf.clear();
        self.buf.resize(n, 0);
        self.file.read_at(&mut self.buf, at)?;
        self.base = at;
        Ok(())
    }

    /// The buffer from `at` on (`at` within it or at its end).
    fn from(&self, at: u64) -> &[u8] {
        &self.buf[(at - self.base) as usize..]
    }

    /// Bytes `[at, at + n)` of the file, cut at its end.
    pub fn bytes(&mut self, at: u64, n: usize) -> io::Result<&[u8]> {
        let end = at.saturating_add(n as u64).min(self.len);
        if at < self.base || end > self.end() {
            self.fill(at, (n as u64).max(WINDOW as u64))?;
        }
        let from = self.from(at);
        Ok(&from[..from.len().min(n)])
    }

    /// The record at `at` (which must be within the file), decoded and checked as
    /// [`record::decode`] would at that offset of the whole file.
    pub fn record_at(&mut self, at: u64) -> io::Result<Result<Record<'_>, DecodeError>> {
        if at < self.base || at >= self.end() {
            self.fill(at, WINDOW as u64)?;
        }
        // At most twice: once for the header, once for the rest of the record.
        for _ in 0..2 {
            let need = match record::decode_header(self.from(at)) {
                Ok(h) => h.record_len(),
                Err(DecodeError::Truncated { needed, .. }) => needed,
                // `decode` tells what is wrong.
                Err(_) => break,
            };
            if at.saturating_add(need).min(self.len) <= self.end() {
                break;
            }
            self.fill(at, need.max(WINDOW as u64))?;
        }
        Ok(record::decode(self.from(at)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record::RecordKind;
    use crate::key::ContentKey;
    use crate::vfs::{OpenMode, SimFs, Vfs};

    /// Records of every size from a few bytes to twice the window, and a window that reads
    /// each of them, at its offset, exactly as a decode of the whole file does, including the
    /// damage and the torn end.
    #[test]
    fn records_read_through_the_window_are_those_of_the_whole_file() {
        let mut data = vec![0u8; 7];
        let mut offsets = Vec::new();
        for (i, len) in [10usize, 1000, WINDOW - 50, 3, WINDOW * 2, 70_000, 0, 5]
            .into_iter()
            .enumerate()
        {
            let payload = vec![i as u8; len];
            let key = ContentKey::of(&payload, &[]);
            offsets.push(data.len() as u64);
            record::encode(&mut data, RecordKind::Put, &key, &[], &payload);
        }
        // One damaged record, then a torn one at the end.
        let damaged = offsets[3] as usize + record::RECORD_HEADER_LEN + 1;
        data[damaged] ^= 0xff;
        let torn = data.len() as u64;
        record::encode(
            &mut data,
            RecordKind::Put,
            &ContentKey::of(b"t", &[]),
            &[],
            b"torn",
        );
        data.truncate(data.len() - 2);

        let vfs = SimFs::new();
        let path = std::path::Path::new("/seg");
        let f = vfs.open(path, OpenMode::Create).expect("create");
        f.write_at(&data, 0).expect("write");
        let mut w = Window::new(f, data.len() as u64);
        for at in offsets.iter().copied().chain([torn]) {
            let whole = record::decode(&data[at as usize..]);
            let windowed = w.record_at(at).expect("read");
            match (whole, windowed) {
                (Ok(a), Ok(b)) => {
                    assert_eq!((a.header.key, a.payload), (b.header.key, b.payload), "{at}")
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{at}"),
                (a, b) => panic!("at {at}: {:?} against {:?}", a.is_ok(), b.is_ok()),
            }
        }
        assert_eq!(w.bytes(2, 3).expect("read"), &data[2..5]);
        assert_eq!(
            w.bytes(torn + 1, 100).expect("read"),
            &data[torn as usize + 1..]
        );
        // Never more than the window or the largest record at once.
        assert!(w.buf.capacity() <= 2 * WINDOW + 2 * record::RECORD_HEADER_LEN);
    }
}

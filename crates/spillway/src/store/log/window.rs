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
    /// Bytes read at a time: [`WINDOW`] but in tests.
    window: u64,
    base: u64,
    buf: Vec<u8>,
}

impl Window {
    /// A window on `file`, `len` bytes long; nothing read yet.
    pub fn new(file: Arc<dyn VfsFile>, len: u64) -> Window {
        Window::with_window(file, len, WINDOW)
    }

    /// A window that reads `window` bytes at a time.
    fn with_window(file: Arc<dyn VfsFile>, len: u64, window: usize) -> Window {
        Window {
            file,
            len,
            window: window.max(1) as u64,
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
            self.fill(at, (n as u64).max(self.window))?;
        }
        let from = self.from(at);
        Ok(&from[..from.len().min(n)])
    }

    /// Bytes `[from, to)` of the file in a buffer of their own, read at once, whatever the
    /// window (empty if `from >= to`).
    pub fn range(&self, from: u64, to: u64) -> io::Result<Vec<u8>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; usize::try_from(to - from).map_err(io::Error::other)?];
        self.file.read_at(&mut buf, from)?;
        Ok(buf)
    }

    /// The record at `at` (which must be within the file), decoded and checked as
    /// [`record::decode`] would at that offset of the whole file.
    pub fn record_at(&mut self, at: u64) -> io::Result<Result<Record<'_>, DecodeError>> {
        if at < self.base || at >= self.end() {
            self.fill(at, self.window)?;
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
            self.fill(at, need.max(self.window))?;
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

    proptest::proptest! {
        /// Any segment (records of any size, bytes flipped, cut anywhere), any window size: a
        /// scan through the window meets the records a scan of the whole file meets, at the
        /// same offsets, and stops where it stops, for the same reason.
        #[test]
        fn a_windowed_scan_is_the_whole_file_scan(
            sizes in proptest::collection::vec(0usize..300, 1..12),
            flips in proptest::collection::vec((0usize..4000, 1u8..=255), 0..3),
            cut in 0usize..200,
            window in 1usize..400,
        ) {
            let mut data = vec![0u8; 5];
            for (i, len) in sizes.iter().enumerate() {
                let payload = vec![i as u8; *len];
                let key = ContentKey::of(&payload, &[]);
                record::encode(&mut data, RecordKind::Put, &key, &[], &payload);
            }
            for (at, x) in flips {
                let n = data.len();
                data[at % n] ^= x;
            }
            data.truncate(data.len().saturating_sub(cut).max(5));
            let vfs = SimFs::new();
            let f = vfs.open(std::path::Path::new("/seg"), OpenMode::Create).expect("create");
            f.write_at(&data, 0).expect("write");
            let mut w = Window::with_window(f, data.len() as u64, window);
            let mut at = 5u64;
            while (at as usize) < data.len() {
                let whole = record::decode(&data[at as usize..]);
                let windowed = w.record_at(at).expect("read");
                match (whole, windowed) {
                    (Ok(a), Ok(b)) => {
                        proptest::prop_assert_eq!(a.header.key, b.header.key);
                        proptest::prop_assert_eq!(a.payload, b.payload);
                        at += a.header.record_len();
                    }
                    (Err(a), Err(b)) => {
                        proptest::prop_assert_eq!(a.to_string(), b.to_string());
                        break;
                    }
                    (a, b) => proptest::prop_assert!(
                        false,
                        "at {}: {:?} against {:?}",
                        at,
                        a.is_ok(),
                        b.is_ok()
                    ),
                }
            }
        }
    }
}

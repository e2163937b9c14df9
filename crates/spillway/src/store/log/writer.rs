//! The single writer of a log store: the active segment and the bytes not yet handed to the OS.
//!
//! Records are encoded into `pending` (the [`Durability::Applied`](crate::Durability) level) and
//! written to the active segment at `written_len` in large chunks. The invariant
//! `segment length as the index sees it == written_len + pending.len()` holds whenever the
//! writer lock is released.

use std::sync::Arc;

use crate::format::checkpoint::LogPosition;
use crate::vfs::VfsFile;

#[derive(Debug)]
pub(super) struct Writer {
    /// Id of the segment being appended to.
    pub active: u64,
    /// Its file.
    pub file: Arc<dyn VfsFile>,
    /// Bytes of the active segment already handed to the OS.
    pub written_len: u64,
    /// Encoded records (and, for a new segment, its header) not yet written.
    pub pending: Vec<u8>,
    /// A segment file was created since the directory was last synced.
    pub dir_dirty: bool,
    /// Log bytes appended since the last index checkpoint.
    pub since_checkpoint: u64,
}

impl Writer {
    /// Offset at which the next record will start.
    pub fn end(&self) -> u64 {
        self.written_len + self.pending.len() as u64
    }

    /// Everything before this position has been handed to the OS.
    pub fn written_position(&self) -> LogPosition {
        LogPosition {
            segment: self.active,
            offset: self.written_len,
        }
    }

    /// Hands the pending bytes to the OS. Returns the number of bytes written.
    pub fn write_pending(&mut self) -> std::io::Result<u64> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        self.file.write_at(&self.pending, self.written_len)?;
        let n = self.pending.len() as u64;
        self.written_len += n;
        self.pending.clear();
        Ok(n)
    }
}

//! Reading records out of segments.
//!
//! Sealed segments never change, so a writable store memory-maps them and decodes records in
//! place. The active segment (and every segment of a read-only store, whose files another process
//! may still be appending to) is read with positioned reads.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::DecodeError;
use crate::format::checkpoint::Location;
use crate::format::record::{self, RECORD_HEADER_LEN, RECORD_MAGIC, RecordKind};
use crate::key::{ContentKey, KEY_LEN};
use crate::store::Blob;
use crate::vfs::{FileView, VfsFile};

#[derive(Clone)]
pub(super) enum SegmentReader {
    Mapped(FileView),
    File(Arc<dyn VfsFile>),
    /// The active segment, mapped ahead of its end: records wholly inside the mapping are read
    /// from it, others with positioned reads. Readers only ever ask for bytes already written
    /// to the file (see `Published` in the store), so the mapping is never read past the end
    /// of the file.
    Active(Arc<dyn VfsFile>, FileView),
}

impl std::fmt::Debug for SegmentReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentReader::Mapped(v) => write!(f, "Mapped({} bytes)", v.as_ref().as_ref().len()),
            SegmentReader::File(_) => f.write_str("File"),
            SegmentReader::Active(_, v) => {
                write!(f, "Active(mapped {} bytes)", v.as_ref().as_ref().len())
            }
        }
    }
}

/// Where a record is, for messages: `seg-….log offset N`.
pub(super) fn describe(dir: &Path, loc: Location) -> String {
    format!(
        "{} offset {}",
        dir.join(crate::format::segment::file_name(loc.segment))
            .display(),
        loc.offset
    )
}

/// The bytes of one record: borrowed from a mapping, or read into a buffer of their own.
pub(super) enum RecordBytes<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl RecordBytes<'_> {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            RecordBytes::Borrowed(b) => b,
            RecordBytes::Owned(v) => v,
        }
    }
}

impl SegmentReader {
    /// Runs `f` on the bytes of the record at `loc` (not yet checked: `f` decodes them).
    pub fn with_record<T>(
        &self,
        dir: &Path,
        loc: Location,
        f: impl FnOnce(RecordBytes<'_>) -> Result<T>,
    ) -> Result<T> {
        match self {
            SegmentReader::Active(file, view)
                if loc.offset + u64::from(loc.len) > view.as_ref().as_ref().len() as u64 =>
            {
                SegmentReader::File(Arc::clone(file)).with_record(dir, loc, f)
            }
            SegmentReader::Mapped(view) | SegmentReader::Active(_, view) => {
                let bytes: &[u8] = view.as_ref().as_ref();
                let start = usize::try_from(loc.offset).unwrap_or(usize::MAX);
                let slice = start
                    .checked_add(loc.len as usize)
                    .and_then(|end| bytes.get(start..end))
                    .ok_or_else(|| Error::Corrupted {
                        what: "record",
                        location: describe(dir, loc),
                        detail: format!("the segment ends at byte {}", bytes.len()),
                    })?;
                f(RecordBytes::Borrowed(slice))
            }
            SegmentReader::File(file) => {
                let mut buf = vec![0u8; loc.len as usize];
                file.read_at(&mut buf, loc.offset)
                    .map_err(|e| Error::io("read", describe(dir, loc), e))?;
                f(RecordBytes::Owned(buf))
            }
        }
    }
}

/// Checks the record `bytes` as the put of `key` and makes a blob of it (without copying an
/// owned buffer's payload).
pub(super) fn blob_of(
    bytes: RecordBytes<'_>,
    dir: &Path,
    loc: Location,
    key: &ContentKey,
) -> Result<Blob> {
    match bytes {
        RecordBytes::Borrowed(slice) => {
            let r = decode_checked(slice, dir, loc, key)?;
            Ok(Blob {
                children: r.child_keys(),
                payload: r.payload.to_vec(),
            })
        }
        RecordBytes::Owned(buf) => blob_from_record_bytes(buf, dir, loc, key),
    }
}

/// Checks the record `bytes` as the put of `key` (its checksum covers the payload too) and
/// returns its child keys.
pub(super) fn children_of(
    bytes: RecordBytes<'_>,
    dir: &Path,
    loc: Location,
    key: &ContentKey,
) -> Result<Vec<ContentKey>> {
    Ok(decode_checked(bytes.as_slice(), dir, loc, key)?.child_keys())
}

/// Decodes `bytes` (exactly one record) and checks that it is the put of `key`.
pub(super) fn decode_checked<'a>(
    bytes: &'a [u8],
    dir: &Path,
    loc: Location,
    key: &ContentKey,
) -> Result<record::Record<'a>> {
    let r = record::decode(bytes).map_err(|e| e.at("record", describe(dir, loc)))?;
    if r.header.kind != RecordKind::Put || r.header.key != *key {
        return Err(Error::Corrupted {
            what: "index",
            location: describe(dir, loc),
            detail: format!(
                "expected the put of key {key}, found a {:?} of key {}",
                r.header.kind, r.header.key
            ),
        });
    }
    Ok(r)
}

/// Turns an owned record buffer into a blob, reusing the buffer for the payload.
pub(super) fn blob_from_record_bytes(
    mut buf: Vec<u8>,
    dir: &Path,
    loc: Location,
    key: &ContentKey,
) -> Result<Blob> {
    let children = decode_checked(&buf, dir, loc, key)?.child_keys();
    buf.drain(..RECORD_HEADER_LEN + children.len() * KEY_LEN);
    Ok(Blob {
        children,
        payload: buf,
    })
}

/// One step of a [`records_tolerant`] scan.
#[derive(Debug)]
pub(super) enum Scanned<'a> {
    /// A record that decodes and checks out, with its offset.
    Record(usize, record::Record<'a>),
    /// Bytes `start..end` hold no record that checks out: the scan found the next one at `end`
    /// (or the segment ends there). `reason` is why the record at `start` was refused.
    Damaged {
        start: usize,
        end: usize,
        reason: DecodeError,
    },
}

/// The records of a segment's bytes from `from` on, stepping over damage: after a record that
/// does not decode, the scan looks for the next offset where a record decodes, its checksum
/// holds and (for a put) its key is the hash of its content, and goes on from there. What lies
/// between is reported as one [`Scanned::Damaged`] range.
///
/// Repair and tolerant opens use it, so that damage in the middle of a segment costs only the
/// records it touches. Looking for the next record costs a checksum per candidate; a segment
/// crafted with many false candidates would make that quadratic, so the bytes checked are
/// bounded by a multiple of the segment's length, after which the rest of the segment counts as
/// damaged (the safe side: nothing unverified is trusted).
pub(super) fn records_tolerant(data: &[u8], from: usize) -> TolerantScan<'_> {
    TolerantScan {
        data,
        pos: from,
        budget: (data.len() as u64)
            .saturating_mul(8)
            .saturating_add(1 << 20),
    }
}

/// See [`records_tolerant`].
pub(super) struct TolerantScan<'a> {
    data: &'a [u8],
    pos: usize,
    /// Bytes that resynchronisation may still checksum.
    budget: u64,
}

impl TolerantScan<'_> {
    /// The first offset after `from` where a verified record starts, or the end of the data.
    fn resync(&mut self, from: usize) -> usize {
        let data = self.data;
        let mut i = from;
        while i + RECORD_MAGIC.len() <= data.len() {
            let Some(p) = data[i..].windows(4).position(|w| w == RECORD_MAGIC) else {
                break;
            };
            let at = i + p;
            if let Ok(h) = record::decode_header(&data[at..]) {
                let cost = h.record_len();
                if cost > self.budget {
                    self.budget = 0;
                    return data.len();
                }
                self.budget -= cost;
                if let Ok(r) = record::decode(&data[at..])
                    && (r.header.kind == RecordKind::Tombstone
                        || ContentKey::of(r.payload, &r.child_keys()) == r.header.key)
                {
                    return at;
                }
            }
            i = at + 1;
        }
        data.len()
    }
}

impl<'a> Iterator for TolerantScan<'a> {
    type Item = Scanned<'a>;

    fn next(&mut self) -> Option<Scanned<'a>> {
        if self.pos >= self.data.len() {
            return None;
        }
        let at = self.pos;
        match record::decode(&self.data[at..]) {
            Ok(r) => {
                self.pos += r.header.record_len() as usize;
                Some(Scanned::Record(at, r))
            }
            Err(reason) => {
                let end = self.resync(at + 1);
                self.pos = end;
                Some(Scanned::Damaged {
                    start: at,
                    end,
                    reason,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::segment::SEGMENT_HEADER_LEN;

    #[test]
    fn the_tolerant_scan_steps_over_damage_and_names_its_range() {
        let mut data = vec![0u8; SEGMENT_HEADER_LEN];
        let keys: Vec<ContentKey> = (0..4u8).map(|i| ContentKey::of(&[i; 100], &[])).collect();
        let mut starts = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            starts.push(data.len());
            record::encode(&mut data, RecordKind::Put, k, &[], &[i as u8; 100]);
        }
        let end = data.len();
        // A flipped payload byte in the second record, garbage over the start of the fourth.
        data[starts[1] + RECORD_HEADER_LEN + 5] ^= 0x40;
        data[starts[3]..starts[3] + 10].fill(0xee);
        let items: Vec<_> = records_tolerant(&data, SEGMENT_HEADER_LEN)
            .map(|s| match s {
                Scanned::Record(at, r) => Ok((at, r.header.key)),
                Scanned::Damaged { start, end, .. } => Err((start, end)),
            })
            .collect();
        assert_eq!(
            items,
            vec![
                Ok((starts[0], keys[0])),
                Err((starts[1], starts[2])),
                Ok((starts[2], keys[2])),
                Err((starts[3], end)),
            ]
        );
    }

    #[test]
    fn the_tolerant_scan_does_not_trust_a_record_whose_key_is_not_its_hash() {
        let mut data = vec![0u8; SEGMENT_HEADER_LEN];
        let good = ContentKey::of(b"good", &[]);
        data.extend_from_slice(&[0xaa; 40]);
        let forged = data.len();
        // Checksum right, key wrong: not a record any writer made.
        record::encode(&mut data, RecordKind::Put, &good, &[], b"forged");
        let real = data.len();
        record::encode(&mut data, RecordKind::Put, &good, &[], b"good");
        let items: Vec<_> = records_tolerant(&data, SEGMENT_HEADER_LEN)
            .map(|s| match s {
                Scanned::Record(at, _) => Ok(at),
                Scanned::Damaged { start, end, .. } => Err((start, end)),
            })
            .collect();
        assert_eq!(items, vec![Err((SEGMENT_HEADER_LEN, real)), Ok(real)]);
        assert!(forged > SEGMENT_HEADER_LEN);
    }

    #[test]
    fn the_tolerant_scan_gives_up_on_a_flood_of_false_candidates() {
        // Every byte starts a header that claims a large record: checking them all would be
        // quadratic; the scan stops at its budget and calls the rest damaged.
        let mut fake = Vec::new();
        let k = ContentKey::of(b"x", &[]);
        record::encode(&mut fake, RecordKind::Put, &k, &[], &[7u8; 4000]);
        let mut data = vec![0u8; SEGMENT_HEADER_LEN];
        for _ in 0..2000 {
            data.extend_from_slice(&fake[..RECORD_HEADER_LEN]);
        }
        let items: Vec<_> = records_tolerant(&data, SEGMENT_HEADER_LEN).collect();
        assert_eq!(items.len(), 1);
        assert!(
            matches!(items[0], Scanned::Damaged { start, end, .. } if start == SEGMENT_HEADER_LEN && end == data.len())
        );
    }
}

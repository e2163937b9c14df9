//! The index checkpoint, `index.ckpt`: a snapshot of the log store's index (key → record
//! location) that lets open skip re-reading every segment. It covers every record before its
//! *tail position*; open loads it and scans only the log after that position.
//!
//! Header (48 bytes), then `count` entries of 36 bytes each:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"SPILLIDX"` |
//! | 8 | 4 | format version, u32 (1) |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | tail segment id, u64 |
//! | 24 | 8 | tail offset within that segment, u64 |
//! | 32 | 8 | entry count, u64 |
//! | 40 | 4 | CRC32C of the entries region |
//! | 44 | 4 | CRC32C of bytes 0..44 |
//!
//! Entry: key (16), segment id (u64), record offset (u64), record length (u32). The store writes
//! the entries in ascending key order; `decode` accepts any order.
//!
//! The file length must be exactly `48 + 36 × count`; the count is checked against the length
//! before anything is allocated. The checkpoint is written to `index.ckpt.tmp`, fsynced, renamed
//! over `index.ckpt`, and the directory fsynced, so it is replaced atomically.

use super::{DecodeError, check_crc, le_u32, le_u64, need};
use crate::key::{ContentKey, KEY_LEN};

/// File name of the checkpoint inside a store directory.
pub const CHECKPOINT_FILE: &str = "index.ckpt";
/// Temporary name the checkpoint is written under before the rename.
pub const CHECKPOINT_TMP_FILE: &str = "index.ckpt.tmp";
/// Magic bytes at the start of the checkpoint.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"SPILLIDX";
/// Checkpoint format version written by this build, and the newest it reads.
pub const CHECKPOINT_VERSION: u32 = 1;
/// Length of the checkpoint header.
pub const CHECKPOINT_HEADER_LEN: usize = 48;
/// Length of one checkpoint entry.
pub const CHECKPOINT_ENTRY_LEN: usize = 36;

/// Where a record lives in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Segment id.
    pub segment: u64,
    /// Byte offset of the record within the segment file.
    pub offset: u64,
    /// Total record length, header included.
    pub len: u32,
}

/// A position in the log: every record strictly before it is covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogPosition {
    /// Segment id.
    pub segment: u64,
    /// Byte offset within the segment.
    pub offset: u64,
}

/// A decoded checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Records before this position are reflected in `entries`.
    pub tail: LogPosition,
    /// The live keys and where their records are.
    pub entries: Vec<(ContentKey, Location)>,
}

/// Encodes a checkpoint.
pub fn encode<'a>(
    tail: LogPosition,
    entries: impl ExactSizeIterator<Item = (&'a ContentKey, &'a Location)>,
) -> Vec<u8> {
    let body: Vec<[u8; CHECKPOINT_ENTRY_LEN]> = entries.map(|(k, l)| encode_entry(k, l)).collect();
    let body = body.as_flattened();
    let mut out = Vec::with_capacity(CHECKPOINT_HEADER_LEN + body.len());
    out.extend_from_slice(&encode_header(tail, body));
    out.extend_from_slice(body);
    out
}

/// One entry, as the checkpoint holds it: in key order, entries sort as their bytes do.
pub fn encode_entry(key: &ContentKey, loc: &Location) -> [u8; CHECKPOINT_ENTRY_LEN] {
    let mut e = [0u8; CHECKPOINT_ENTRY_LEN];
    e[..KEY_LEN].copy_from_slice(key.as_bytes());
    e[KEY_LEN..KEY_LEN + 8].copy_from_slice(&loc.segment.to_le_bytes());
    e[KEY_LEN + 8..KEY_LEN + 16].copy_from_slice(&loc.offset.to_le_bytes());
    e[KEY_LEN + 16..].copy_from_slice(&loc.len.to_le_bytes());
    e
}

/// The header of a checkpoint whose entries region is `body` (whole entries, in the order
/// written), so that a writer can write the entries where they are, after it.
pub fn encode_header(tail: LogPosition, body: &[u8]) -> [u8; CHECKPOINT_HEADER_LEN] {
    debug_assert_eq!(body.len() % CHECKPOINT_ENTRY_LEN, 0);
    let count = (body.len() / CHECKPOINT_ENTRY_LEN) as u64;
    let mut h = [0u8; CHECKPOINT_HEADER_LEN];
    h[..8].copy_from_slice(&CHECKPOINT_MAGIC);
    h[8..12].copy_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&tail.segment.to_le_bytes());
    h[24..32].copy_from_slice(&tail.offset.to_le_bytes());
    h[32..40].copy_from_slice(&count.to_le_bytes());
    h[40..44].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    let head_crc = crc32c::crc32c(&h[..44]);
    h[44..48].copy_from_slice(&head_crc.to_le_bytes());
    h
}

/// Decodes a checkpoint, checking both checksums and the exact length.
pub fn decode(b: &[u8]) -> Result<Checkpoint, DecodeError> {
    need(b, CHECKPOINT_HEADER_LEN)?;
    if b[..8] != CHECKPOINT_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    check_crc(le_u32(b, 44), &b[..44])?;
    let version = le_u32(b, 8);
    if version != CHECKPOINT_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    if le_u32(b, 12) != 0 {
        return Err(DecodeError::Invalid(
            "reserved header bytes are not zero".into(),
        ));
    }
    let count = le_u64(b, 32);
    let body_len = (b.len() - CHECKPOINT_HEADER_LEN) as u64;
    if count.checked_mul(CHECKPOINT_ENTRY_LEN as u64) != Some(body_len) {
        return Err(DecodeError::Invalid(format!(
            "entry count {count} does not match the {body_len} bytes of entries present"
        )));
    }
    let body = &b[CHECKPOINT_HEADER_LEN..];
    check_crc(le_u32(b, 40), body)?;
    let entries = body
        .chunks_exact(CHECKPOINT_ENTRY_LEN)
        .map(|e| {
            let mut k = [0u8; KEY_LEN];
            k.copy_from_slice(&e[..16]);
            (
                ContentKey::from_bytes(k),
                Location {
                    segment: le_u64(e, 16),
                    offset: le_u64(e, 24),
                    len: le_u32(e, 32),
                },
            )
        })
        .collect();
    Ok(Checkpoint {
        tail: LogPosition {
            segment: le_u64(b, 16),
            offset: le_u64(b, 24),
        },
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, Checkpoint) {
        let entries: Vec<_> = (0..3u64)
            .map(|i| {
                (
                    ContentKey::of(&i.to_le_bytes(), &[]),
                    Location {
                        segment: i + 1,
                        offset: 32 + i * 100,
                        len: 40 + i as u32,
                    },
                )
            })
            .collect();
        let tail = LogPosition {
            segment: 4,
            offset: 1234,
        };
        let b = encode(tail, entries.iter().map(|(k, l)| (k, l)));
        (b, Checkpoint { tail, entries })
    }

    #[test]
    fn round_trip() {
        let (b, c) = sample();
        assert_eq!(b.len(), CHECKPOINT_HEADER_LEN + 3 * CHECKPOINT_ENTRY_LEN);
        assert_eq!(decode(&b).unwrap(), c);
        let empty = encode(LogPosition::default(), std::iter::empty());
        assert!(decode(&empty).unwrap().entries.is_empty());
    }

    #[test]
    fn every_single_byte_corruption_is_detected() {
        let (b, _) = sample();
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(decode(&c).is_err(), "flip at {i} not detected");
        }
        for len in 0..b.len() {
            assert!(
                decode(&b[..len]).is_err(),
                "truncation to {len} not detected"
            );
        }
    }
}

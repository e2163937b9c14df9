//! Log records: the unit of the segment log.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"SPRC"` |
//! | 4 | 4 | CRC32C of bytes 8..end of record |
//! | 8 | 1 | kind: 1 = put, 2 = tombstone |
//! | 9 | 1 | flags, zero |
//! | 10 | 2 | reserved, zero |
//! | 12 | 4 | child count `c`, u32 |
//! | 16 | 4 | payload length `n`, u32 |
//! | 20 | 16 | content key |
//! | 36 | 16 × c | child keys |
//! | 36 + 16c | n | payload |
//!
//! A tombstone has `c = 0` and `n = 0`. Child keys are framed outside the payload so that tools
//! can walk a graph in any store without knowing the Rust types that wrote it.

use super::{DecodeError, check_crc, le_u16, le_u32, need};
use crate::key::{ContentKey, KEY_LEN};

/// Magic bytes at the start of every record.
pub const RECORD_MAGIC: [u8; 4] = *b"SPRC";
/// Length of the fixed record header.
pub const RECORD_HEADER_LEN: usize = 36;
/// Kind byte of a put record.
pub const KIND_PUT: u8 = 1;
/// Kind byte of a tombstone record.
pub const KIND_TOMBSTONE: u8 = 2;
/// Largest payload a record may hold (1 GiB): a larger length field is corruption, rejected
/// before allocating.
pub const MAX_PAYLOAD_LEN: u32 = 1 << 30;
/// Largest number of child keys a record may hold.
pub const MAX_CHILDREN: u32 = 1 << 20;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// The object with this key is stored here.
    Put,
    /// The object with this key was deleted.
    Tombstone,
}

/// The decoded fixed header of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Put or tombstone.
    pub kind: RecordKind,
    /// Number of child keys.
    pub child_count: u32,
    /// Payload length.
    pub payload_len: u32,
    /// The object's key.
    pub key: ContentKey,
    /// Stored checksum.
    pub crc: u32,
}

impl RecordHeader {
    /// Total length of the record, header included.
    pub fn record_len(&self) -> u64 {
        record_len(self.child_count as usize, self.payload_len as usize)
    }
}

/// Total length of a record with `child_count` children and `payload_len` payload bytes.
pub fn record_len(child_count: usize, payload_len: usize) -> u64 {
    (RECORD_HEADER_LEN + child_count * KEY_LEN + payload_len) as u64
}

/// A decoded record borrowing the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The fixed header.
    pub header: RecordHeader,
    /// Child keys, 16 bytes each, in order.
    pub children: &'a [u8],
    /// The payload.
    pub payload: &'a [u8],
}

impl Record<'_> {
    /// The child keys as values.
    pub fn child_keys(&self) -> Vec<ContentKey> {
        self.children
            .chunks_exact(KEY_LEN)
            .map(|c| {
                let mut k = [0u8; KEY_LEN];
                k.copy_from_slice(c);
                ContentKey::from_bytes(k)
            })
            .collect()
    }
}

/// Appends an encoded record to `out`.
///
/// Panics only if the caller passes more than [`MAX_CHILDREN`] children or a payload over
/// [`MAX_PAYLOAD_LEN`]; the store checks both and returns [`crate::Error::TooLarge`] first.
pub fn encode(
    out: &mut Vec<u8>,
    kind: RecordKind,
    key: &ContentKey,
    children: &[ContentKey],
    payload: &[u8],
) {
    assert!(children.len() <= MAX_CHILDREN as usize && payload.len() <= MAX_PAYLOAD_LEN as usize);
    let start = out.len();
    out.reserve(record_len(children.len(), payload.len()) as usize);
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&[0u8; 4]);
    out.push(match kind {
        RecordKind::Put => KIND_PUT,
        RecordKind::Tombstone => KIND_TOMBSTONE,
    });
    out.extend_from_slice(&[0u8; 3]);
    out.extend_from_slice(&(children.len() as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    for c in children {
        out.extend_from_slice(c.as_bytes());
    }
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes and validates the fixed header (not the checksum, which covers the body too).
///
/// Lengths are checked against the hard limits here, so a caller may trust
/// [`RecordHeader::record_len`] to be bounded before it reads or allocates the body.
pub fn decode_header(b: &[u8]) -> Result<RecordHeader, DecodeError> {
    need(b, RECORD_HEADER_LEN)?;
    if b[..4] != RECORD_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let kind = match b[8] {
        KIND_PUT => RecordKind::Put,
        KIND_TOMBSTONE => RecordKind::Tombstone,
        k => return Err(DecodeError::Invalid(format!("unknown record kind {k}"))),
    };
    if b[9] != 0 || le_u16(b, 10) != 0 {
        return Err(DecodeError::Invalid(
            "reserved record bytes are not zero".into(),
        ));
    }
    let child_count = le_u32(b, 12);
    let payload_len = le_u32(b, 16);
    if child_count > MAX_CHILDREN {
        return Err(DecodeError::TooLarge {
            what: "child list",
            len: u64::from(child_count) * KEY_LEN as u64,
            limit: u64::from(MAX_CHILDREN) * KEY_LEN as u64,
        });
    }
    if payload_len > MAX_PAYLOAD_LEN {
        return Err(DecodeError::TooLarge {
            what: "payload",
            len: u64::from(payload_len),
            limit: u64::from(MAX_PAYLOAD_LEN),
        });
    }
    if kind == RecordKind::Tombstone && (child_count != 0 || payload_len != 0) {
        return Err(DecodeError::Invalid("tombstone with a body".into()));
    }
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&b[20..36]);
    Ok(RecordHeader {
        kind,
        child_count,
        payload_len,
        key: ContentKey::from_bytes(key),
        crc: le_u32(b, 4),
    })
}

/// Decodes a whole record at the start of `b`, checksum included. Returns the record; its length
/// is `record.header.record_len()`.
pub fn decode(b: &[u8]) -> Result<Record<'_>, DecodeError> {
    let header = decode_header(b)?;
    let len = header.record_len() as usize;
    need(b, len)?;
    check_crc(header.crc, &b[8..len])?;
    let children_end = RECORD_HEADER_LEN + header.child_count as usize * KEY_LEN;
    Ok(Record {
        header,
        children: &b[RECORD_HEADER_LEN..children_end],
        payload: &b[children_end..len],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, ContentKey, Vec<ContentKey>) {
        let children = vec![ContentKey::of(b"a", &[]), ContentKey::of(b"b", &[])];
        let key = ContentKey::of(b"payload", &children);
        let mut out = Vec::new();
        encode(&mut out, RecordKind::Put, &key, &children, b"payload");
        (out, key, children)
    }

    #[test]
    fn put_round_trip() {
        let (b, key, children) = sample();
        assert_eq!(b.len() as u64, record_len(2, 7));
        let r = decode(&b).unwrap();
        assert_eq!(r.header.kind, RecordKind::Put);
        assert_eq!(r.header.key, key);
        assert_eq!(r.child_keys(), children);
        assert_eq!(r.payload, b"payload");
    }

    #[test]
    fn tombstone_round_trip() {
        let key = ContentKey::of(b"gone", &[]);
        let mut b = Vec::new();
        encode(&mut b, RecordKind::Tombstone, &key, &[], &[]);
        let r = decode(&b).unwrap();
        assert_eq!(r.header.kind, RecordKind::Tombstone);
        assert_eq!(r.header.key, key);
        assert!(r.payload.is_empty());
    }

    #[test]
    fn every_single_byte_corruption_is_detected() {
        let (b, _, _) = sample();
        for i in 0..b.len() {
            for flip in [0x01u8, 0x80] {
                let mut c = b.clone();
                c[i] ^= flip;
                assert!(decode(&c).is_err(), "flip {flip:#x} at {i} not detected");
            }
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let (b, _, _) = sample();
        for len in 0..b.len() {
            assert!(matches!(
                decode(&b[..len]),
                Err(DecodeError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn absurd_lengths_are_rejected_before_reading_the_body() {
        let (mut b, _, _) = sample();
        b[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_header(&b),
            Err(DecodeError::TooLarge { .. })
        ));
        let (mut b, _, _) = sample();
        b[12..16].copy_from_slice(&(MAX_CHILDREN + 1).to_le_bytes());
        assert!(matches!(
            decode_header(&b),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}

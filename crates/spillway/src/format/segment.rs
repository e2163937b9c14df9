//! Segment file header. A segment is one file of the append-only log, named
//! `seg-<id as 16 hex digits>.log`; after its 32-byte header come records
//! ([`super::record`]) back to back.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"SPILLSEG"` |
//! | 8 | 4 | format version, u32 (1) |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | segment id, u64 (equals the id in the file name) |
//! | 24 | 4 | reserved, zero |
//! | 28 | 4 | CRC32C of bytes 0..28 |

use super::{DecodeError, check_crc, le_u32, le_u64, need};

/// Magic bytes at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SPILLSEG";
/// Segment format version written by this build, and the newest it reads.
pub const SEGMENT_VERSION: u32 = 1;
/// Length of the segment header; the first record starts here.
pub const SEGMENT_HEADER_LEN: usize = 32;

/// File name of segment `id`.
pub fn file_name(id: u64) -> String {
    format!("seg-{id:016x}.log")
}

/// Parses a segment file name back into its id; `None` for any other file.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Encodes the header of segment `id`.
pub fn encode_header(id: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    b[..8].copy_from_slice(&SEGMENT_MAGIC);
    b[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&id.to_le_bytes());
    let crc = crc32c::crc32c(&b[..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a segment header and returns the segment id it names.
pub fn decode_header(b: &[u8]) -> Result<u64, DecodeError> {
    need(b, SEGMENT_HEADER_LEN)?;
    if b[..8] != SEGMENT_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    check_crc(le_u32(b, 28), &b[..28])?;
    let version = le_u32(b, 8);
    if version != SEGMENT_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    if le_u32(b, 12) != 0 || le_u32(b, 24) != 0 {
        return Err(DecodeError::Invalid(
            "reserved header bytes are not zero".into(),
        ));
    }
    Ok(le_u64(b, 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_byte_corruption() {
        let b = encode_header(0x1234);
        assert_eq!(decode_header(&b), Ok(0x1234));
        for i in 0..b.len() {
            let mut c = b;
            c[i] ^= 0x01;
            assert!(decode_header(&c).is_err(), "flip at {i} not detected");
        }
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(26), "seg-000000000000001a.log");
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_file_name("seg-1.log"), None);
        assert_eq!(parse_file_name("index.ckpt"), None);
    }
}

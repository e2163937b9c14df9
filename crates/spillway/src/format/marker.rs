//! The store marker file, `STORE`: identifies a directory as a spillway log store and records
//! the format version of its files.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"SPILLSTO"` |
//! | 8 | 4 | format version, u32 (3; 2 for stores whose values carry no type tag, 1 for stores without a `SYNC` file either) |
//! | 12 | 4 | CRC32C of bytes 0..12 |

use super::{DecodeError, check_crc, le_u32, need};

/// File name of the marker inside a store directory.
pub const MARKER_FILE: &str = "STORE";
/// A marker being written to replace an older version's; removed on open.
pub const MARKER_TMP_FILE: &str = "STORE.tmp";
/// Magic bytes at the start of the marker.
pub const MARKER_MAGIC: [u8; 8] = *b"SPILLSTO";
/// Length of the marker file.
pub const MARKER_LEN: usize = 16;
/// The store format version this build writes and the newest it reads.
///
/// - 1: the first; no `SYNC` file. A writable open upgrades such a store to 2.
/// - 2: a `SYNC` file ([`super::sync`]) records how far the log is synced.
/// - 3: values, as a pool stores them, start with a type tag ([`value`](super::value)).
///
/// The records are the same in all three: a store of any version opens and reads as blobs, but
/// a pool refuses one below [`TAGGED_VALUES_VERSION`], whose values carry no tag.
pub const STORE_VERSION: u32 = 3;
/// The first version with a `SYNC` file: what a writable open upgrades a version 1 store to
/// (never further: the values of a store written without tags keep none).
pub const SYNC_VERSION: u32 = 2;
/// The first version whose values carry a type tag.
pub const TAGGED_VALUES_VERSION: u32 = 3;

/// Encodes the marker for `version`.
pub fn encode(version: u32) -> [u8; MARKER_LEN] {
    let mut b = [0u8; MARKER_LEN];
    b[..8].copy_from_slice(&MARKER_MAGIC);
    b[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = crc32c::crc32c(&b[..12]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a marker and returns its version (not yet checked against [`STORE_VERSION`]).
pub fn decode(b: &[u8]) -> Result<u32, DecodeError> {
    need(b, MARKER_LEN)?;
    if b[..8] != MARKER_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    check_crc(le_u32(b, 12), &b[..12])?;
    if b.len() != MARKER_LEN {
        return Err(DecodeError::Invalid(format!(
            "marker is {} bytes, expected {MARKER_LEN}",
            b.len()
        )));
    }
    Ok(le_u32(b, 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_byte_corruption() {
        let b = encode(STORE_VERSION);
        assert_eq!(decode(&b), Ok(STORE_VERSION));
        assert_eq!(decode(&encode(1)), Ok(1));
        for i in 0..b.len() {
            let mut c = b;
            c[i] ^= 0x40;
            assert!(decode(&c).is_err(), "flip at {i} not detected");
        }
        assert!(decode(&b[..10]).is_err());
    }
}

//! The named-roots file, `ROOTS`: names that keep graphs alive across restarts and garbage
//! collection. Replaced whole, atomically (written to `ROOTS.tmp`, fsynced, renamed, directory
//! fsynced).
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"SPILLRTS"` |
//! | 8 | 4 | format version, u32 (1) |
//! | 12 | 4 | root count, u32 |
//!
//! Then per root: name length (u16, at most 1024), the name (UTF-8), its content key (16).
//! Last, a CRC32C (u32) of every byte before it.

use super::{DecodeError, check_crc, le_u16, le_u32, need};
use crate::key::{ContentKey, KEY_LEN};

/// File name of the roots file inside a store directory.
pub const ROOTS_FILE: &str = "ROOTS";
/// Temporary name it is written under before the rename.
pub const ROOTS_TMP_FILE: &str = "ROOTS.tmp";
/// Magic bytes at the start of the roots file.
pub const ROOTS_MAGIC: [u8; 8] = *b"SPILLRTS";
/// Roots file format version.
pub const ROOTS_VERSION: u32 = 1;
/// Length of the fixed header.
pub const ROOTS_HEADER_LEN: usize = 16;
/// Longest root name, in bytes.
pub const MAX_ROOT_NAME: usize = 1024;

/// Encodes the roots, sorted by name.
pub fn encode(roots: &[(String, ContentKey)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&ROOTS_MAGIC);
    out.extend_from_slice(&ROOTS_VERSION.to_le_bytes());
    out.extend_from_slice(&(roots.len() as u32).to_le_bytes());
    for (name, key) in roots {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(key.as_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a roots file.
pub fn decode(b: &[u8]) -> Result<Vec<(String, ContentKey)>, DecodeError> {
    need(b, ROOTS_HEADER_LEN + 4)?;
    if b[..8] != ROOTS_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let body = &b[..b.len() - 4];
    check_crc(le_u32(b, b.len() - 4), body)?;
    let version = le_u32(b, 8);
    if version != ROOTS_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let count = le_u32(b, 12) as usize;
    // Each root takes at least 2 + 16 bytes: bound the count by the bytes present.
    if count > (body.len() - ROOTS_HEADER_LEN) / (2 + KEY_LEN) {
        return Err(DecodeError::Invalid(format!(
            "{count} roots cannot fit in {} bytes",
            body.len()
        )));
    }
    let mut roots = Vec::with_capacity(count);
    let mut pos = ROOTS_HEADER_LEN;
    for _ in 0..count {
        need(&body[pos..], 2)?;
        let len = le_u16(body, pos) as usize;
        if len > MAX_ROOT_NAME {
            return Err(DecodeError::TooLarge {
                what: "root name",
                len: len as u64,
                limit: MAX_ROOT_NAME as u64,
            });
        }
        pos += 2;
        need(&body[pos..], len + KEY_LEN)?;
        let name = std::str::from_utf8(&body[pos..pos + len])
            .map_err(|_| DecodeError::Invalid("a root name is not UTF-8".into()))?
            .to_string();
        pos += len;
        let mut k = [0u8; KEY_LEN];
        k.copy_from_slice(&body[pos..pos + KEY_LEN]);
        pos += KEY_LEN;
        roots.push((name, ContentKey::from_bytes(k)));
    }
    if pos != body.len() {
        return Err(DecodeError::Invalid(format!(
            "{} bytes after the last root",
            body.len() - pos
        )));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_byte_corruption() {
        let roots = vec![
            ("build/graph".to_string(), ContentKey::of(b"a", &[])),
            ("ünïcode".to_string(), ContentKey::of(b"b", &[])),
        ];
        let b = encode(&roots);
        assert_eq!(decode(&b).unwrap(), roots);
        assert!(decode(&encode(&[])).unwrap().is_empty());
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x20;
            assert!(decode(&c).is_err(), "flip at {i} not detected");
        }
        for len in 0..b.len() {
            assert!(decode(&b[..len]).is_err());
        }
    }
}

//! The files of a directory store ([`DirStore`](crate::store::DirStore)): its marker
//! `DIRSTORE`, one object file per object, and the manifest of a kept graph.
//!
//! Object file: a 48-byte header, the child keys, the payload.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"SPILLOBJ"` |
//! | 8 | 4 | object format version, u32 (1) |
//! | 12 | 4 | child count `c`, u32 |
//! | 16 | 4 | payload length `n`, u32 |
//! | 20 | 4 | reserved, zero |
//! | 24 | 16 | content key |
//! | 40 | 4 | CRC32C of the payload |
//! | 44 | 4 | CRC32C of bytes 0..44 and the child keys |
//! | 48 | 16 × c | child keys |
//! | 48 + 16c | n | payload |
//!
//! Two checksums, so that the child keys are checked without reading the payload: garbage
//! collection walks graphs through [`decode_head`] alone. The file's length must be exactly
//! `48 + 16c + n`.
//!
//! Marker (`DIRSTORE`, 16 bytes): magic `b"SPILLDIR"`, format version (u32), CRC32C of bytes
//! 0..12. Manifest of a kept graph (`MANIFEST`): magic `b"SPILLKPT"`, version (u32), reserved
//! (u32), the graph's root key, the object count `m` (u64), `m` keys sorted, and a CRC32C of
//! every byte before it.

use super::record::{MAX_CHILDREN, MAX_PAYLOAD_LEN};
use super::{DecodeError, check_crc, le_u32, le_u64, need};
use crate::key::{ContentKey, KEY_LEN};

/// Magic bytes at the start of an object file.
pub const OBJECT_MAGIC: [u8; 8] = *b"SPILLOBJ";
/// Object file format version.
pub const OBJECT_VERSION: u32 = 1;
/// Length of an object file's header.
pub const OBJECT_HEADER_LEN: usize = 48;

/// File name of the marker of a directory store.
pub const DIR_MARKER_FILE: &str = "DIRSTORE";
/// Magic bytes of the marker.
pub const DIR_MARKER_MAGIC: [u8; 8] = *b"SPILLDIR";
/// Length of the marker.
pub const DIR_MARKER_LEN: usize = 16;
/// The directory store format version this build writes and the newest it reads.
pub const DIR_STORE_VERSION: u32 = 2;
/// The first version whose values, as a pool stores them, start with a type tag (see
/// [`value`](super::value)). Versions 1 and 2 have the same files: a version 1 store opens and
/// reads as blobs, but a pool refuses it.
pub const DIR_TAGGED_VALUES_VERSION: u32 = 2;

/// File name of a kept graph's manifest, inside its directory.
pub const MANIFEST_FILE: &str = "MANIFEST";
/// Temporary name a manifest is written under before the rename.
pub const MANIFEST_TMP_FILE: &str = "MANIFEST.tmp";
/// Magic bytes of a manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"SPILLKPT";
/// Manifest format version.
pub const MANIFEST_VERSION: u32 = 1;
/// Length of a manifest's fixed header.
pub const MANIFEST_HEADER_LEN: usize = 40;

/// The longest object file a writer produces: anything longer is rejected before it is read.
pub const MAX_OBJECT_FILE_LEN: u64 =
    OBJECT_HEADER_LEN as u64 + MAX_CHILDREN as u64 * KEY_LEN as u64 + MAX_PAYLOAD_LEN as u64;

/// The decoded header of an object file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectHead {
    /// The object's key.
    pub key: ContentKey,
    /// Number of child keys.
    pub child_count: u32,
    /// Payload length.
    pub payload_len: u32,
    /// Stored CRC32C of the payload.
    pub payload_crc: u32,
}

impl ObjectHead {
    /// Length of the header and the child keys: what [`decode_head`] needs.
    pub fn head_len(&self) -> usize {
        OBJECT_HEADER_LEN + self.child_count as usize * KEY_LEN
    }

    /// Length of the whole file.
    pub fn file_len(&self) -> u64 {
        self.head_len() as u64 + u64::from(self.payload_len)
    }
}

/// Length of the object file of an object with `child_count` children and `payload_len`
/// payload bytes.
pub fn object_file_len(child_count: usize, payload_len: usize) -> u64 {
    (OBJECT_HEADER_LEN + child_count * KEY_LEN + payload_len) as u64
}

/// Encodes an object file.
///
/// Panics only if the caller passes more than [`MAX_CHILDREN`] children or a payload over
/// [`MAX_PAYLOAD_LEN`]; the store checks both and returns [`crate::Error::TooLarge`] first.
pub fn encode(key: &ContentKey, children: &[ContentKey], payload: &[u8]) -> Vec<u8> {
    assert!(children.len() <= MAX_CHILDREN as usize && payload.len() <= MAX_PAYLOAD_LEN as usize);
    let mut out = Vec::with_capacity(object_file_len(children.len(), payload.len()) as usize);
    out.extend_from_slice(&OBJECT_MAGIC);
    out.extend_from_slice(&OBJECT_VERSION.to_le_bytes());
    out.extend_from_slice(&(children.len() as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    for c in children {
        out.extend_from_slice(c.as_bytes());
    }
    let head_crc = crc32c::crc32c_append(crc32c::crc32c(&out[..44]), &out[48..]);
    out[44..48].copy_from_slice(&head_crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Decodes the fixed header alone, checking what it can without the child keys: the magic,
/// the version, the reserved bytes and the limits. The checksum is checked by
/// [`decode_head`].
pub fn decode_header(b: &[u8]) -> Result<ObjectHead, DecodeError> {
    need(b, OBJECT_HEADER_LEN)?;
    if b[..8] != OBJECT_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = le_u32(b, 8);
    if version != OBJECT_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let child_count = le_u32(b, 12);
    let payload_len = le_u32(b, 16);
    if le_u32(b, 20) != 0 {
        return Err(DecodeError::Invalid(
            "reserved header bytes are not zero".into(),
        ));
    }
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
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&b[24..40]);
    Ok(ObjectHead {
        key: ContentKey::from_bytes(key),
        child_count,
        payload_len,
        payload_crc: le_u32(b, 40),
    })
}

/// Decodes the header and the child keys (the first [`ObjectHead::head_len`] bytes of the
/// file), checking the header's checksum, which covers both.
pub fn decode_head(b: &[u8]) -> Result<(ObjectHead, Vec<ContentKey>), DecodeError> {
    let head = decode_header(b)?;
    let len = head.head_len();
    need(b, len)?;
    let got = crc32c::crc32c_append(crc32c::crc32c(&b[..44]), &b[OBJECT_HEADER_LEN..len]);
    let stored = le_u32(b, 44);
    if got != stored {
        return Err(DecodeError::Checksum {
            expected: stored,
            got,
        });
    }
    let children = b[OBJECT_HEADER_LEN..len]
        .chunks_exact(KEY_LEN)
        .map(|c| {
            let mut k = [0u8; KEY_LEN];
            k.copy_from_slice(c);
            ContentKey::from_bytes(k)
        })
        .collect();
    Ok((head, children))
}

/// Decodes a whole object file: its header, child keys and payload, every checksum and the
/// exact length checked.
pub fn decode(b: &[u8]) -> Result<(ObjectHead, Vec<ContentKey>, &[u8]), DecodeError> {
    let (head, children) = decode_head(b)?;
    if b.len() as u64 != head.file_len() {
        return Err(DecodeError::Invalid(format!(
            "the file is {} bytes long, its header says {}",
            b.len(),
            head.file_len()
        )));
    }
    let payload = &b[head.head_len()..];
    check_crc(head.payload_crc, payload)?;
    Ok((head, children, payload))
}

/// Encodes the marker of a directory store.
pub fn encode_marker(version: u32) -> [u8; DIR_MARKER_LEN] {
    let mut b = [0u8; DIR_MARKER_LEN];
    b[..8].copy_from_slice(&DIR_MARKER_MAGIC);
    b[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = crc32c::crc32c(&b[..12]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a marker and returns its version (not yet checked against
/// [`DIR_STORE_VERSION`]).
pub fn decode_marker(b: &[u8]) -> Result<u32, DecodeError> {
    need(b, DIR_MARKER_LEN)?;
    if b[..8] != DIR_MARKER_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    check_crc(le_u32(b, 12), &b[..12])?;
    if b.len() != DIR_MARKER_LEN {
        return Err(DecodeError::Invalid(format!(
            "marker is {} bytes, expected {DIR_MARKER_LEN}",
            b.len()
        )));
    }
    Ok(le_u32(b, 8))
}

/// A kept graph's manifest: the key of its root object and every key of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The graph's root object.
    pub root: ContentKey,
    /// Every object of the graph, the root's included, sorted, without repeats.
    pub keys: Vec<ContentKey>,
}

/// Encodes a manifest; `keys` must be sorted and without repeats.
pub fn encode_manifest(m: &Manifest) -> Vec<u8> {
    let mut out = Vec::with_capacity(MANIFEST_HEADER_LEN + KEY_LEN * m.keys.len() + 4);
    out.extend_from_slice(&MANIFEST_MAGIC);
    out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(m.root.as_bytes());
    out.extend_from_slice(&(m.keys.len() as u64).to_le_bytes());
    for k in &m.keys {
        out.extend_from_slice(k.as_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a manifest.
pub fn decode_manifest(b: &[u8]) -> Result<Manifest, DecodeError> {
    need(b, MANIFEST_HEADER_LEN + 4)?;
    if b[..8] != MANIFEST_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let body = &b[..b.len() - 4];
    check_crc(le_u32(b, b.len() - 4), body)?;
    let version = le_u32(b, 8);
    if version != MANIFEST_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    if le_u32(b, 12) != 0 {
        return Err(DecodeError::Invalid(
            "reserved manifest bytes are not zero".into(),
        ));
    }
    let count = le_u64(b, 32);
    let keys_len = (body.len() - MANIFEST_HEADER_LEN) as u64;
    if count.checked_mul(KEY_LEN as u64) != Some(keys_len) {
        return Err(DecodeError::Invalid(format!(
            "{count} keys do not fill {keys_len} bytes"
        )));
    }
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(&b[16..32]);
    let keys: Vec<ContentKey> = body[MANIFEST_HEADER_LEN..]
        .chunks_exact(KEY_LEN)
        .map(|c| {
            let mut k = [0u8; KEY_LEN];
            k.copy_from_slice(c);
            ContentKey::from_bytes(k)
        })
        .collect();
    let root = ContentKey::from_bytes(k);
    if !keys.windows(2).all(|w| w[0] < w[1]) || keys.binary_search(&root).is_err() {
        return Err(DecodeError::Invalid(
            "the keys are not sorted, repeat, or miss the root".into(),
        ));
    }
    Ok(Manifest { root, keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_round_trip_and_every_byte_corruption() {
        let children = [ContentKey::of(b"c1", &[]), ContentKey::of(b"c2", &[])];
        let payload = b"a payload of some bytes";
        let key = ContentKey::of(payload, &children);
        let b = encode(&key, &children, payload);
        assert_eq!(b.len() as u64, object_file_len(2, payload.len()));
        let (head, c, p) = decode(&b).expect("decode");
        assert_eq!(
            (head.key, c.as_slice(), p),
            (key, &children[..], &payload[..])
        );
        let (head2, c2) = decode_head(&b[..head.head_len()]).expect("head alone");
        assert_eq!((head2, c2), (head, children.to_vec()));
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 0x08;
            assert!(decode(&x).is_err(), "flip at {i} not detected");
        }
        for len in 0..b.len() {
            assert!(decode(&b[..len]).is_err(), "cut at {len} not detected");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    #[test]
    fn marker_and_manifest_round_trip_and_every_byte_corruption() {
        let m = encode_marker(DIR_STORE_VERSION);
        assert_eq!(decode_marker(&m), Ok(DIR_STORE_VERSION));
        for i in 0..m.len() {
            let mut x = m;
            x[i] ^= 0x01;
            assert!(decode_marker(&x).is_err(), "marker flip at {i}");
        }
        let mut keys = vec![ContentKey::of(b"a", &[]), ContentKey::of(b"b", &[])];
        keys.sort_unstable();
        let man = Manifest {
            root: keys[1],
            keys: keys.clone(),
        };
        let b = encode_manifest(&man);
        assert_eq!(decode_manifest(&b).expect("decode"), man);
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 0x80;
            assert!(decode_manifest(&x).is_err(), "manifest flip at {i}");
        }
        for len in 0..b.len() {
            assert!(decode_manifest(&b[..len]).is_err());
        }
    }
}

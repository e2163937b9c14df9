//! The value payload: the type tag at the front of every value a pool stores.
//!
//! A pool's value payload is a *type tag* followed by the value's postcard encoding:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | type hash, u32: the first 4 bytes of BLAKE3 over the type's stable name |
//! | 4 | 1–5 | schema version, u32 as an unsigned LEB128 varint (postcard's varint) |
//!
//! The tag is part of the payload, so the content key covers it and every store keeps it as
//! opaque bytes: a value of another type, or of another version of its type, has another key.
//! Invariants: [`encode`] writes the shortest varint, and [`decode`] accepts only that, never
//! reads past its input, never panics and never allocates, so that a damaged tag is an error.

use super::{DecodeError, le_u32, need};

/// Bytes of the type hash.
pub const TYPE_HASH_LEN: usize = 4;
/// The longest schema version varint (a `u32`).
pub const MAX_VERSION_LEN: usize = 5;

/// What a stored value says it is: its type's hash and schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeTag {
    /// The first 4 bytes of BLAKE3 over the type's stable name, little-endian.
    pub hash: u32,
    /// The type's schema version.
    pub version: u32,
}

impl TypeTag {
    /// The tag of version `version` of the type named `name`.
    pub fn of(name: &str, version: u32) -> TypeTag {
        TypeTag {
            hash: type_hash(name),
            version,
        }
    }
}

impl std::fmt::Display for TypeTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "type hash {:#010x} version {}", self.hash, self.version)
    }
}

/// The hash of a stable type name: the first 4 bytes of its BLAKE3 hash, little-endian.
pub fn type_hash(name: &str) -> u32 {
    let h = blake3::hash(name.as_bytes());
    le_u32(h.as_bytes(), 0)
}

/// Appends `tag` to `out` (the value's encoding follows it).
pub fn encode(tag: TypeTag, out: &mut Vec<u8>) {
    out.extend_from_slice(&tag.hash.to_le_bytes());
    let mut v = tag.version;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The tag at the front of `payload` and the bytes after it (the value's encoding).
pub fn decode(payload: &[u8]) -> Result<(TypeTag, &[u8]), DecodeError> {
    need(payload, TYPE_HASH_LEN + 1)?;
    let hash = le_u32(payload, 0);
    let mut version: u64 = 0;
    for (i, &b) in payload[TYPE_HASH_LEN..]
        .iter()
        .take(MAX_VERSION_LEN)
        .enumerate()
    {
        version |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 != 0 {
            continue;
        }
        let len = i + 1;
        if len > 1 && b == 0 {
            return Err(DecodeError::Invalid(
                "the schema version varint is not in its shortest form".into(),
            ));
        }
        let version = u32::try_from(version).map_err(|_| {
            DecodeError::Invalid(format!("the schema version {version} does not fit a u32"))
        })?;
        let rest = &payload[TYPE_HASH_LEN + len..];
        return Ok((TypeTag { hash, version }, rest));
    }
    let present = payload.len() - TYPE_HASH_LEN;
    if present < MAX_VERSION_LEN {
        Err(DecodeError::Truncated {
            needed: (TYPE_HASH_LEN + present + 1) as u64,
            available: payload.len() as u64,
        })
    } else {
        Err(DecodeError::Invalid(format!(
            "the schema version varint runs past {MAX_VERSION_LEN} bytes"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_at_every_varint_length() {
        for version in [0, 1, 127, 128, 16_383, 16_384, 1 << 21, 1 << 28, u32::MAX] {
            let tag = TypeTag::of("config", version);
            let mut b = Vec::new();
            encode(tag, &mut b);
            b.extend_from_slice(b"body");
            let (got, rest) = decode(&b).expect("decode");
            assert_eq!((got, rest), (tag, &b"body"[..]), "version {version}");
        }
    }

    /// The bytes of one tag, pinned: the hash function and the layout are part of the format.
    #[test]
    fn known_answer() {
        let mut b = Vec::new();
        encode(TypeTag::of("config", 300), &mut b);
        let hash = blake3::hash(b"config");
        assert_eq!(&b[..4], &hash.as_bytes()[..4]);
        assert_eq!(&b[4..], &[0xac, 0x02]);
    }

    #[test]
    fn every_byte_flip_and_every_cut_is_an_error_or_another_tag_never_a_panic() {
        let tag = TypeTag::of("config", 1 << 20);
        let mut b = Vec::new();
        encode(tag, &mut b);
        let len = b.len();
        for cut in 0..len {
            assert!(decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..len {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                if let Ok((got, _)) = decode(&c) {
                    assert_ne!(got, tag, "flip of bit {bit} of byte {i} not seen");
                }
            }
        }
    }

    #[test]
    fn overlong_and_oversized_versions_are_refused() {
        let mut b = 7u32.to_le_bytes().to_vec();
        b.extend_from_slice(&[0x81, 0x00]);
        assert!(matches!(decode(&b), Err(DecodeError::Invalid(_))));
        let mut b = 7u32.to_le_bytes().to_vec();
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x1f]);
        assert!(matches!(decode(&b), Err(DecodeError::Invalid(_))));
        let mut b = 7u32.to_le_bytes().to_vec();
        b.extend_from_slice(&[0x80; 6]);
        assert!(matches!(decode(&b), Err(DecodeError::Invalid(_))));
    }
}

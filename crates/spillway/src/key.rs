//! Content keys: the names of stored objects.
//!
//! A [`ContentKey`] is the first 128 bits of a BLAKE3 hash over a fixed, platform-independent
//! encoding of an object: its payload bytes followed by the keys of its children. Because the
//! children's keys are part of the input, a key names a whole subgraph (a Merkle DAG): equal keys
//! mean equal graphs, so a graph that is already stored never needs to be written again.
//!
//! The hashed encoding (version 1; `docs/FORMAT.md`, "Content keys"):
//!
//! | bytes | field |
//! |---|---|
//! | 16 | the domain tag `b"spillway-key-v1\0"` |
//! | 8  | payload length, u64 little-endian |
//! | n  | payload bytes |
//! | 8  | child count, u64 little-endian |
//! | 16 × c | child keys, in order |
//!
//! The length prefixes make the encoding unambiguous: no two (payload, children) pairs hash the
//! same input.

use std::fmt;
use std::str::FromStr;

/// Domain tag hashed before every object, so that spillway keys never collide with plain BLAKE3
/// hashes of the same bytes.
pub const KEY_DOMAIN_TAG: [u8; 16] = *b"spillway-key-v1\0";

/// Length of a content key in bytes.
pub const KEY_LEN: usize = 16;

/// The first 15 bytes of every reserved key; the last byte numbers it (256 reserved keys).
pub const RESERVED_KEY_PREFIX: [u8; 15] = *b"spillway:reserv";

/// The 128-bit content address of an object (payload plus child keys).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentKey([u8; KEY_LEN]);

impl ContentKey {
    /// Computes the key of an object from its payload and the keys of its children.
    pub fn of(payload: &[u8], children: &[ContentKey]) -> ContentKey {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&KEY_DOMAIN_TAG);
        hasher.update(&(payload.len() as u64).to_le_bytes());
        hasher.update(payload);
        hasher.update(&(children.len() as u64).to_le_bytes());
        for child in children {
            hasher.update(&child.0);
        }
        let mut out = [0u8; KEY_LEN];
        hasher.finalize_xof().fill(&mut out);
        ContentKey(out)
    }

    /// Reserved key number `n`: a key that names a store's own record (the default roots'
    /// slots), not an object. No content hashes to it (a BLAKE3 output matching its fixed 15
    /// bytes is a 2^-120 event), so it never collides with an object's key.
    pub const fn reserved(n: u8) -> ContentKey {
        let mut b = [n; KEY_LEN];
        let mut i = 0;
        while i < RESERVED_KEY_PREFIX.len() {
            b[i] = RESERVED_KEY_PREFIX[i];
            i += 1;
        }
        ContentKey(b)
    }

    /// True for a [reserved](Self::reserved) key.
    pub fn is_reserved(&self) -> bool {
        self.0[..RESERVED_KEY_PREFIX.len()] == RESERVED_KEY_PREFIX
    }

    /// Builds a key from its raw bytes (as stored on disk).
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> ContentKey {
        ContentKey(bytes)
    }

    /// The raw bytes of the key.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The first eight bytes as an integer: already uniformly distributed, so it serves directly
    /// as a hash for in-memory tables.
    pub fn prefix_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b)
    }
}

impl fmt::Display for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentKey({self})")
    }
}

/// Text that is not a content key (32 hexadecimal digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a content key: expected 32 hexadecimal digits")]
pub struct ParseKeyError(pub String);

impl FromStr for ContentKey {
    type Err = ParseKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseKeyError(s.to_string());
        if s.len() != KEY_LEN * 2 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; KEY_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(ContentKey(out))
    }
}

/// A `Hasher` for maps keyed by [`ContentKey`]: the key is already a cryptographic hash, so its
/// first eight bytes are used as is instead of hashing them again.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `ContentKey`'s derived `Hash` writes the 16-byte array (a length prefix first on some
        // std versions); fold everything so that any input still hashes well.
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(b);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = self.0.rotate_left(29) ^ n as u64;
    }
}

/// `BuildHasher` for [`KeyHasher`].
pub type BuildKeyHasher = std::hash::BuildHasherDefault<KeyHasher>;

/// A `HashMap` keyed by content keys, without rehashing them.
pub type KeyMap<V> = std::collections::HashMap<ContentKey, V, BuildKeyHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parses_back() {
        let k = ContentKey::of(b"hello", &[]);
        let s = k.to_string();
        assert_eq!(s.len(), 32);
        assert_eq!(s.parse::<ContentKey>().unwrap(), k);
        assert!("xyz".parse::<ContentKey>().is_err());
        assert!("zz".repeat(16).parse::<ContentKey>().is_err());
    }

    #[test]
    fn children_change_the_key_and_encoding_is_unambiguous() {
        let a = ContentKey::of(b"a", &[]);
        let b = ContentKey::of(b"b", &[]);
        assert_ne!(ContentKey::of(b"x", &[a]), ContentKey::of(b"x", &[b]));
        assert_ne!(ContentKey::of(b"x", &[a, b]), ContentKey::of(b"x", &[b, a]));
        assert_ne!(ContentKey::of(b"", &[a]), ContentKey::of(a.as_bytes(), &[]));
    }

    #[test]
    fn known_answer() {
        // Pins the hashed encoding: changing it would orphan every stored object.
        let leaf = ContentKey::of(b"spillway", &[]);
        assert_eq!(leaf.to_string(), known::LEAF);
        let parent = ContentKey::of(b"", &[leaf, leaf]);
        assert_eq!(parent.to_string(), known::PARENT);
    }

    /// Computed independently of this crate (the reference BLAKE3 implementation over the
    /// encoding in the module docs), so a mistake in either would show.
    mod known {
        pub const LEAF: &str = "9610e7a41ce60f536146d870cf0e915f";
        pub const PARENT: &str = "dfe2a1d2e4bb7953b0cc6d308f75d486";
    }
}

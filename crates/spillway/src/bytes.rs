//! [`Bytes`]: a byte buffer that serde encodes as one run of bytes.
//!
//! Serde serializes a `Vec<u8>` as a sequence: the serializer is called once per byte, and
//! deserializing pushes the bytes one at a time into a vector that grows as it goes. A `Bytes`
//! field asks the format for a byte string instead (`serialize_bytes`): in the pool's encoding
//! that is a length and a copy, at the speed of `memcpy`, both ways. The stored bytes are the
//! same: a length and the bytes, so a `Vec<u8>` field can become a `Bytes` field and still read
//! the values stored before.

use std::borrow::{Borrow, BorrowMut};
use std::fmt;
use std::ops::{Deref, DerefMut};

use get_size2::{GetSize, GetSizeTracker};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// An owned byte buffer for values' fields: a `Vec<u8>` that serde encodes as a byte string,
/// so that paging it out and in copies the bytes in one go instead of one at a time.
///
/// It derefs to `[u8]` (and mutably), converts from and into `Vec<u8>`, and reports its
/// capacity as its heap size to the budget.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use spillway::{Bytes, Pool};
///
/// #[derive(Serialize, Deserialize, get_size2::GetSize)]
/// struct Image {
///     width: u32,
///     pixels: Bytes, // not Vec<u8>: page-in and page-out copy it whole
/// }
///
/// let pool = Pool::builder().budget(64 << 20).build()?;
/// let image = pool.insert(Image { width: 2, pixels: vec![0xff; 8].into() })?;
/// assert_eq!(image.get()?.pixels[..4], [0xff; 4]);
/// # Ok::<(), spillway::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(Vec<u8>);

impl Bytes {
    /// An empty buffer.
    pub const fn new() -> Bytes {
        Bytes(Vec::new())
    }

    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Bytes {
        Bytes(Vec::with_capacity(capacity))
    }

    /// The bytes, as a vector (no copy).
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }

    /// The vector inside, to grow or shrink.
    pub fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl fmt::Debug for Bytes {
    /// Up to 32 bytes, escaped as in a byte string literal, then the length: a buffer of
    /// megabytes does not flood a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 32;
        f.write_str("b\"")?;
        for &b in self.0.iter().take(SHOWN) {
            write!(f, "{}", std::ascii::escape_default(b))?;
        }
        f.write_str("\"")?;
        if self.0.len() > SHOWN {
            write!(f, "... ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsMut<[u8]> for Bytes {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl BorrowMut<[u8]> for Bytes {
    fn borrow_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Bytes {
        Bytes(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(s: &[u8]) -> Bytes {
        Bytes(s.to_vec())
    }
}

impl<const N: usize> From<[u8; N]> for Bytes {
    fn from(a: [u8; N]) -> Bytes {
        Bytes(a.to_vec())
    }
}

impl From<&str> for Bytes {
    fn from(s: &str) -> Bytes {
        Bytes(s.as_bytes().to_vec())
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(b: Bytes) -> Vec<u8> {
        b.0
    }
}

impl FromIterator<u8> for Bytes {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Bytes {
        Bytes(iter.into_iter().collect())
    }
}

impl Extend<u8> for Bytes {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl<'a> Extend<&'a u8> for Bytes {
    fn extend<I: IntoIterator<Item = &'a u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl IntoIterator for Bytes {
    type Item = u8;
    type IntoIter = std::vec::IntoIter<u8>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Bytes {
    type Item = &'a u8;
    type IntoIter = std::slice::Iter<'a, u8>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl PartialEq<[u8]> for Bytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

impl PartialEq<&[u8]> for Bytes {
    fn eq(&self, other: &&[u8]) -> bool {
        self.0 == *other
    }
}

impl PartialEq<Vec<u8>> for Bytes {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.0 == *other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Bytes {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.0 == other
    }
}

impl GetSize for Bytes {
    fn get_heap_size_with_tracker<T: GetSizeTracker>(&self, tracker: T) -> (usize, T) {
        (self.0.capacity(), tracker)
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// Takes a byte string in one piece, or, from a format that has none (JSON, say), a sequence
/// of bytes.
struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
        Ok(Bytes(v.as_bytes().to_vec()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        // A length from the input is only a hint: capped, so that a corrupt one cannot make
        // this allocate absurd amounts before a byte is read.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 << 10));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(Bytes(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_a_vec_of_bytes_in_one_piece() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let as_vec = postcard::to_allocvec(&data).expect("encode a Vec<u8>");
        let as_bytes = postcard::to_allocvec(&Bytes::from(data.clone())).expect("encode Bytes");
        // One encoding, so a field can change from one type to the other.
        assert_eq!(as_vec, as_bytes);
        let back: Bytes = postcard::from_bytes(&as_vec).expect("decode Bytes");
        assert_eq!(back, data);
        let old: Vec<u8> = postcard::from_bytes(&as_bytes).expect("decode a Vec<u8>");
        assert_eq!(old, data);
    }

    #[test]
    fn a_truncated_encoding_is_an_error() {
        let enc = postcard::to_allocvec(&Bytes::from(vec![7u8; 100])).expect("encode");
        assert!(postcard::from_bytes::<Bytes>(&enc[..50]).is_err());
    }

    #[test]
    fn reports_its_capacity_to_the_budget() {
        let mut b = Bytes::with_capacity(4096);
        b.extend([1u8, 2, 3]);
        assert_eq!(
            GetSize::get_size(&b),
            std::mem::size_of::<Bytes>() + b.as_mut_vec().capacity()
        );
        assert!(GetSize::get_heap_size(&b) >= 4096);
    }

    #[test]
    fn debug_shows_a_prefix_and_the_length() {
        assert_eq!(format!("{:?}", Bytes::from("a\n")), "b\"a\\n\"");
        let long = format!("{:?}", Bytes::from(vec![b'x'; 1000]));
        assert!(long.ends_with("\"... (1000 bytes)"), "{long}");
    }
}

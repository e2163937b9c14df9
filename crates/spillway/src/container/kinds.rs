//! Typed sections: the [`Section`] trait a type implements to live in a container under a
//! pool's budget ([`Sections`](crate::Sections)), and two section types of spillway's own: a
//! column of `u64`s and a sorted index of keys. Both are read in place from a memory map once
//! spilled ([`View::Mapped`]), so a spilled section costs no RAM.

use super::{SectionWriter, types};
use crate::error::{Error, Result};
use crate::key::{ContentKey, KEY_LEN};

/// A structure kept whole in a container section.
pub trait Section: Send + Sync + Sized + 'static {
    /// The section type written in the directory.
    const KIND: u32;
    /// The version of the encoding [`encode`](Self::encode) writes.
    const VERSION: u32;
    /// Writes the section's bytes, in order (streamed into the file).
    fn encode(&self, w: &mut SectionWriter<'_>) -> Result<()>;
    /// Reads the section back from its bytes, written by `version` (an older version than
    /// [`VERSION`](Self::VERSION) is the type's to upgrade or refuse).
    fn decode(bytes: &[u8], version: u32) -> Result<Self>;
    /// Bytes the structure occupies in memory, its heap included: what the budget counts.
    fn memory_bytes(&self) -> u64;
    /// Checks bytes about to be read in place ([`View::Mapped`]), once per mapping: what
    /// `decode` would refuse, so that a mapped read never gives what a decoded one would not.
    fn check_mapped(bytes: &[u8], version: u32) -> Result<()> {
        Self::decode(bytes, version).map(drop)
    }
}

/// A section as a reader sees it: in memory, or spilled and read in place from the file.
#[derive(Debug)]
pub enum View<'a, T> {
    /// The structure in memory.
    Ram(&'a T),
    /// The section's bytes in the file's memory map (checksum already checked).
    Mapped(&'a [u8]),
}

fn invalid(what: &str, detail: String) -> Error {
    Error::Corrupted {
        what: "section",
        location: what.to_string(),
        detail,
    }
}

/// A column of `u64`s: little-endian, 8 bytes each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct U64Column(pub Vec<u64>);

impl Section for U64Column {
    const KIND: u32 = types::U64_COLUMN;
    const VERSION: u32 = 1;

    fn encode(&self, w: &mut SectionWriter<'_>) -> Result<()> {
        let mut buf = Vec::with_capacity(8 * 8192);
        for chunk in self.0.chunks(8192) {
            buf.clear();
            for v in chunk {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            w.write(&buf)?;
        }
        Ok(())
    }

    fn decode(bytes: &[u8], version: u32) -> Result<Self> {
        if version != 1 {
            return Err(invalid(
                "u64 column",
                format!("version {version} is not known (1 is)"),
            ));
        }
        if !bytes.len().is_multiple_of(8) {
            return Err(invalid(
                "u64 column",
                format!("{} bytes is not a whole number of u64s", bytes.len()),
            ));
        }
        Ok(U64Column(
            bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        ))
    }

    fn memory_bytes(&self) -> u64 {
        (std::mem::size_of::<Self>() + self.0.capacity() * 8) as u64
    }

    fn check_mapped(bytes: &[u8], version: u32) -> Result<()> {
        if version != 1 || !bytes.len().is_multiple_of(8) {
            return Self::decode(bytes, version).map(drop);
        }
        Ok(())
    }
}

impl View<'_, U64Column> {
    /// Values in the column.
    pub fn len(&self) -> usize {
        match self {
            View::Ram(c) => c.0.len(),
            View::Mapped(b) => b.len() / 8,
        }
    }

    /// True if the column is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i`.
    pub fn get(&self, i: usize) -> Option<u64> {
        match self {
            View::Ram(c) => c.0.get(i).copied(),
            View::Mapped(b) => i
                .checked_mul(8)
                .and_then(|at| b.get(at..at.checked_add(8)?))
                .map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default())),
        }
    }

    /// The sum of the values (wrapping).
    pub fn sum(&self) -> u64 {
        (0..self.len())
            .filter_map(|i| self.get(i))
            .fold(0u64, u64::wrapping_add)
    }
}

/// A sorted set of content keys: 16 bytes each, strictly ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyIndex(Vec<ContentKey>);

impl KeyIndex {
    /// An index of `keys` (sorted, duplicates dropped).
    pub fn new(mut keys: Vec<ContentKey>) -> KeyIndex {
        keys.sort_unstable();
        keys.dedup();
        KeyIndex(keys)
    }

    /// Adds a key; false if it was there.
    pub fn insert(&mut self, key: ContentKey) -> bool {
        match self.0.binary_search(&key) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, key);
                true
            }
        }
    }

    /// The keys, ascending.
    pub fn keys(&self) -> &[ContentKey] {
        &self.0
    }
}

impl Section for KeyIndex {
    const KIND: u32 = types::KEY_INDEX;
    const VERSION: u32 = 1;

    fn encode(&self, w: &mut SectionWriter<'_>) -> Result<()> {
        let mut buf = Vec::with_capacity(KEY_LEN * 4096);
        for chunk in self.0.chunks(4096) {
            buf.clear();
            for k in chunk {
                buf.extend_from_slice(k.as_bytes());
            }
            w.write(&buf)?;
        }
        Ok(())
    }

    fn decode(bytes: &[u8], version: u32) -> Result<Self> {
        if version != 1 {
            return Err(invalid(
                "key index",
                format!("version {version} is not known (1 is)"),
            ));
        }
        check_keys(bytes)?;
        Ok(KeyIndex(
            bytes
                .chunks_exact(KEY_LEN)
                .map(|c| ContentKey::from_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        ))
    }

    fn memory_bytes(&self) -> u64 {
        (std::mem::size_of::<Self>() + self.0.capacity() * KEY_LEN) as u64
    }

    fn check_mapped(bytes: &[u8], version: u32) -> Result<()> {
        if version != 1 {
            return Self::decode(bytes, version).map(drop);
        }
        check_keys(bytes)
    }
}

/// Checks a key index's bytes: whole keys, strictly ascending.
fn check_keys(bytes: &[u8]) -> Result<()> {
    if !bytes.len().is_multiple_of(KEY_LEN) {
        return Err(invalid(
            "key index",
            format!("{} bytes is not a whole number of keys", bytes.len()),
        ));
    }
    let n = bytes.len() / KEY_LEN;
    for i in 1..n {
        if bytes[(i - 1) * KEY_LEN..i * KEY_LEN] >= bytes[i * KEY_LEN..(i + 1) * KEY_LEN] {
            return Err(invalid(
                "key index",
                format!("key {i} is not above the one before it"),
            ));
        }
    }
    Ok(())
}

impl View<'_, KeyIndex> {
    /// Keys in the index.
    pub fn len(&self) -> usize {
        match self {
            View::Ram(k) => k.0.len(),
            View::Mapped(b) => b.len() / KEY_LEN,
        }
    }

    /// True if the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if `key` is in the index (a binary search, in place when mapped).
    pub fn contains(&self, key: &ContentKey) -> bool {
        match self {
            View::Ram(k) => k.0.binary_search(key).is_ok(),
            View::Mapped(b) => {
                let (mut lo, mut hi) = (0usize, b.len() / KEY_LEN);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    match b[mid * KEY_LEN..(mid + 1) * KEY_LEN].cmp(key.as_bytes().as_slice()) {
                        std::cmp::Ordering::Less => lo = mid + 1,
                        std::cmp::Ordering::Greater => hi = mid,
                        std::cmp::Ordering::Equal => return true,
                    }
                }
                false
            }
        }
    }
}

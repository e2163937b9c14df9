//! On-disk formats, byte by byte.
//!
//! `docs/FORMAT.md` is the specification; this module is its implementation, and
//! `tests/format_doc.rs` checks that every constant here matches the document. All integers are
//! little-endian. Every structure carries its own CRC32C (Castagnoli) so that a torn or damaged
//! structure is detected and never returned as data.
//!
//! Decoders here are pure functions over byte slices: they never allocate more than the input
//! justifies (a length field is checked against the bytes actually present and against a hard
//! limit before anything is reserved), and they return a [`DecodeError`] that the store turns into
//! an [`Error`](crate::Error) naming the file and offset.

pub mod checkpoint;
pub mod container;
pub mod marker;
pub mod object;
pub mod pack;
pub mod record;
pub mod roots;
pub mod segment;
pub mod sync;
pub mod value;

/// Why a structure failed to decode. The caller adds the file and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes are present than the structure needs.
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// The magic number is not ours.
    BadMagic,
    /// A version this build does not read.
    UnsupportedVersion(u32),
    /// The checksum over the structure does not match.
    Checksum {
        /// Stored checksum.
        expected: u32,
        /// Computed checksum.
        got: u32,
    },
    /// A field holds a value that no writer produces.
    Invalid(String),
    /// A length beyond the hard limit: rejected before allocating.
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The claimed size.
        len: u64,
        /// The limit.
        limit: u64,
    },
}

impl DecodeError {
    /// Converts into the crate error, naming the structure and where it was read.
    pub fn at(self, what: &'static str, location: impl Into<String>) -> crate::error::Error {
        let location = location.into();
        match self {
            DecodeError::Checksum { expected, got } => crate::error::Error::ChecksumMismatch {
                what,
                location,
                expected,
                got,
            },
            other => crate::error::Error::Corrupted {
                what,
                location,
                detail: other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated { needed, available } => {
                write!(f, "truncated: needs {needed} bytes, {available} present")
            }
            DecodeError::BadMagic => write!(f, "bad magic number"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            DecodeError::Checksum { expected, got } => {
                write!(
                    f,
                    "checksum mismatch: stored {expected:#010x}, computed {got:#010x}"
                )
            }
            DecodeError::Invalid(s) => write!(f, "{s}"),
            DecodeError::TooLarge { what, len, limit } => {
                write!(f, "{what} of {len} bytes exceeds the limit of {limit}")
            }
        }
    }
}

/// Reads a little-endian integer at `off`; the caller has checked the length.
pub(crate) fn le_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Reads a little-endian `u32` at `off`; the caller has checked the length.
pub(crate) fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Reads a little-endian `u64` at `off`; the caller has checked the length.
pub(crate) fn le_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Checks that `buf` holds at least `needed` bytes.
pub(crate) fn need(buf: &[u8], needed: usize) -> Result<(), DecodeError> {
    if buf.len() < needed {
        Err(DecodeError::Truncated {
            needed: needed as u64,
            available: buf.len() as u64,
        })
    } else {
        Ok(())
    }
}

/// Compares a stored CRC32C with the one computed over `bytes`.
pub(crate) fn check_crc(stored: u32, bytes: &[u8]) -> Result<(), DecodeError> {
    let got = crc32c::crc32c(bytes);
    if got == stored {
        Ok(())
    } else {
        Err(DecodeError::Checksum {
            expected: stored,
            got,
        })
    }
}

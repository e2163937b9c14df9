//! [`Mapped`]: the allocator of the pool's large tables, which puts each large block in an
//! anonymous mapping of its own.
//!
//! A table that grows by doubling frees its old copy at every growth, and one that shrinks
//! after a large eviction frees its large copy. Where the system allocator serves such blocks
//! from its heap, the freed copies stay in the process as holes between live allocations:
//! glibc, for one, serves a block from the heap once its threshold for mappings has risen past
//! the block's size, and it raises that threshold to the size of every mapped block it frees.
//! A pool's registry of a million keys then left about 40 bytes per key of old tables in the
//! heap, and how much depended on what else the process had freed before.
//!
//! `Mapped` makes that independent of the allocator: a block of [`MAPPED_FROM`] bytes or more
//! is a mapping of its own, given back to the operating system when the block is freed; a
//! smaller block comes from the global allocator as usual. The store's index does the same for
//! its table (see `store::log::table`).
//!
//! [`MAPPED_FROM`] is glibc's default threshold for mappings, 128 KiB, so that no table of the
//! pool's is one of glibc's mappings: freeing one of those raises glibc's thresholds to its size
//! (the one for mappings to the block's size, the one for giving back the top of a heap to
//! twice that), and from then on each heap of the process keeps that much more freed memory.
//! The store's index grew through glibc's mappings up to 3.6 MB in W4's child (200,000 values
//! of 1 KiB), and the pool's tables from 128 to 256 KiB did too.
//!
//! What else the pool and the log store free in such sizes avoids glibc's mappings as well: the
//! list an index growing in place keeps of the keys it moves, the checkpoint's sorted entries,
//! the LRU's slab and the list that counts held bytes for the stats are `Mapped`; the log store
//! takes page-out batches of 64 KiB, records and bookkeeping counted, whose buffers stay in
//! glibc's heap unless a batch's last object is larger than about 32 KiB (see `store::log`). A
//! gdb trace of `munmap` in W4's child found no release of one of glibc's mappings left before
//! the end of its reads. Still glibc's: what the log store reads when it opens (its checkpoint,
//! decoded into a list), and the page-out's lists of victims (at most a round's, about 4,096).
//!
//! Invariants:
//! - A block is mapped if and only if its layout says so ([`maps`]): the layout a block is
//!   freed with is the one it was allocated with (the block is exactly the size asked for), so
//!   it is freed by the same means it was allocated.
//! - A mapped block is page-aligned, which satisfies every alignment [`maps`] accepts, and
//!   zeroed.
//! - Both kinds of block are exactly the size asked for: a caller may free a block with the
//!   length it was given (hashbrown does), so a block must never come from the other means
//!   than its size selects. A failed mapping is therefore an allocation failure, never a
//!   fallback to the global allocator.

use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator, Global, Layout};

/// Blocks of this many bytes or more are mappings of their own: glibc's default threshold for
/// mappings, so that no block of the pool's is one of glibc's mappings (see the module docs).
pub(crate) const MAPPED_FROM: usize = 128 << 10;

/// The largest alignment a mapping is sure to have (the smallest page size).
const PAGE: usize = 4096;

/// See the module docs. Stateless: any `Mapped` frees any other's blocks.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mapped;

/// True if a block of `layout` is a mapping of its own.
fn maps(layout: Layout) -> bool {
    cfg!(unix) && layout.size() >= MAPPED_FROM && layout.align() <= PAGE
}

/// A fresh anonymous mapping of `len` bytes, page-aligned and zeroed.
#[cfg(unix)]
pub(super) fn map(len: usize) -> Result<NonNull<u8>, AllocError> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choice touches no
    // existing memory; the result is checked before use.
    #[expect(unsafe_code, reason = "an anonymous mapping for a large table")]
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(AllocError);
    }
    NonNull::new(ptr.cast::<u8>()).ok_or(AllocError)
}

#[cfg(not(unix))]
pub(super) fn map(_len: usize) -> Result<NonNull<u8>, AllocError> {
    Err(AllocError)
}

// SAFETY: a mapped block is `layout.size()` bytes, page-aligned (so aligned for every layout
// that `maps` accepts), valid until it is freed, and freed only through `deallocate` with the
// layout it was made with, which selects `munmap` again; every other block is the global
// allocator's, allocated and freed through it. The allocator has no state, so a copy frees
// what the original allocated.
#[expect(unsafe_code, reason = "an allocator is an unsafe trait")]
unsafe impl Allocator for Mapped {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if !maps(layout) {
            return Global.allocate(layout);
        }
        let ptr = map(layout.size())?;
        Ok(NonNull::slice_from_raw_parts(ptr, layout.size()))
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if !maps(layout) {
            return Global.allocate_zeroed(layout);
        }
        // A fresh anonymous mapping reads as zeros; writing them would only touch its pages.
        self.allocate(layout)
    }

    #[expect(unsafe_code, reason = "freeing a block of this allocator")]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if !maps(layout) {
            // SAFETY: the caller frees a block of this allocator with its layout; a block that
            // `maps` refuses came from the global allocator with that layout.
            unsafe { Global.deallocate(ptr, layout) };
            return;
        }
        #[cfg(unix)]
        // SAFETY: the block is a mapping of exactly `layout.size()` bytes made by `map`, which
        // the caller no longer uses. A failure (which would leave the mapping in place) is not
        // reported: freeing cannot fail.
        unsafe {
            libc::munmap(ptr.as_ptr().cast(), layout.size());
        }
    }
}

/// A hash map whose large tables are mappings of their own.
pub(crate) type MappedMap<K, V, S> = hashbrown::HashMap<K, V, S, Mapped>;

/// A vector whose large buffers are mappings of their own.
pub(crate) type MappedVec<T> = allocator_api2::vec::Vec<T, Mapped>;

/// A [`MappedMap`] keyed by entry id.
pub(crate) type IdMap<V> = MappedMap<super::policy::EntryId, V, std::hash::RandomState>;

/// Bytes a [`MappedMap`]'s table takes (see [`table_bytes`](super::table_bytes)).
pub(crate) fn mapped_map_bytes<K, V, S>(map: &MappedMap<K, V, S>) -> usize {
    super::table_bytes(map.capacity(), std::mem::size_of::<(K, V)>())
}

/// [`shrink_map`](super::shrink_map) for a [`MappedMap`].
pub(crate) fn shrink_mapped_map<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(
    map: &mut MappedMap<K, V, S>,
) {
    if let Some(to) = super::shrunk_capacity(map.len(), map.capacity()) {
        map.shrink_to(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_blocks_hold_what_is_written() {
        for (size, align) in [
            (24, 8),
            (4096, 64),
            (MAPPED_FROM, 8),
            (3 * MAPPED_FROM + 5, 16),
        ] {
            let layout = Layout::from_size_align(size, align).expect("a layout");
            let block = Mapped.allocate_zeroed(layout).expect("a block");
            assert_eq!(block.len(), size);
            let ptr = block.cast::<u8>();
            assert_eq!(ptr.as_ptr() as usize % align, 0, "aligned");
            if maps(layout) {
                assert_eq!(ptr.as_ptr() as usize % PAGE, 0, "a mapping is page-aligned");
            }
            #[expect(unsafe_code, reason = "writing and reading the block just allocated")]
            // SAFETY: the block is `size` bytes, valid and unaliased until it is freed below.
            unsafe {
                let bytes = std::slice::from_raw_parts_mut(ptr.as_ptr(), size);
                assert!(bytes.iter().all(|&b| b == 0), "zeroed");
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = i as u8;
                }
                assert!(bytes.iter().enumerate().all(|(i, &b)| b == i as u8));
                Mapped.deallocate(ptr, layout);
            }
        }
    }

    #[test]
    fn a_map_grows_past_the_mapped_size_and_shrinks_back() {
        let mut map: MappedMap<u64, [u64; 3], std::hash::RandomState> =
            MappedMap::with_hasher_in(Default::default(), Mapped);
        let n = 200_000u64;
        for i in 0..n {
            map.insert(i, [i, i + 1, i + 2]);
        }
        assert!(mapped_map_bytes(&map) >= MAPPED_FROM);
        assert!((0..n).all(|i| map.get(&i) == Some(&[i, i + 1, i + 2])));
        for i in 10..n {
            map.remove(&i);
            shrink_mapped_map(&mut map);
        }
        assert!(mapped_map_bytes(&map) < MAPPED_FROM);
        assert!((0..10).all(|i| map.get(&i) == Some(&[i, i + 1, i + 2])));
    }
}

//! [`Cells`]: the allocator of the pool's entries, which packs small blocks of one size into
//! chunks of their own.
//!
//! A pool keeps one small record (an entry) for every object that has a handle, resident or
//! not, and a million paged-out objects are a million entries. From the global allocator each
//! would cost a header and its rounding, and would sit between the values allocated around
//! it: when those values are paged out, the holes they leave share every page with a live
//! entry, so no page of them can go back to the system. `Cells` keeps entries apart, densely:
//!
//! - A block of at most [`LARGEST`] bytes, aligned to at most [`ALIGN`], is a cell in a
//!   *class* of cells of its size rounded up to a multiple of [`ALIGN`]; any other block comes
//!   from the global allocator.
//! - A class takes its cells from chunks of [`CHUNK`] bytes, aligned to their size, so that a
//!   cell's chunk is its address rounded down. A chunk starts with its header; its cells follow,
//!   with no header of their own.
//! - A chunk hands out its free cells (a list threaded through their last words) before any it
//!   has never handed out, so that a chunk's used cells stay few and together.
//! - A class keeps a list of the chunks that have a cell in use and a free one, and allocates
//!   from the last of them. A chunk whose last cell is freed leaves the list and is given back
//!   to the system, except one per class, kept aside as the spare: it serves allocations once
//!   no listed chunk has a free cell (before a new chunk is mapped), so that the cells in use
//!   gather in the chunks already in use, and a class that allocates and frees one cell over
//!   and over does not map and unmap a chunk each time.
//!
//! A cell has a 32-bit *number* ([`cell_number`], [`cell_at`]) for as long as it is
//! allocated, so that a table that holds many cells (the registry) can hold numbers instead of
//! pointers: a chunk takes a 20-bit number when it is mapped (the lowest free), kept at its
//! start and in a process-wide directory of chunks by number, and gives it back when it is
//! unmapped; a cell's number is its chunk's, then its offset in the chunk in units of
//! [`ALIGN`] (12 bits). So the cells of a process can take 2^20 chunks, 64 GiB (about 1.4
//! billion entries of 48 bytes); past that, an allocation of a cell fails.
//!
//! Invariants:
//! - A block is a cell if and only if its layout says so ([`class_of`]): it is freed with the
//!   layout it was allocated with, so it goes back the way it came.
//! - A mapped chunk's number is at its start, written before any of its cells is handed out and
//!   never changed while it is mapped, and the directory's slot for that number points to the
//!   chunk from then until it is unmapped; a number is held by one mapped chunk at most.
//! - A chunk is in its class's list exactly while it has a free cell and a cell in use, at the
//!   index its header records; the spare has no cell in use and is not listed; `live` counts its cells in use, `bump` the cells it ever handed out from its end
//!   (so the cells below `bump` are in use or in its free list, and those above are untouched).
//! - Every field of a chunk's header and every free cell's link is read and written only under
//!   its class's lock. (The chunk's number is not in its header but before it, so that reading
//!   it, without a lock, touches nothing that a class's lock guards.)
//!
//! The lock is a `parking_lot` mutex of the class, not one of `crate::sync`: an allocator's
//! critical section makes no call into the synchronisation shim, so under the model checker it
//! is one step, as the global allocator's is.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, Ordering};

use allocator_api2::alloc::{AllocError, Allocator, Global, Layout};
use parking_lot::Mutex;

use super::numbers::Numbers;

/// Bytes of a chunk, and its alignment.
pub(crate) const CHUNK: usize = 64 << 10;
/// Cell sizes are multiples of this, and cells are aligned to it.
pub(crate) const ALIGN: usize = 16;
/// The largest block that is a cell: 256 bytes; more under the model checker, whose locks and
/// atomics make an entry several times larger, so that entries are cells (and have numbers)
/// there too.
pub(crate) const LARGEST: usize = if cfg!(spillway_shuttle) { 2048 } else { 256 };
/// Number of classes: one per multiple of [`ALIGN`] up to [`LARGEST`].
const CLASSES: usize = LARGEST / ALIGN;
/// Offset of a chunk's header: after its number.
const HEADER_AT: usize = 8;
/// Offset of a chunk's first cell: its number and header, rounded up to a cache line, so that
/// a cell of 64 bytes (a trait object's entry) is one cache line (a 48-byte one, a sized
/// value's, spans two lines one time in two).
const FIRST: usize = (HEADER_AT + std::mem::size_of::<Header>()).next_multiple_of(64);
/// Bits of a cell's number that give its place in its chunk, in units of [`ALIGN`].
const CELL_BITS: u32 = (CHUNK / ALIGN).trailing_zeros();
/// Chunks that can be mapped at once: as many as the rest of a cell's number can name.
const CHUNK_NUMBERS: usize = 1 << (32 - CELL_BITS);

/// Mapped chunks by number (see the module docs): 8 MiB of zeroed memory, of which only the
/// pages of the numbers in use are touched.
static DIRECTORY: [AtomicPtr<u8>; CHUNK_NUMBERS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNK_NUMBERS];

/// The chunk numbers taken.
static CHUNK_NUMBERS_FREE: Mutex<Numbers> = Mutex::new(Numbers::new());
/// `Header::listed_at` of a chunk that is not in its class's list.
const UNLISTED: u32 = u32::MAX;

/// The start of a chunk.
#[repr(C)]
struct Header {
    /// The first free cell, whose first word points to the next (null at the end).
    free: *mut u8,
    /// Cells handed out from the chunk's end so far.
    bump: u32,
    /// Cells in use.
    live: u32,
    /// Cells the chunk holds.
    capacity: u32,
    /// The chunk's index in its class's list, or [`UNLISTED`].
    listed_at: u32,
}

/// The chunks of one cell size.
struct Class {
    /// The chunks that have a free cell; allocations take from the last.
    listed: Vec<NonNull<Header>>,
    /// Chunks mapped.
    chunks: usize,
    /// A mapped chunk with no cell in use, kept for the next allocations.
    spare: Option<NonNull<Header>>,
}

/// The classes, each behind its lock.
struct Classes([Mutex<Class>; CLASSES]);

// SAFETY: the chunks a class points to are its own, reached only under its lock.
#[expect(
    unsafe_code,
    reason = "the classes own the chunks their pointers reach"
)]
unsafe impl Sync for Classes {}

static CLASSES_OF: Classes = Classes(
    [const {
        Mutex::new(Class {
            listed: Vec::new(),
            chunks: 0,
            spare: None,
        })
    }; CLASSES],
);

/// Bytes of a cell of class `class`.
const fn cell_size(class: usize) -> usize {
    (class + 1) * ALIGN
}

/// The class of a block of `layout`, if it is a cell.
fn class_of(layout: Layout) -> Option<usize> {
    (layout.size() > 0 && layout.size() <= LARGEST && layout.align() <= ALIGN)
        .then(|| layout.size().div_ceil(ALIGN) - 1)
}

/// Bytes a block of `size` bytes (aligned to at most [`ALIGN`]) takes: its cell's size if it
/// is a cell, else `size` (what the global allocator adds is not known here).
pub(crate) const fn cell_bytes(size: usize) -> usize {
    if size > 0 && size <= LARGEST {
        size.next_multiple_of(ALIGN)
    } else {
        size
    }
}

/// True if a block of `size` bytes aligned to `align` is a cell (and so has a number).
pub(crate) const fn is_cell(size: usize, align: usize) -> bool {
    size > 0 && size <= LARGEST && align <= ALIGN
}

/// Chunks mapped for the class of blocks of `layout` (0 if they are not cells).
#[cfg(test)]
pub(crate) fn cell_chunks(layout: Layout) -> usize {
    class_of(layout).map_or(0, |c| CLASSES_OF.0[c].lock().chunks)
}

/// See the module docs. Stateless: any `Cells` frees any other's blocks.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cells;

impl Class {
    /// A cell of this class, whose cells are `size` bytes.
    fn allocate(&mut self, size: usize) -> Result<NonNull<u8>, AllocError> {
        let chunk = match self.listed.last() {
            Some(&c) => c,
            None => {
                let c = match self.spare.take() {
                    Some(c) => c,
                    None => self.map_chunk(size)?,
                };
                self.list(c);
                c
            }
        };
        let base = chunk.as_ptr().cast::<u8>().wrapping_sub(HEADER_AT);
        // SAFETY: a listed chunk is mapped and its header is only touched under the lock held
        // here (`&mut self`); a listed chunk has a free cell, in its list or past `bump`.
        #[expect(unsafe_code, reason = "taking a cell from a chunk of this class")]
        let cell = unsafe {
            let h = &mut *chunk.as_ptr();
            let cell = if h.free.is_null() {
                debug_assert!(h.bump < h.capacity, "a listed chunk has a free cell");
                let cell = base.add(FIRST + h.bump as usize * size);
                h.bump += 1;
                cell
            } else {
                let cell = h.free;
                h.free = link(cell, size).read();
                cell
            };
            h.live += 1;
            let full = h.free.is_null() && h.bump == h.capacity;
            // `h` ends here: `unlist` writes the header through the chunk's pointer.
            if full {
                self.unlist(chunk);
            }
            cell
        };
        NonNull::new(cell).ok_or(AllocError)
    }

    /// Frees `cell`, a cell of `size` bytes of this class in `chunk`.
    ///
    /// # Safety
    /// `cell` was allocated by this class, is in `chunk`, and is no longer used.
    #[expect(unsafe_code, reason = "giving a cell back to its chunk")]
    unsafe fn free(&mut self, chunk: NonNull<Header>, cell: NonNull<u8>, size: usize) {
        // SAFETY: the chunk is mapped while it has a cell in use (this one), and its header
        // and free cells are only touched under the lock held here; the cell is free, so its
        // first word may hold the link.
        unsafe {
            let h = &mut *chunk.as_ptr();
            if POISON {
                std::ptr::write_bytes(cell.as_ptr(), POISON_BYTE, size);
            }
            link(cell.as_ptr(), size).write(h.free);
            h.free = cell.as_ptr();
            h.live -= 1;
            let (unlisted, empty) = (h.listed_at == UNLISTED, h.live == 0);
            // `h` ends here: `list` and `unlist` write the header through the chunk's pointer.
            if empty {
                // Listed unless it holds a single cell (it was full with this one in use).
                if !unlisted {
                    self.unlist(chunk);
                }
                if self.spare.is_none() {
                    self.spare = Some(chunk);
                } else {
                    self.chunks -= 1;
                    let start = chunk.cast::<u8>().sub(HEADER_AT);
                    let number = start.cast::<u32>().read();
                    DIRECTORY[number as usize].store(std::ptr::null_mut(), Ordering::Release);
                    unmap(start);
                    CHUNK_NUMBERS_FREE.lock().give_back(number);
                }
            } else if unlisted {
                self.list(chunk);
            }
        }
    }

    /// Maps a new chunk of cells of `size` bytes, numbered, for the caller to list.
    fn map_chunk(&mut self, size: usize) -> Result<NonNull<Header>, AllocError> {
        let number = CHUNK_NUMBERS_FREE
            .lock()
            .take(CHUNK_NUMBERS)
            .ok_or(AllocError)?;
        let start = match map() {
            Ok(start) => start,
            Err(e) => {
                CHUNK_NUMBERS_FREE.lock().give_back(number);
                return Err(e);
            }
        };
        let chunk = header_of(start);
        let capacity = ((CHUNK - FIRST) / size) as u32;
        // SAFETY: the chunk is fresh, `CHUNK` bytes, aligned for its number and header.
        #[expect(unsafe_code, reason = "writing a new chunk's number and header")]
        unsafe {
            start.cast::<u32>().write(number);
            chunk.as_ptr().write(Header {
                free: std::ptr::null_mut(),
                bump: 0,
                live: 0,
                capacity,
                listed_at: UNLISTED,
            });
        }
        DIRECTORY[number as usize].store(start.as_ptr(), Ordering::Release);
        self.chunks += 1;
        Ok(chunk)
    }

    fn list(&mut self, chunk: NonNull<Header>) {
        // SAFETY: the chunk is mapped and its header is only touched under the lock held here.
        #[expect(unsafe_code, reason = "a chunk header, under its class's lock")]
        unsafe {
            (*chunk.as_ptr()).listed_at = self.listed.len() as u32;
        }
        self.listed.push(chunk);
    }

    fn unlist(&mut self, chunk: NonNull<Header>) {
        // SAFETY: the chunks of the list are mapped and their headers only touched under the
        // lock held here.
        #[expect(unsafe_code, reason = "chunk headers, under their class's lock")]
        unsafe {
            let at = (*chunk.as_ptr()).listed_at as usize;
            debug_assert_eq!(self.listed[at], chunk);
            self.listed.swap_remove(at);
            if let Some(&moved) = self.listed.get(at) {
                (*moved.as_ptr()).listed_at = at as u32;
            }
            (*chunk.as_ptr()).listed_at = UNLISTED;
        }
    }
}

/// Where a free cell of `size` bytes keeps the link to the next: its last word, so that the
/// first bytes (a counted cell's count) keep the poison (see [`POISON`]).
///
/// # Safety
/// `cell` is a free cell of `size` bytes.
#[expect(unsafe_code, reason = "the link word of a free cell")]
unsafe fn link(cell: *mut u8, size: usize) -> *mut *mut u8 {
    // SAFETY: the cell is `size` bytes, a multiple of `ALIGN`, so its last word is in it and
    // aligned.
    unsafe { cell.add(size - std::mem::size_of::<*mut u8>()).cast() }
}

/// In test and model-checking builds, a freed cell is filled with [`POISON_BYTE`] (but for its
/// link): a count read from a freed cell is then far past any real count, and counting it
/// again aborts (see `runtime::counted`), where a use after free would otherwise pass unseen.
const POISON: bool = cfg!(any(debug_assertions, spillway_shuttle));
/// See [`POISON`].
pub(crate) const POISON_BYTE: u8 = 0xa5;

/// The start of the chunk that holds `cell`.
fn chunk_start(cell: NonNull<u8>) -> NonNull<u8> {
    let addr = cell.as_ptr().addr() & !(CHUNK - 1);
    NonNull::new(cell.as_ptr().with_addr(addr)).expect("a chunk is not at 0")
}

/// The header of the chunk that starts at `start`.
fn header_of(start: NonNull<u8>) -> NonNull<Header> {
    // SAFETY: the header is inside the chunk.
    #[expect(unsafe_code, reason = "the header's place in its chunk")]
    unsafe {
        start.add(HEADER_AT).cast()
    }
}

/// The chunk that holds `cell`, by its header.
fn chunk_of(cell: NonNull<u8>) -> NonNull<Header> {
    header_of(chunk_start(cell))
}

/// The number of `cell`, a cell that is allocated (see the module docs).
pub(crate) fn cell_number(cell: NonNull<u8>) -> u32 {
    let start = chunk_start(cell);
    // SAFETY: the cell is allocated, so its chunk is mapped, and its number, at its start, is
    // written before the cell was handed out and not changed since.
    #[expect(unsafe_code, reason = "reading a mapped chunk's number")]
    let chunk = unsafe { start.cast::<u32>().read() };
    let place = (cell.as_ptr().addr() - start.as_ptr().addr()) / ALIGN;
    chunk << CELL_BITS | place as u32
}

/// The cell numbered `number`.
///
/// # Safety
/// `number` is the [`cell_number`] of a cell that is allocated now (its chunk is then mapped and
/// holds that number).
#[expect(unsafe_code, reason = "a cell through its number")]
pub(crate) unsafe fn cell_at(number: u32) -> NonNull<u8> {
    let start = DIRECTORY[(number >> CELL_BITS) as usize].load(Ordering::Acquire);
    debug_assert!(!start.is_null(), "the chunk of cell {number:#x} is mapped");
    // SAFETY: the chunk is mapped (the caller's promise), and the cell's place is inside it.
    unsafe { NonNull::new_unchecked(start.add((number & ((1 << CELL_BITS) - 1)) as usize * ALIGN)) }
}

/// A new chunk: `CHUNK` bytes aligned to `CHUNK`.
#[cfg(all(unix, not(miri)))]
fn map() -> Result<NonNull<u8>, AllocError> {
    // Twice the size, then the parts outside an aligned chunk are given back.
    let len = 2 * CHUNK;
    let start = super::mapped::map(len)?.as_ptr();
    let head = start.addr().next_multiple_of(CHUNK) - start.addr();
    // SAFETY: `start` is a mapping of `len` bytes, of which the chunk kept is `CHUNK` bytes
    // from `head` on: only the parts before and after it are unmapped.
    #[expect(unsafe_code, reason = "trimming a mapping to an aligned chunk")]
    unsafe {
        if head > 0 {
            libc::munmap(start.cast(), head);
        }
        let tail = len - head - CHUNK;
        if tail > 0 {
            libc::munmap(start.add(head + CHUNK).cast(), tail);
        }
        NonNull::new(start.add(head)).ok_or(AllocError)
    }
}

#[cfg(all(unix, not(miri)))]
fn unmap(chunk: NonNull<u8>) {
    // SAFETY: the chunk is a mapping of `CHUNK` bytes made by `map` with no cell in use.
    #[expect(unsafe_code, reason = "giving back a chunk of cells")]
    unsafe {
        libc::munmap(chunk.as_ptr().cast(), CHUNK);
    }
}

#[cfg(not(all(unix, not(miri))))]
fn chunk_layout() -> Layout {
    Layout::from_size_align(CHUNK, CHUNK).expect("a chunk's layout")
}

#[cfg(not(all(unix, not(miri))))]
fn map() -> Result<NonNull<u8>, AllocError> {
    Global.allocate(chunk_layout()).map(NonNull::cast)
}

#[cfg(not(all(unix, not(miri))))]
fn unmap(chunk: NonNull<u8>) {
    // SAFETY: the chunk came from the global allocator with this layout and has no cell in use.
    #[expect(unsafe_code, reason = "giving back a chunk of cells")]
    unsafe {
        Global.deallocate(chunk, chunk_layout());
    }
}

// Callers free a block through the pointer `allocate` returned (or one derived from it without
// narrowing it to a reference): the chunk's header is reached from it by its address, with its
// provenance, which is the whole chunk's.
//
// SAFETY: a cell is at least `layout.size()` bytes (its class's size is that rounded up),
// aligned to `ALIGN` (chunks are aligned to `CHUNK` and cells sit at multiples of `ALIGN` from
// a start that is one), which covers every alignment `class_of` accepts; it stays valid until
// it is freed through `deallocate` with the same layout, which finds the same class and the
// cell's chunk from its address. Any other block is the global allocator's, allocated and
// freed through it. The allocator has no state of its own: a copy frees what another made.
#[expect(unsafe_code, reason = "an allocator is an unsafe trait")]
unsafe impl Allocator for Cells {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let Some(class) = class_of(layout) else {
            return Global.allocate(layout);
        };
        let cell = CLASSES_OF.0[class].lock().allocate(cell_size(class))?;
        Ok(NonNull::slice_from_raw_parts(cell, layout.size()))
    }

    #[expect(unsafe_code, reason = "freeing a block of this allocator")]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller frees a block of this allocator with its layout; a block that
            // is not a cell came from the global allocator with that layout.
            unsafe { Global.deallocate(ptr, layout) };
            return;
        };
        // SAFETY: the block is a cell of this class (its layout says so), in the chunk its
        // address rounds down to, and the caller no longer uses it.
        unsafe {
            CLASSES_OF.0[class]
                .lock()
                .free(chunk_of(ptr), ptr, cell_size(class))
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks of class `class` mapped, and whether one is kept as its spare.
    fn census(class: usize) -> (usize, usize) {
        let c = CLASSES_OF.0[class].lock();
        (c.chunks, usize::from(c.spare.is_some()))
    }

    #[test]
    fn classes_cover_the_small_blocks_only() {
        let l = |size, align| Layout::from_size_align(size, align).expect("a layout");
        assert_eq!(class_of(l(1, 1)), Some(0));
        assert_eq!(class_of(l(16, 8)), Some(0));
        assert_eq!(class_of(l(17, 8)), Some(1));
        assert_eq!(class_of(l(64, 8)), Some(3));
        assert_eq!(class_of(l(LARGEST, 16)), Some(CLASSES - 1));
        assert_eq!(class_of(l(LARGEST + 1, 8)), None);
        assert_eq!(class_of(l(64, 32)), None);
        assert_eq!(class_of(l(0, 1)), None);
    }

    /// Allocates and frees blocks of one size in a scrambled order, writing a pattern into each
    /// and checking every live block still holds its own; at the end every chunk but the one
    /// kept is given back. Each test uses its own size, so that tests running at once do not
    /// share a class.
    fn churn(size: usize, count: usize) {
        let layout = Layout::from_size_align(size, 8).expect("a layout");
        let class = class_of(layout).expect("a cell");
        let mut live: Vec<(NonNull<u8>, u8)> = Vec::new();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        #[expect(
            unsafe_code,
            reason = "writing, reading and freeing the blocks allocated"
        )]
        let check = |(p, tag): &(NonNull<u8>, u8)| {
            // SAFETY: a live block of `size` bytes, written below when it was allocated.
            let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
            assert!(
                bytes.iter().all(|b| b == tag),
                "a block kept what was written"
            );
        };
        for round in 0..3 {
            for i in 0..count {
                let block = Cells.allocate(layout).expect("a cell").cast::<u8>();
                assert_eq!(block.as_ptr().addr() % ALIGN, 0);
                let tag = (i + round) as u8;
                #[expect(unsafe_code, reason = "writing the block just allocated")]
                // SAFETY: a fresh block of `size` bytes.
                unsafe {
                    std::ptr::write_bytes(block.as_ptr(), tag, size)
                };
                live.push((block, tag));
                if next() % 3 == 0 {
                    let at = (next() % live.len() as u64) as usize;
                    let gone = live.swap_remove(at);
                    check(&gone);
                    #[expect(unsafe_code, reason = "freeing a block allocated above")]
                    // SAFETY: allocated with `layout`, no longer used.
                    unsafe {
                        Cells.deallocate(gone.0, layout)
                    };
                }
            }
            live.iter().for_each(check);
            let mut addrs: Vec<usize> = live.iter().map(|(p, _)| p.as_ptr().addr()).collect();
            addrs.sort_unstable();
            assert!(
                addrs.windows(2).all(|w| w[1] - w[0] >= size),
                "blocks do not overlap"
            );
            // Every live cell has its own number, which finds it (chunks given back in earlier
            // rounds have had their numbers taken again).
            let mut numbers: Vec<u32> = live.iter().map(|(p, _)| cell_number(*p)).collect();
            for ((p, _), n) in live.iter().zip(&numbers) {
                #[expect(unsafe_code, reason = "a live cell through its number")]
                // SAFETY: the number of a cell allocated now.
                let found = unsafe { cell_at(*n) };
                assert_eq!(found, *p, "cell {n:#x} is found by its number");
            }
            numbers.sort_unstable();
            numbers.dedup();
            assert_eq!(
                numbers.len(),
                live.len(),
                "no two live cells share a number"
            );
        }
        let (chunks, _) = census(class);
        let per_chunk = (CHUNK - FIRST) / cell_size(class);
        assert!(chunks >= live.len().div_ceil(per_chunk));
        while let Some(gone) = live.pop() {
            check(&gone);
            #[expect(unsafe_code, reason = "freeing a block allocated above")]
            // SAFETY: allocated with `layout`, no longer used.
            unsafe {
                Cells.deallocate(gone.0, layout)
            };
        }
        assert_eq!(census(class), (1, 1), "every chunk but one went back");
    }

    #[test]
    fn a_cell_number_is_twenty_bits_of_chunk_and_twelve_of_place() {
        // A cell's number: 20 bits of chunk, 12 of its place in 16-byte units.
        assert_eq!((CELL_BITS, CHUNK_NUMBERS), (12, 1 << 20));
        assert!(FIRST >= HEADER_AT + std::mem::size_of::<Header>());
    }

    #[test]
    fn cells_of_one_size_hold_what_is_written_and_go_back() {
        churn(232, 20_000);
    }

    #[test]
    fn cells_of_an_odd_size_hold_what_is_written_and_go_back() {
        churn(200, 5_000);
    }

    #[test]
    fn one_cell_allocated_and_freed_over_and_over_keeps_one_chunk() {
        let layout = Layout::from_size_align(144, 8).expect("a layout");
        let class = class_of(layout).expect("a cell");
        for _ in 0..10_000 {
            let block = Cells.allocate(layout).expect("a cell").cast::<u8>();
            #[expect(unsafe_code, reason = "freeing the block just allocated")]
            // SAFETY: allocated with `layout`, not used.
            unsafe {
                Cells.deallocate(block, layout)
            };
        }
        assert_eq!(census(class), (1, 1));
    }

    #[test]
    fn large_and_overaligned_blocks_come_from_the_global_allocator() {
        for layout in [
            Layout::from_size_align(LARGEST + 8, 8).expect("a layout"),
            Layout::from_size_align(64, 64).expect("a layout"),
        ] {
            let block = Cells.allocate(layout).expect("a block").cast::<u8>();
            assert_eq!(block.as_ptr().addr() % layout.align(), 0);
            #[expect(unsafe_code, reason = "freeing the block just allocated")]
            // SAFETY: allocated with `layout`, not used.
            unsafe {
                Cells.deallocate(block, layout)
            };
        }
    }

    #[test]
    fn threads_allocating_and_freeing_one_size_at_once_give_every_chunk_back() {
        let layout = Layout::from_size_align(176, 8).expect("a layout");
        let class = class_of(layout).expect("a cell");
        std::thread::scope(|s| {
            for t in 0..4u8 {
                s.spawn(move || {
                    let mut mine: Vec<NonNull<u8>> = Vec::new();
                    for i in 0..20_000usize {
                        let cell = Cells.allocate(layout).expect("a cell").cast::<u8>();
                        #[expect(unsafe_code, reason = "writing the cell just allocated")]
                        // SAFETY: a fresh cell of 176 bytes.
                        unsafe {
                            std::ptr::write_bytes(cell.as_ptr(), t, 176)
                        };
                        mine.push(cell);
                        if i % 3 != 0 {
                            let gone = mine.swap_remove((i * 7) % mine.len());
                            #[expect(unsafe_code, reason = "reading and freeing a cell")]
                            // SAFETY: allocated above by this thread, written with `t`.
                            unsafe {
                                let bytes = std::slice::from_raw_parts(gone.as_ptr(), 176);
                                assert!(bytes.iter().all(|&b| b == t), "no other thread wrote it");
                                Cells.deallocate(gone, layout);
                            }
                        }
                    }
                    for gone in mine {
                        #[expect(unsafe_code, reason = "freeing a cell")]
                        // SAFETY: allocated above by this thread, not used any more.
                        unsafe {
                            Cells.deallocate(gone, layout)
                        };
                    }
                });
            }
        });
        assert_eq!(census(class), (1, 1), "every chunk but one went back");
    }

    #[test]
    #[cfg_attr(
        not(debug_assertions),
        ignore = "cells are poisoned in debug and model-checking builds only"
    )]
    fn a_freed_cell_is_poisoned_but_for_its_link() {
        let layout = Layout::from_size_align(160, 8).expect("a layout");
        let keep = Cells.allocate(layout).expect("a cell").cast::<u8>();
        let cell = Cells.allocate(layout).expect("a cell").cast::<u8>();
        #[expect(unsafe_code, reason = "reading a freed cell, which stays mapped")]
        // SAFETY: the chunk stays mapped while `keep` is in use; the freed cell's bytes are
        // only read.
        unsafe {
            Cells.deallocate(cell, layout);
            let bytes = std::slice::from_raw_parts(cell.as_ptr(), 160 - 8);
            assert!(bytes.iter().all(|&b| b == POISON_BYTE));
            Cells.deallocate(keep, layout);
        }
    }

    #[test]
    fn threads_allocating_one_size_at_once_get_distinct_cells() {
        let layout = Layout::from_size_align(96, 8).expect("a layout");
        let class = class_of(layout).expect("a cell");
        let blocks: Vec<usize> = std::thread::scope(|s| {
            let spawned: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(move || {
                        (0..5_000)
                            .map(|_| {
                                let cell = Cells.allocate(layout).expect("a cell");
                                cell.cast::<u8>().as_ptr().expose_provenance()
                            })
                            .collect::<Vec<usize>>()
                    })
                })
                .collect();
            spawned
                .into_iter()
                .flat_map(|h| h.join().expect("a thread"))
                .collect()
        });
        let mut sorted = blocks.clone();
        sorted.sort_unstable();
        assert!(
            sorted.windows(2).all(|w| w[1] - w[0] >= 96),
            "no cell handed out twice"
        );
        for addr in blocks {
            let cell = NonNull::new(std::ptr::with_exposed_provenance_mut::<u8>(addr));
            #[expect(unsafe_code, reason = "freeing the blocks allocated above")]
            // SAFETY: allocated with `layout` by a thread that is done with it.
            unsafe {
                Cells.deallocate(cell.expect("a cell"), layout)
            };
        }
        assert_eq!(census(class), (1, 1), "every chunk but one went back");
    }
}

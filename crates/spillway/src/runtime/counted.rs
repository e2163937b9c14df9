//! [`Counted<E>`]: a counted pointer to an entry in a cell of its own, the way handles, the
//! resident set and page-out share an entry.
//!
//! It is an `Arc` without weak pointers, allocated by [`Cells`](crate::memory::Cells): a
//! cell is the count and the entry, with no allocator header, apart from the values (see
//! `memory::cells`). What an `Arc`'s weak pointers gave the registry (a record that outlives
//! the entry and fails to upgrade once it is gone) comes from a rule instead: an entry takes
//! its own records out of the registry when it is dropped, before its cell is freed, so a
//! record always points to an allocated cell, and [`upgrade`](Counted::upgrade) (under the
//! lock that guards the record) finds either a live entry or one that is being dropped,
//! which it refuses.
//!
//! Invariants:
//! - A cell's count is the number of `Counted` pointers to it; the cell is allocated while
//!   the count is above zero, and, once it reaches zero, until its entry's `drop` has
//!   returned.
//! - The count never goes back up from zero: [`upgrade`](Counted::upgrade) increments only a
//!   count above zero.
//! - The count is a field of the cell, beside the entry rather than in it, so that reading it
//!   while the entry is being dropped (its `drop` holds `&mut` to the entry) touches nothing
//!   the drop borrows. So is the cell's tag: a word that the tables holding the entry
//!   uncounted may keep about it (the registry keeps its key's hash there, to find the record
//!   again without storing the key), read and written only under such a table's lock.
//! - The count is 32 bits, so that the count and the tag take one word: as `Arc` does past
//!   `isize::MAX`, a count past `i32::MAX` (two billion handles to one object) aborts.
//! - A `Counted<dyn ErasedEntry>` is the same pointer as the `Counted<Entry<T>>` it was made
//!   from (the cell's layout is read through its vtable), with the same count.
//!
//! Counts use the standard library's atomics, as `Arc`'s do, also under the model checker.

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering, fence};

use allocator_api2::alloc::{Allocator, Layout};

use crate::memory::Cells;

/// A count and what it counts, in one cell.
#[repr(C)]
pub(crate) struct Cell<E: ?Sized> {
    refs: AtomicU32,
    tag: AtomicU32,
    value: E,
}

/// See the module docs.
pub(crate) struct Counted<E: ?Sized> {
    cell: NonNull<Cell<E>>,
    owns: PhantomData<Cell<E>>,
}

// SAFETY: as for `Arc<E>`: a `Counted` gives shared access to `E` from any thread, and the
// last one drops it on whichever thread that is.
#[expect(unsafe_code, reason = "a counted pointer is shared as Arc is")]
unsafe impl<E: ?Sized + Send + Sync> Send for Counted<E> {}
// SAFETY: as above.
#[expect(unsafe_code, reason = "a counted pointer is shared as Arc is")]
unsafe impl<E: ?Sized + Send + Sync> Sync for Counted<E> {}

/// Past this many counts a cell's count could overflow: as `Arc` does, abort.
const MAX_REFS: u32 = i32::MAX as u32;

impl<E> Counted<E> {
    /// `value` in a new cell, counted once.
    pub fn new(value: E) -> Counted<E> {
        let layout = Layout::new::<Cell<E>>();
        let cell = Cells
            .allocate(layout)
            .unwrap_or_else(|_| std::alloc::handle_alloc_error(layout))
            .cast::<Cell<E>>();
        // SAFETY: a fresh block of the cell's layout.
        #[expect(unsafe_code, reason = "initialising a fresh cell")]
        unsafe {
            cell.as_ptr().write(Cell {
                refs: AtomicU32::new(1),
                tag: AtomicU32::new(0),
                value,
            });
        }
        Counted {
            cell,
            owns: PhantomData,
        }
    }
}

impl<E: ?Sized> Counted<E> {
    /// The pointer `this` is, as a pointer of another type: `convert` coerces the cell's
    /// pointer (an unsizing, from an entry's type to `dyn ErasedEntry`), so the count goes
    /// with it.
    ///
    /// # Safety
    /// `convert` returns a pointer to the same cell, of a type its value is (an unsizing
    /// coercion of the pointer is).
    #[expect(unsafe_code, reason = "a counted pointer of another type")]
    pub unsafe fn map_cell<F: ?Sized>(
        this: Self,
        convert: impl FnOnce(NonNull<Cell<E>>) -> NonNull<Cell<F>>,
    ) -> Counted<F> {
        let cell = this.cell;
        std::mem::forget(this);
        let converted = convert(cell);
        assert_eq!(
            converted.as_ptr().cast::<u8>(),
            cell.as_ptr().cast::<u8>(),
            "a counted pointer is converted to the same cell"
        );
        Counted {
            cell: converted,
            owns: PhantomData,
        }
    }

    /// A new count of the entry in `cell`, unless its count is zero (the entry is being
    /// dropped).
    ///
    /// # Safety
    /// `cell` is allocated: its count is above zero, or its entry's `drop` has not returned
    /// (the registry holds a record of it, under the lock held by the caller).
    #[expect(unsafe_code, reason = "counting an entry found through a record")]
    pub unsafe fn upgrade(cell: NonNull<Cell<E>>) -> Option<Counted<E>> {
        // SAFETY: the cell is allocated (the caller's promise) and its count is an atomic,
        // not part of the entry, which may be borrowed by its `drop`.
        let refs = unsafe { &(*cell.as_ptr()).refs };
        let mut n = refs.load(Ordering::Relaxed);
        loop {
            if n == 0 {
                return None;
            }
            if n >= MAX_REFS {
                std::process::abort();
            }
            match refs.compare_exchange_weak(n, n + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    return Some(Counted {
                        cell,
                        owns: PhantomData,
                    });
                }
                Err(now) => n = now,
            }
        }
    }

    /// The address of the value of `cell`, which is allocated.
    ///
    /// # Safety
    /// As for [`upgrade`](Self::upgrade).
    #[expect(unsafe_code, reason = "the address of a field of an allocated cell")]
    pub unsafe fn value_ptr(cell: NonNull<Cell<E>>) -> *const E {
        // SAFETY: the cell is allocated (the caller's promise); no reference is made.
        unsafe { &raw const (*cell.as_ptr()).value }
    }

    /// True if `a` and `b` count the same cell.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.cell.as_ptr().cast::<u8>() == b.cell.as_ptr().cast::<u8>()
    }

    /// The number of `Counted` pointers to the cell.
    #[cfg(test)]
    pub fn count(this: &Self) -> u32 {
        this.refs().load(Ordering::Relaxed)
    }

    /// Sets the cell's tag (see the module docs). Called under the lock of the table that
    /// reads it.
    pub fn set_tag(this: &Self, tag: u32) {
        // SAFETY: the cell is allocated while `this` counts it; the tag is never borrowed
        // mutably.
        #[expect(unsafe_code, reason = "the tag of a live cell")]
        let t = unsafe { &(*this.cell.as_ptr()).tag };
        t.store(tag, Ordering::Relaxed);
    }

    fn refs(&self) -> &AtomicU32 {
        // SAFETY: the cell is allocated while `self` counts it; the count is never borrowed
        // mutably.
        #[expect(unsafe_code, reason = "the count of a live cell")]
        unsafe {
            &(*self.cell.as_ptr()).refs
        }
    }
}

/// A pointer to a counted cell that does not count it, for a table that the entry leaves in
/// its `drop` (the registry, the resident set): a record there outlives nothing, because the
/// entry takes it out, under the table's lock, before its cell is freed.
pub(crate) struct Uncounted<E: ?Sized>(NonNull<Cell<E>>);

// SAFETY: an uncounted pointer is only upgraded or compared, under its table's lock; the
// entries it points to are shared between threads as `Counted` ones are.
#[expect(unsafe_code, reason = "an uncounted pointer to a shared entry")]
unsafe impl<E: ?Sized + Send + Sync> Send for Uncounted<E> {}
// SAFETY: as above.
#[expect(unsafe_code, reason = "an uncounted pointer to a shared entry")]
unsafe impl<E: ?Sized + Send + Sync> Sync for Uncounted<E> {}

impl<E: ?Sized> Uncounted<E> {
    /// The cell `counted` counts, not counted.
    pub fn of(counted: &Counted<E>) -> Uncounted<E> {
        Uncounted(counted.cell)
    }

    /// The cell, not counted, as a cell of another type (see [`Counted::map_cell`]).
    ///
    /// # Safety
    /// `convert` returns a pointer to the same cell, of the type its value is.
    #[expect(unsafe_code, reason = "a cell pointer of another type")]
    pub unsafe fn cast<F: ?Sized>(
        self,
        convert: impl FnOnce(NonNull<Cell<E>>) -> NonNull<Cell<F>>,
    ) -> Uncounted<F> {
        Uncounted(convert(self.0))
    }

    /// A new count of the entry, unless it is being dropped.
    ///
    /// # Safety
    /// The pointer was in its table when the caller took the table's lock, and the caller
    /// still holds it (it may have taken the pointer out meanwhile): the entry leaves the
    /// table under that lock in its `drop`, which must return before the cell is freed, so the
    /// cell is allocated.
    #[expect(unsafe_code, reason = "counting an entry through an uncounted pointer")]
    pub unsafe fn upgrade(&self) -> Option<Counted<E>> {
        // SAFETY: the caller's promise.
        unsafe { Counted::upgrade(self.0) }
    }

    /// The cell's tag (see the module docs), whether or not its entry is being dropped.
    ///
    /// # Safety
    /// As for [`upgrade`](Self::upgrade).
    #[expect(unsafe_code, reason = "the tag of a cell through an uncounted pointer")]
    pub unsafe fn tag(&self) -> u32 {
        // SAFETY: the cell is allocated (the caller's promise); the tag is an atomic outside
        // the entry, never borrowed mutably.
        unsafe { (*self.0.as_ptr()).tag.load(Ordering::Relaxed) }
    }

    /// The address of the entry (its id), whether or not it is being dropped.
    ///
    /// # Safety
    /// As for [`upgrade`](Self::upgrade).
    #[expect(
        unsafe_code,
        reason = "the address of an entry through an uncounted pointer"
    )]
    pub unsafe fn addr(&self) -> *const () {
        // SAFETY: the caller's promise.
        unsafe { Counted::value_ptr(self.0).cast() }
    }
}

impl<E> Uncounted<E> {
    /// The cell's number (see `memory::cells`), which names it while it is allocated.
    pub fn number(&self) -> u32 {
        const {
            assert!(
                crate::memory::is_cell(size_of::<Cell<E>>(), align_of::<Cell<E>>()),
                "a numbered cell is small enough to be one of the cells'"
            );
        };
        crate::memory::cell_number(self.0.cast())
    }

    /// The cell numbered `number`, not counted.
    ///
    /// # Safety
    /// `number` is the [`number`](Self::number) of a `Cell<E>` that is allocated now.
    #[expect(unsafe_code, reason = "a cell through its number")]
    pub unsafe fn from_number(number: u32) -> Uncounted<E> {
        // SAFETY: the caller's promise.
        Uncounted(unsafe { crate::memory::cell_at(number) }.cast())
    }
}

impl<E: ?Sized> Deref for Counted<E> {
    type Target = E;

    #[inline]
    fn deref(&self) -> &E {
        // SAFETY: the cell is allocated and its value initialised while `self` counts it, and
        // the value is only ever borrowed mutably by its drop, after the last count is gone.
        #[expect(unsafe_code, reason = "the value of a live cell")]
        unsafe {
            &(*self.cell.as_ptr()).value
        }
    }
}

impl<E: ?Sized> Clone for Counted<E> {
    #[inline]
    fn clone(&self) -> Self {
        // Relaxed, as `Arc`'s: a new count is made from one the caller holds, which keeps the
        // cell alive; nothing is published by it.
        if self.refs().fetch_add(1, Ordering::Relaxed) >= MAX_REFS {
            std::process::abort();
        }
        Counted {
            cell: self.cell,
            owns: PhantomData,
        }
    }
}

impl<E: ?Sized> Drop for Counted<E> {
    #[inline]
    fn drop(&mut self) {
        // Release, then Acquire once at zero, as `Arc`'s: every use of the value through any
        // other count happens before it is dropped.
        if self.refs().fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let cell = self.cell.as_ptr();
        // SAFETY: the count reached zero here, so this is the last count and no new one can be
        // made (`upgrade` refuses zero); the cell is allocated with the layout of its type,
        // read through its vtable if it has one, and is freed only after its value is dropped.
        #[expect(unsafe_code, reason = "dropping and freeing a cell with no count left")]
        unsafe {
            let layout = Layout::for_value(&*cell);
            std::ptr::drop_in_place(&raw mut (*cell).value);
            Cells.deallocate(self.cell.cast(), layout);
        }
    }
}

impl<E: ?Sized> std::fmt::Debug for Counted<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counted({:p})", self.cell)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts its drops.
    struct Tally<'a>(
        &'a AtomicUsize,
        #[expect(dead_code, reason = "size only")] [u64; 3],
    );

    impl Drop for Tally<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    trait Named {
        fn name(&self) -> usize;
    }

    impl Named for Tally<'_> {
        fn name(&self) -> usize {
            self.0 as *const AtomicUsize as usize
        }
    }

    #[test]
    fn the_last_count_drops_the_value_once() {
        let drops = AtomicUsize::new(0);
        let a = Counted::new(Tally(&drops, [0; 3]));
        let b = a.clone();
        assert!(Counted::ptr_eq(&a, &b));
        assert_eq!(Counted::count(&a), 2);
        drop(a);
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        drop(b);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_erased_pointer_is_the_same_cell_and_count() {
        let drops = AtomicUsize::new(0);
        let typed = Counted::new(Tally(&drops, [7; 3]));
        let addr = (&*typed as *const Tally<'_>).cast::<u8>();
        // SAFETY: an unsizing coercion.
        #[expect(unsafe_code, reason = "erasing a counted pointer's type")]
        let erased: Counted<dyn Named + '_> =
            unsafe { Counted::map_cell(typed.clone(), |c| c as NonNull<Cell<dyn Named>>) };
        assert_eq!((&*erased as *const dyn Named).cast::<u8>(), addr);
        assert_eq!(erased.name(), &drops as *const AtomicUsize as usize);
        assert_eq!(Counted::count(&typed), 2);
        drop(typed);
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        drop(erased);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "dropped through its vtable"
        );
    }

    #[test]
    fn upgrade_counts_a_live_cell_and_refuses_a_dying_one() {
        /// Tries to upgrade its own cell while it is being dropped, as the registry may.
        struct Dying<'a> {
            cell: &'a std::cell::Cell<Option<NonNull<Cell<Dying<'a>>>>>,
            refused: &'a AtomicUsize,
        }
        impl Drop for Dying<'_> {
            fn drop(&mut self) {
                let cell = self.cell.get().expect("the cell is known");
                // SAFETY: the cell is allocated until this drop returns.
                #[expect(unsafe_code, reason = "an upgrade during the drop, as the registry's")]
                let up = unsafe { Counted::upgrade(cell) };
                if up.is_none() {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                }
                std::mem::forget(up);
            }
        }
        let at = std::cell::Cell::new(None);
        let refused = AtomicUsize::new(0);
        let live = Counted::new(Dying {
            cell: &at,
            refused: &refused,
        });
        at.set(Some(live.cell));
        // SAFETY: `live` counts the cell.
        #[expect(unsafe_code, reason = "an upgrade of a live cell")]
        let again = unsafe { Counted::upgrade(live.cell) }.expect("a live cell is counted");
        assert_eq!(Counted::count(&live), 2);
        drop(again);
        drop(live);
        assert_eq!(
            refused.load(Ordering::Relaxed),
            1,
            "the value was dropped once, and its cell not counted again"
        );
    }

    #[test]
    fn a_cell_dropped_through_its_erased_type_goes_back_to_its_class() {
        /// A value whose cell (224 bytes) is of a class no other test uses.
        struct Wide(#[expect(dead_code, reason = "size only")] [u64; 26]);
        trait Sized26 {}
        impl Sized26 for Wide {}
        let layout = Layout::new::<Cell<Wide>>();
        assert_eq!(crate::memory::cell_bytes(layout.size()), 224);
        let cells: Vec<Counted<dyn Sized26>> = (0..5_000)
            .map(|_| {
                // SAFETY: an unsizing coercion.
                #[expect(unsafe_code, reason = "erasing a counted pointer's type")]
                unsafe {
                    Counted::map_cell(Counted::new(Wide([3; 26])), |c| {
                        c as NonNull<Cell<dyn Sized26>>
                    })
                }
            })
            .collect();
        assert!(crate::memory::cell_chunks(layout) > 1);
        drop(cells);
        assert_eq!(
            crate::memory::cell_chunks(layout),
            1,
            "freed with the layout of the value's own type: every chunk but the spare went back"
        );
    }

    #[test]
    fn counts_from_many_threads_balance() {
        let drops = AtomicUsize::new(0);
        let root = Counted::new(Tally(&drops, [1; 3]));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let mine = root.clone();
                s.spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..10_000 {
                        held.push(mine.clone());
                        if i % 3 == 0 {
                            held.clear();
                        }
                    }
                });
            }
        });
        assert_eq!(Counted::count(&root), 1);
        drop(root);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    }
}

//! The allocator's settings, made once at start, before any allocation of the job.
//!
//! glibc's malloc gives an allocation of at least its mmap threshold (128 KiB by default) a
//! mapping of its own, returned to the system when freed. But it raises the threshold to the
//! size of every such mapping freed (up to 32 MiB): once the demo has freed one large value or
//! one encoding buffer of a MiB, every later allocation below that size comes from the heap.
//! A pool frees values in its policy's order, not in the order they were allocated, so the
//! heap keeps the holes of the large values it paged out and the process's memory drifts above
//! its budget (the demo's peak RSS at a 64 MiB budget: 101–102 MiB with the raised
//! threshold, 90–91 MiB with it fixed; BENCHMARKS.md). Setting the thresholds explicitly turns
//! that adjustment off. The price is a mapping, and its page faults, for every large
//! allocation: about a second more system time in the demo's nine.
//!
//! Nothing is changed when the user set either threshold with glibc's own environment
//! variables (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`), nor on other C libraries.
//! Programs that embed the library choose their allocator and its settings themselves; the
//! crate docs ("What the budget counts") give the same advice.

/// The size from which an allocation gets a mapping of its own: glibc's default, kept fixed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Fix the allocator's thresholds (see the module docs). Call first thing in `main`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn configure() {
    let set_by_user = ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if set_by_user {
        return;
    }
    #[expect(
        unsafe_code,
        reason = "mallopt is glibc's documented call to set its thresholds"
    )]
    // SAFETY: mallopt takes two integers and changes only malloc's parameters; it is called
    // before the program starts any thread, and both values are in range (the mmap threshold
    // is glibc's own default, the trim threshold any non-negative value). A failure (return 0)
    // leaves glibc's adjusting defaults, which are correct, only larger.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Other C libraries keep their own settings.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn configure() {}

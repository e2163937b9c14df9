//! The futex-like words that blocked waiters sleep on (see [`watermark`](crate::watermark)).
//! Where the OS has them (through `atomic-wait`: a futex on Linux, Android and FreeBSD,
//! `__ulock` on Apple systems), [`wait`] sleeps while a word holds the value the caller read and
//! [`wake_all`] wakes every sleeper with one call. Elsewhere [`SUPPORTED`] is false, nobody
//! sleeps on a word, and blocked waiters park their own thread with a waker, as timed waits do
//! everywhere. CI runs the crate's tests a second time with `--cfg spillway_park_fallback`,
//! which forces that fallback on Linux.

cfg_if::cfg_if! {
    if #[cfg(all(
        not(spillway_park_fallback),
        any(
            target_os = "linux",
            target_os = "android",
            target_os = "freebsd",
            target_os = "macos",
            target_os = "ios",
            target_os = "watchos",
        )
    ))] {
        mod imp {
            use std::sync::atomic::AtomicU32;

            /// Whether this platform has the words.
            pub(crate) const SUPPORTED: bool = true;

            /// Sleeps while `word` is `seen` (returns at once if it is not; may return
            /// spuriously).
            pub(crate) fn wait(word: &AtomicU32, seen: u32) {
                atomic_wait::wait(word, seen);
            }

            /// Wakes every thread asleep on `word`.
            pub(crate) fn wake_all(word: &AtomicU32) {
                atomic_wait::wake_all(word);
            }
        }
    } else {
        mod imp {
            use std::sync::atomic::AtomicU32;

            pub(crate) const SUPPORTED: bool = false;

            pub(crate) fn wait(_: &AtomicU32, _: u32) {
                unreachable!("nobody sleeps on a word where the platform has none");
            }

            pub(crate) fn wake_all(_: &AtomicU32) {}
        }
    }
}

pub(crate) use imp::{SUPPORTED, wait, wake_all};

//! The pipeline's errors: [`Error`], what a call on a pipeline reports, and [`Failure`], why a
//! pipeline entered its failed state.
//!
//! Both are generic over `E`, the error type of the pipeline's [`Flusher`](crate::Flusher): a
//! flusher's error reaches every waiter it failed as itself (in an `Arc`, since many waiters
//! share it), with its own `source()` chain, never as a string. A caller that wants its own
//! error type back matches [`Error::WriteFailed`] with [`Failure::Flusher`], or converts the
//! whole [`Error`] with a `From` impl of its own.

use std::fmt;
use std::sync::Arc;

/// The result of a pipeline call whose flusher fails with `E`.
pub type Result<T, E> = std::result::Result<T, Error<E>>;

/// What went wrong in a call on a pipeline whose flusher fails with `E`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E> {
    /// The pipeline failed (see [`Failure`]), so the writes from `first` on never reached
    /// storage. It refuses further writes; the writes it still holds are handed back by its
    /// shutdown.
    #[error(
        "write pipeline {pipeline} failed to store the writes from epoch {first} on ({cause}); it refuses further writes, shut it down to recover the unflushed batches"
    )]
    WriteFailed {
        /// The pipeline's name.
        pipeline: String,
        /// The first epoch that did not reach storage.
        first: u64,
        /// Why it failed.
        #[source]
        cause: Failure<E>,
    },

    /// The pipeline was shut down (or its writer thread stopped), so it takes no more writes.
    #[error("write pipeline {pipeline} is shut down and takes no more writes")]
    Closed {
        /// The pipeline's name.
        pipeline: String,
    },

    /// The operating system refused to start one of the pipeline's threads.
    #[error("could not start {thread}: {source}")]
    Spawn {
        /// Which thread, of which pipeline.
        thread: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A [`Config`](crate::Config) value out of range.
    #[error("invalid write pipeline config: {0}")]
    InvalidConfig(&'static str),
}

/// Why a pipeline entered its failed state.
#[non_exhaustive]
pub enum Failure<E> {
    /// The flusher's error: a [`Flusher::write`](crate::Flusher::write) that failed its last
    /// retry, or a [`Flusher::sync`](crate::Flusher::sync). Displays as that error, and its
    /// source is that error's source.
    Flusher(Arc<E>),

    /// Code panicked (a bug, in the pipeline or in the user's delta or flusher) in work that
    /// others wait on; what it was doing is abandoned.
    Panicked {
        /// Which work, on which thread.
        thread: String,
        /// What the panic means for the caller.
        consequence: &'static str,
    },
}

impl<E> Clone for Failure<E> {
    fn clone(&self) -> Self {
        match self {
            Failure::Flusher(e) => Failure::Flusher(Arc::clone(e)),
            Failure::Panicked {
                thread,
                consequence,
            } => Failure::Panicked {
                thread: thread.clone(),
                consequence,
            },
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Flusher(e) => f.debug_tuple("Flusher").field(e).finish(),
            Failure::Panicked {
                thread,
                consequence,
            } => f
                .debug_struct("Panicked")
                .field("thread", thread)
                .field("consequence", consequence)
                .finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Flusher(e) => e.fmt(f),
            Failure::Panicked {
                thread,
                consequence,
            } => write!(f, "{thread} panicked; {consequence}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Failure<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Flusher(e) => e.source(),
            Failure::Panicked { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("disk said no")]
    struct DiskError(#[source] std::io::Error);

    #[test]
    fn a_flusher_error_keeps_its_source_chain() {
        let cause = Failure::Flusher(Arc::new(DiskError(std::io::Error::other("EIO"))));
        let e: Error<DiskError> = Error::WriteFailed {
            pipeline: "p".into(),
            first: 3,
            cause: cause.clone(),
        };
        assert_eq!(
            e.to_string(),
            "write pipeline p failed to store the writes from epoch 3 on (disk said no); it refuses further writes, shut it down to recover the unflushed batches"
        );
        let failure = e.source().expect("the failure");
        assert_eq!(failure.to_string(), "disk said no");
        assert_eq!(
            failure.source().map(ToString::to_string).as_deref(),
            Some("EIO")
        );
        let Error::WriteFailed {
            cause: Failure::Flusher(own),
            ..
        } = &e
        else {
            unreachable!("built above");
        };
        assert_eq!(own.0.to_string(), "EIO");
    }

    #[test]
    fn a_panic_reads_as_what_panicked() {
        let f: Failure<std::io::Error> = Failure::Panicked {
            thread: "the flusher of pipeline p".into(),
            consequence: "the batches not stored are handed back by shutdown",
        };
        assert_eq!(
            f.to_string(),
            "the flusher of pipeline p panicked; the batches not stored are handed back by shutdown"
        );
        assert!(f.source().is_none());
    }
}

//! A writable log store's write path: the [write pipeline](crate::write) with the log's
//! [delta](super::delta) and [flusher](super::flusher).
//!
//! `put_batch`, `delete` and compaction's copies are writes on one channel; each is applied
//! (visible to readers) on the caller's thread before it returns. `flush(Written)` and a
//! handle's `wait(Written)` freeze what was applied and write it, on the caller's thread when
//! no other flush runs; `flush(Durable)` also syncs, and callers that come while a sync runs
//! share the next one (group commit falls out of the pipeline). The delta is frozen by size
//! ([`LogStoreOptions::write_buffer`](super::LogStoreOptions::write_buffer)) too, and the
//! pipeline's flush thread then writes it in the background while the next delta fills.
//!
//! Failure: the pipeline runs without retries, and the flusher poisons the store before it
//! reports an error, so every later write is refused with [`Error::Poisoned`]; applied writes
//! not yet written stay readable until the store is dropped.

use std::sync::Arc;

use super::core::Core;
use super::delta::{Appended, LogBatch, LogDelta, LogWrite};
use super::flusher::LogFlusher;
use crate::error::{Error, Result};
use crate::format::checkpoint::Location;
use spillway_write::{
    Config, Coordinator, Epoch, Failure, Layer, RejectReason, RetryPolicy, WriteChannel,
    WriteHandle,
};

pub(super) struct Pipeline {
    coordinator: Coordinator<LogDelta, LogFlusher>,
    channel: WriteChannel<LogWrite, Appended, Error>,
    core: Arc<Core>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("coordinator", &self.coordinator)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Starts the pipeline over the log's file end; the first record goes at the flusher's
    /// written position.
    pub fn start(core: Arc<Core>, flusher: LogFlusher) -> Result<Pipeline> {
        let tail = crate::format::checkpoint::LogPosition {
            segment: flusher.active,
            offset: flusher.written_len,
        };
        let config = Config {
            name: "log-store".into(),
            freeze_bytes: core.opts.write_buffer.max(1),
            // Written when the caller asks, or when the buffer is full, as documented for
            // `write_buffer`.
            freeze_interval: None,
            max_frozen: 2,
            retry: RetryPolicy::never(),
            sync_on_shutdown: true,
            ..Config::default()
        };
        let coordinator =
            Coordinator::start(LogDelta::new(Arc::clone(&core), tail), flusher, (), config)?;
        let channel = coordinator.channel("writes", 1024);
        Ok(Pipeline {
            coordinator,
            channel,
            core,
        })
    }

    /// The error to report when the pipeline refuses or fails a call: the write or sync error
    /// itself for the calls it failed (shared between them) or the panic that failed it, the
    /// poison for later ones.
    fn failure(&self, e: spillway_write::Error<Error>) -> Error {
        use spillway_write::Error as Pipeline;
        match e {
            Pipeline::WriteFailed {
                cause: Failure::Flusher(cause),
                ..
            } => Error::Shared(cause),
            Pipeline::WriteFailed {
                cause:
                    Failure::Panicked {
                        thread,
                        consequence,
                    },
                ..
            } => Error::ThreadPanicked {
                thread,
                consequence,
            },
            e => match self.core.check_poison() {
                Err(poisoned) => poisoned,
                Ok(()) => e.into(),
            },
        }
    }

    /// Sends `write` and returns its handle once it is applied.
    pub fn submit(&self, write: LogWrite) -> Result<WriteHandle<Appended, Error>> {
        let handle: WriteHandle<Appended, Error> =
            self.channel
                .write(write)
                .map_err(|rejected| match rejected.reason {
                    RejectReason::Stopped(e) => self.failure(e),
                    other => Error::Internal(format!("log store write refused: {other:?}")),
                })?;
        handle
            .wait(spillway_write::Durability::Applied)
            .map_err(|e| self.failure(e))?;
        Ok(handle)
    }

    /// Sends `write` and returns once it is applied, with what it appended.
    pub fn apply(&self, write: LogWrite) -> Result<Appended> {
        Ok(self.submit(write)?.take_result().unwrap_or_default())
    }

    /// Returns once every write applied before the call is written (`durable`: and synced).
    pub fn flush(&self, durable: bool) -> Result<Epoch> {
        self.coordinator.flush(durable).map_err(|e| self.failure(e))
    }

    /// A copy of the record at `loc` if it is still in the pipeline (applied, not yet written).
    pub fn find_unwritten(&self, loc: Location) -> Option<Vec<u8>> {
        let view = self.coordinator.view();
        let read = view.read();
        read.layers().find_map(|layer| {
            let bytes = match layer {
                Layer::Live(delta) => delta.find(loc),
                Layer::Frozen(batch) => LogBatch::find(batch, loc),
            };
            bytes.map(<[u8]>::to_vec)
        })
    }
}

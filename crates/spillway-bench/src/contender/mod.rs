//! Contenders: the stores the harness measures, behind one small trait.
//!
//! Every contender is opened in a fresh directory of its own inside a child process, so its peak
//! RSS and its files are its own. The harness hands it objects already named by their
//! [`ContentKey`] (hashing is timed as part of the put, the same for everyone); a peer that names
//! objects its own way keeps a map from our key to its own and pays for that map, as a user would.
//!
//! Adding a contender: a file here implementing [`Contender`], a variant of [`ContenderId`], and
//! an arm in [`open`]. Peers that cannot share this workspace's dependency graph (see the peer
//! notes) will run as their own executables behind the same child protocol.

use std::collections::BTreeMap;
use std::path::Path;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use spillway::ContentKey;

mod spillway_log;
mod spillway_mem;

/// How far the flush at the end of the put phase must carry the writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlushLevel {
    /// Handed to the operating system: survives a crash of the process.
    Written,
    /// On stable storage: survives power loss.
    Durable,
}

/// A store under test.
pub trait Contender {
    /// Stores `payloads[i]` under `keys[i]`. The two slices have the same length.
    fn put_batch(&mut self, keys: &[ContentKey], payloads: &[&[u8]]) -> anyhow::Result<()>;

    /// Reads the payload stored under `key`.
    fn get(&mut self, key: &ContentKey) -> anyhow::Result<Option<Vec<u8>>>;

    /// Returns once every put so far has reached `level`.
    fn flush(&mut self, level: FlushLevel) -> anyhow::Result<()>;

    /// Closes the store the way a program shutting down cleanly would.
    fn close(self: Box<Self>) -> anyhow::Result<()>;

    /// Counters worth showing next to the timings (syncs made, bytes written, ...).
    fn counters(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}

/// The contenders the harness knows, each with the durability level it is measured at.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[expect(
    clippy::enum_variant_names,
    reason = "only spillway's own stores so far; the peers join this enum later"
)]
pub enum ContenderId {
    /// spillway's `LogStore`, flushed to `Durability::Written` after the puts.
    SpillwayLogWritten,
    /// spillway's `LogStore`, flushed to `Durability::Durable` after the puts.
    SpillwayLogDurable,
    /// spillway's `MemStore`: no I/O at all, the reference for the harness's own overhead.
    SpillwayMem,
}

impl ContenderId {
    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            ContenderId::SpillwayLogWritten => "spillway-log-written",
            ContenderId::SpillwayLogDurable => "spillway-log-durable",
            ContenderId::SpillwayMem => "spillway-mem",
        }
    }

    /// The level the put phase ends with.
    pub fn flush_level(self) -> FlushLevel {
        match self {
            ContenderId::SpillwayLogWritten | ContenderId::SpillwayMem => FlushLevel::Written,
            ContenderId::SpillwayLogDurable => FlushLevel::Durable,
        }
    }

    /// What the level means for this contender, for the table.
    pub fn level_label(self) -> &'static str {
        match self {
            ContenderId::SpillwayLogWritten => "Written",
            ContenderId::SpillwayLogDurable => "Durable",
            ContenderId::SpillwayMem => "none (memory)",
        }
    }

    /// True if the contender writes to disk, so that comparing it with disk limits makes sense.
    pub fn uses_disk(self) -> bool {
        !matches!(self, ContenderId::SpillwayMem)
    }

    /// All contenders, in table order.
    pub fn all() -> Vec<ContenderId> {
        ContenderId::value_variants().to_vec()
    }
}

/// Opens contender `id` in the empty directory `dir`.
pub fn open(id: ContenderId, dir: &Path) -> anyhow::Result<Box<dyn Contender>> {
    Ok(match id {
        ContenderId::SpillwayLogWritten | ContenderId::SpillwayLogDurable => {
            Box::new(spillway_log::LogContender::open(dir)?)
        }
        ContenderId::SpillwayMem => Box::new(spillway_mem::MemContender::new()),
    })
}

//! Workloads: what a child process does to one contender, and what it measures.
//!
//! A workload puts `count` objects of `size` random bytes in batches, flushes once at the
//! contender's level, then gets every object back in a random order on one thread and checks its
//! bytes. Payloads are regenerated from `(seed, index)` instead of being kept, so the data set
//! does not inflate the child's peak RSS.
//!
//! What is timed:
//! - put: computing each key (`ContentKey::of(payload, &[])`) and `put_batch`, plus the one flush
//!   at the end; generating the random payloads is not timed;
//! - get: the `get` calls of a chunk of lookups; comparing the returned bytes with the expected
//!   ones and freeing them happens after the timer stops, chunk by chunk.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use spillway::ContentKey;

use crate::contender::{self, ContenderId};

/// One workload: `count` objects of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// Number of objects.
    pub count: u64,
    /// Payload size in bytes.
    pub size: usize,
}

impl Workload {
    /// Objects per `put_batch`: `batch`, but no more than `batch_bytes` of payload (at least one).
    pub fn batch_len(&self, batch: usize, batch_bytes: usize) -> usize {
        batch.min(batch_bytes / self.size.max(1)).max(1)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} × {}",
            group_digits(self.count),
            format_size(self.size)
        )
    }
}

impl FromStr for Workload {
    type Err = String;

    /// `COUNTxSIZE`, e.g. `1000000x128`, `50000x16K`, `1000x1M`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (count, size) = s
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("{s:?}: expected COUNTxSIZE, such as 50000x16K"))?;
        let count: u64 = count
            .replace('_', "")
            .parse()
            .map_err(|e| format!("{s:?}: bad count: {e}"))?;
        let size = parse_size(size).ok_or_else(|| format!("{s:?}: bad size {size:?}"))?;
        if count == 0 || size == 0 {
            return Err(format!("{s:?}: count and size must be positive"));
        }
        Ok(Workload { count, size })
    }
}

fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1usize << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(mult)
}

/// `128 B`, `16 KiB`, `1 MiB`.
pub fn format_size(size: usize) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 && size.is_multiple_of(1 << 10) {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

/// `1000000` → `1,000,000`.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub use crate::shared::{Job, Measurement};
use crate::shared::{KvPeer, Res, run_kv};

/// One of spillway's own stores as a [`KvPeer`], so that it runs W1/W2 through the very driver
/// the peers run ([`run_kv`]): the harness names objects by [`ContentKey`] (hashing is part of the
/// timed put, as a user of a content-addressed store pays it) and keeps the keys to read back.
struct Keyed {
    store: Option<Box<dyn contender::Contender>>,
    keys: Vec<ContentKey>,
    level: contender::FlushLevel,
}

impl Keyed {
    fn store(&mut self) -> Res<&mut Box<dyn contender::Contender>> {
        self.store
            .as_mut()
            .ok_or_else(|| "the store is closed".into())
    }
}

impl KvPeer for Keyed {
    fn put_batch(&mut self, first: u64, payloads: &[&[u8]]) -> Res<()> {
        debug_assert_eq!(first as usize, self.keys.len());
        let start = self.keys.len();
        self.keys
            .extend(payloads.iter().map(|p| ContentKey::of(p, &[])));
        let keys = std::mem::take(&mut self.keys);
        let done = self.store()?.put_batch(&keys[start..], payloads);
        self.keys = keys;
        Ok(done?)
    }

    fn flush(&mut self) -> Res<()> {
        let level = self.level;
        Ok(self.store()?.flush(level)?)
    }

    fn get(&mut self, index: u64) -> Res<Option<Vec<u8>>> {
        let key = *self
            .keys
            .get(index as usize)
            .ok_or("an object that was never put")?;
        Ok(self.store()?.get(&key)?)
    }

    fn close(&mut self) -> Res<()> {
        match self.store.take() {
            Some(s) => Ok(s.close()?),
            None => Ok(()),
        }
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        self.store
            .as_ref()
            .map(|s| s.counters())
            .unwrap_or_default()
    }
}

/// Runs W1/W2 `job` on spillway's contender `id` in this process, through the shared driver.
pub fn run(job: &Job, id: ContenderId) -> anyhow::Result<Measurement> {
    run_kv(
        || {
            Ok(Keyed {
                store: Some(contender::open(id, &job.dir).map_err(|e| e.to_string())?),
                keys: Vec::with_capacity(job.spec.count as usize),
                level: id.flush_level(),
            })
        },
        job,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// A W1/W2 job.
pub fn kv_job(
    id: ContenderId,
    count: u64,
    size: usize,
    batch: usize,
    seed: u64,
    dir: std::path::PathBuf,
) -> Job {
    Job {
        contender: id.name().to_string(),
        spec: crate::shared::Spec {
            kind: crate::shared::Kind::Kv,
            count,
            size,
            budget: 0,
            threads: 1,
            ops: 0,
        },
        batch,
        seed,
        dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_workloads() {
        assert_eq!(
            "1000000x128".parse::<Workload>(),
            Ok(Workload {
                count: 1_000_000,
                size: 128
            })
        );
        assert_eq!("50000x16K".parse::<Workload>().map(|w| w.size), Ok(16384));
        assert_eq!("1000x1M".parse::<Workload>().map(|w| w.size), Ok(1 << 20));
        assert!("10".parse::<Workload>().is_err());
        assert!("0x10".parse::<Workload>().is_err());
        assert_eq!(
            "1000000x128".parse::<Workload>().map(|w| w.to_string()),
            Ok("1,000,000 × 128 B".to_string())
        );
    }

    #[test]
    fn batches_are_capped_by_bytes() {
        let w = Workload {
            count: 1000,
            size: 1 << 20,
        };
        assert_eq!(w.batch_len(1000, 16 << 20), 16);
        let w = Workload {
            count: 1000,
            size: 128,
        };
        assert_eq!(w.batch_len(1000, 16 << 20), 1000);
    }

    #[test]
    fn mem_contender_round_trips() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let job = kv_job(
            ContenderId::SpillwayMem,
            500,
            100,
            64,
            7,
            dir.path().to_path_buf(),
        );
        let m = run(&job, ContenderId::SpillwayMem)?;
        assert!(!m.failed());
        Ok(())
    }

    #[test]
    fn log_contender_round_trips() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let job = kv_job(
            ContenderId::SpillwayLogDurable,
            300,
            5000,
            50,
            9,
            dir.path().join("store"),
        );
        let m = run(&job, ContenderId::SpillwayLogDurable)?;
        assert!(!m.failed(), "{m:?}");
        assert!(m.peak_rss_bytes > 0);
        Ok(())
    }
}

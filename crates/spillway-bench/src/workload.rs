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

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
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
    /// Total payload bytes.
    pub fn bytes(&self) -> u64 {
        self.count * self.size as u64
    }

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

/// Everything a child needs to run one measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub contender: ContenderId,
    pub workload: Workload,
    /// Objects per `put_batch` (already capped by bytes).
    pub batch: usize,
    pub seed: u64,
    /// Empty directory the contender owns.
    pub dir: std::path::PathBuf,
}

/// What a child reports, as one JSON line on stdout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Measurement {
    pub open_secs: f64,
    /// Keys, `put_batch` calls and the final flush.
    pub put_secs: f64,
    /// The final flush alone (included in `put_secs`).
    pub flush_secs: f64,
    pub get_secs: f64,
    pub close_secs: f64,
    /// Gets that returned `None`.
    pub missing: u64,
    /// Gets that returned other bytes than were put.
    pub mismatches: u64,
    /// Peak resident set of the child (VmHWM), bytes. It counts file pages mapped by the
    /// process as well as its own memory.
    pub peak_rss_bytes: u64,
    /// The child's resident set after the put phase.
    pub rss_after_put: Rss,
    /// The child's resident set after the get phase (before `close`).
    pub rss_after_get: Rss,
    /// The contender's own counters.
    pub counters: std::collections::BTreeMap<String, u64>,
}

impl Measurement {
    pub fn failed(&self) -> bool {
        self.missing > 0 || self.mismatches > 0
    }
}

/// Fills `out` with the payload of object `index`.
fn payload(seed: u64, index: u64, out: &mut [u8]) {
    let mut rng = SmallRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.fill_bytes(out);
}

/// Runs `job` in this process and measures it.
pub fn run(job: &Job) -> anyhow::Result<Measurement> {
    let Workload { count, size } = job.workload;
    let level = job.contender.flush_level();
    let mut m = Measurement::default();

    let t = Instant::now();
    let mut store = contender::open(job.contender, &job.dir)?;
    m.open_secs = t.elapsed().as_secs_f64();

    // Put phase.
    let mut keys: Vec<ContentKey> = Vec::with_capacity(count as usize);
    let batch = job.batch.max(1);
    let mut buf = vec![0u8; batch * size];
    let mut put_time = Duration::ZERO;
    let mut next = 0u64;
    while next < count {
        let n = batch.min((count - next) as usize);
        for (i, chunk) in buf[..n * size].chunks_exact_mut(size).enumerate() {
            payload(job.seed, next + i as u64, chunk);
        }
        let t = Instant::now();
        let payloads: Vec<&[u8]> = buf[..n * size].chunks_exact(size).collect();
        let start = keys.len();
        keys.extend(payloads.iter().map(|p| ContentKey::of(p, &[])));
        store.put_batch(&keys[start..], &payloads)?;
        put_time += t.elapsed();
        next += n as u64;
    }
    let t = Instant::now();
    store.flush(level)?;
    let flush = t.elapsed();
    m.flush_secs = flush.as_secs_f64();
    m.put_secs = (put_time + flush).as_secs_f64();
    drop(buf);
    m.rss_after_put = Rss::now();

    // Get phase, in a random order, in chunks so that returned buffers can be checked untimed.
    let mut order: Vec<u64> = (0..count).collect();
    order.shuffle(&mut SmallRng::seed_from_u64(
        job.seed.rotate_left(17) ^ 0x5EED,
    ));
    let chunk_len = job.batch.max(1);
    let mut got: Vec<Option<Vec<u8>>> = Vec::with_capacity(chunk_len);
    let mut expected = vec![0u8; size];
    let mut get_time = Duration::ZERO;
    for chunk in order.chunks(chunk_len) {
        let t = Instant::now();
        for &i in chunk {
            got.push(store.get(&keys[i as usize])?);
        }
        get_time += t.elapsed();
        for (&i, g) in chunk.iter().zip(got.drain(..)) {
            match g {
                None => m.missing += 1,
                Some(bytes) => {
                    payload(job.seed, i, &mut expected);
                    if bytes != expected {
                        m.mismatches += 1;
                    }
                }
            }
        }
    }
    m.get_secs = get_time.as_secs_f64();
    m.rss_after_get = Rss::now();
    m.counters = store.counters();

    let t = Instant::now();
    store.close()?;
    m.close_secs = t.elapsed().as_secs_f64();
    m.peak_rss_bytes = peak_rss_bytes().unwrap_or(0);
    Ok(m)
}

/// This process's resident set, split as `/proc/self/status` splits it, in bytes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Rss {
    /// Anonymous memory: the heap and stacks (`RssAnon`).
    pub anon: u64,
    /// File pages mapped into the process, such as memory-mapped segments (`RssFile`); they
    /// belong to the page cache and the kernel can drop clean ones under pressure.
    pub file: u64,
}

impl Rss {
    pub fn now() -> Rss {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Rss {
            anon: status_field(&status, "RssAnon:").unwrap_or(0),
            file: status_field(&status, "RssFile:").unwrap_or(0),
        }
    }
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// This process's peak resident set size (`VmHWM` in `/proc/self/status`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_field(&status, "VmHWM:")
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
        let job = Job {
            contender: ContenderId::SpillwayMem,
            workload: Workload {
                count: 500,
                size: 100,
            },
            batch: 64,
            seed: 7,
            dir: dir.path().to_path_buf(),
        };
        let m = run(&job)?;
        assert!(!m.failed());
        Ok(())
    }

    #[test]
    fn log_contender_round_trips() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let job = Job {
            contender: ContenderId::SpillwayLogDurable,
            workload: Workload {
                count: 300,
                size: 5000,
            },
            batch: 50,
            seed: 9,
            dir: dir.path().join("store"),
        };
        let m = run(&job)?;
        assert!(!m.failed(), "{m:?}");
        assert!(m.peak_rss_bytes > 0);
        Ok(())
    }
}

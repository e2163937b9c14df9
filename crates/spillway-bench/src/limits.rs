//! The machine's physical limits, measured in the same run and in the bench directory, so that
//! every store figure can be read as a fraction of what the hardware allows right now.

use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// How much work each limit measurement does.
#[derive(Debug, Clone, Copy)]
pub struct LimitSizes {
    /// Buffer copied for the memcpy bandwidth.
    pub memcpy_bytes: usize,
    /// Bytes hashed for each BLAKE3 figure.
    pub blake3_bytes: usize,
    /// Bytes written (in 1 MiB chunks) before the one `fdatasync`.
    pub seq_write_bytes: usize,
    /// Number of 4 KiB append + `fdatasync` rounds.
    pub fsync_rounds: usize,
    /// Bytes written for each figure of the disk measured beside a workload.
    pub disk_bytes: usize,
}

impl LimitSizes {
    pub const FULL: LimitSizes = LimitSizes {
        memcpy_bytes: 256 << 20,
        blake3_bytes: 256 << 20,
        seq_write_bytes: 1 << 30,
        fsync_rounds: 2000,
        disk_bytes: 256 << 20,
    };
    pub const QUICK: LimitSizes = LimitSizes {
        memcpy_bytes: 16 << 20,
        blake3_bytes: 16 << 20,
        seq_write_bytes: 32 << 20,
        fsync_rounds: 100,
        disk_bytes: 16 << 20,
    };
}

/// One measurement of every limit. Bandwidths in bytes per second, latencies in seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Limits {
    pub memcpy: f64,
    pub blake3_1k: f64,
    pub blake3_1m: f64,
    /// Sequential write in 1 MiB chunks then one `fdatasync`, end to end.
    pub seq_write_fsync: f64,
    pub fsync_4k_median: f64,
    pub fsync_4k_p99: f64,
}

/// Measures every limit, using `dir` for the file ones.
pub fn measure(dir: &Path, sizes: LimitSizes) -> anyhow::Result<Limits> {
    Ok(Limits {
        memcpy: memcpy(sizes.memcpy_bytes),
        blake3_1k: blake3_bandwidth(sizes.blake3_bytes, 1 << 10),
        blake3_1m: blake3_bandwidth(sizes.blake3_bytes, 1 << 20),
        seq_write_fsync: seq_write(dir, sizes.seq_write_bytes, true)?,
        fsync_4k_median: 0.0,
        fsync_4k_p99: 0.0,
    }
    .with_fsync(append_fsync_latencies(dir, sizes.fsync_rounds)?))
}

impl Limits {
    fn with_fsync(mut self, mut lat: Vec<f64>) -> Limits {
        lat.sort_by(f64::total_cmp);
        self.fsync_4k_median = percentile(&lat, 0.5);
        self.fsync_4k_p99 = percentile(&lat, 0.99);
        self
    }
}

/// The `q` quantile of sorted `v` (nearest rank).
pub fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SmallRng::seed_from_u64(len as u64).fill_bytes(&mut v);
    v
}

/// Bytes per second of `copy_from_slice` between two buffers already faulted in; best of a few
/// passes, as memcpy has no reason to be slower than its best pass.
fn memcpy(len: usize) -> f64 {
    let src = random_bytes(len);
    let mut dst = vec![1u8; len];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    len as f64 / best
}

/// Bytes per second of single-threaded BLAKE3 over inputs of `input` bytes.
fn blake3_bandwidth(total: usize, input: usize) -> f64 {
    let buf = random_bytes(total.max(input));
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for chunk in buf.chunks_exact(input) {
            black_box(blake3::hash(black_box(chunk)));
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    (buf.len() / input * input) as f64 / best
}

/// Writes `total` bytes in 1 MiB chunks to a new file in `dir`, then (with `sync`) `fdatasync`s
/// it; bytes per second over the whole (writes and sync).
fn seq_write(dir: &Path, total: usize, sync: bool) -> anyhow::Result<f64> {
    let path = dir.join("limits-seq-write.tmp");
    let chunk = random_bytes(1 << 20);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    let n = total.div_ceil(chunk.len()).max(1);
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(&chunk)?;
    }
    if sync {
        f.sync_data()?;
    }
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((n * chunk.len()) as f64 / secs)
}

/// The bench directory's disk, measured beside one workload (before and after it, in each run):
/// the write bandwidth a store that ends without a sync can reach (the page cache taking the
/// writes), and the one a store that ends with `fdatasync` can reach.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct DiskLimit {
    /// Sequential writes of 1 MiB chunks, timed until the last write returns, no sync.
    pub write: f64,
    /// The same, then one `fdatasync`, timed to its end.
    pub write_fsync: f64,
}

/// Measures [`DiskLimit`] in `dir` with `bytes` of writes for each figure.
pub fn measure_disk(dir: &Path, bytes: usize) -> anyhow::Result<DiskLimit> {
    Ok(DiskLimit {
        write: seq_write(dir, bytes, false)?,
        write_fsync: seq_write(dir, bytes, true)?,
    })
}

/// Latency of appending 4 KiB to a file and `fdatasync`ing it, `rounds` times.
fn append_fsync_latencies(dir: &Path, rounds: usize) -> anyhow::Result<Vec<f64>> {
    let path = dir.join("limits-fsync.tmp");
    let block = random_bytes(4096);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    // The file's creation is made durable first, so that the rounds measure data syncs only.
    f.sync_all()?;
    let mut lat = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let t = Instant::now();
        f.write_all_at(&block, (i * block.len()) as u64)?;
        f.sync_data()?;
        lat.push(t.elapsed().as_secs_f64());
    }
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(lat)
}

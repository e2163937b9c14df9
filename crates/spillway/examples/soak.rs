//! Soak: a pool under budget pressure for a long time, with a watchdog on what it holds.
//!
//! Four threads build graphs of byte buffers (1–64 KiB) in a pool over a log store, read random
//! ones back (holding some guards for a while), name some with roots and remove older roots,
//! and drop their handles; a collection and a compaction run every few seconds. A watchdog
//! samples, twice a second:
//!
//! - resident memory (RSS), which must stay under `limit = base + budget + metadata + index +
//!   slack`: `base` is the RSS before the pool is built, `metadata` and `index` are what the pool
//!   reports it keeps outside the budget (`PoolStats::metadata_bytes`, `store_index_bytes`), and
//!   `slack` (64 MiB, plus a quarter of the rest) covers the allocator's free lists, thread stacks
//!   and the buffers in flight;
//! - open file descriptors and threads, which must not grow past what they were after the first
//!   tenth of the run by more than a few (no leak);
//! - after each collection and compaction, the store directory's size, which must stay under
//!   twice the live bytes plus four segments (dead data is reclaimed).
//!
//! Every read is checked against the value written. A breach or a wrong value ends the run with
//! exit status 1 and says which.
//!
//! `cargo run --release -p spillway --example soak -- [--seconds N] [--budget-mib M] [--dir D]`
//! (`cargo xtask soak --minutes N` runs it).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use spillway::{Bytes, Guard, LogStoreOptions, Paged, Pool};

const SEGMENT: u64 = 8 << 20;

struct Args {
    seconds: u64,
    budget: u64,
    dir: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        seconds: 60,
        budget: 32 << 20,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--budget-mib" => {
                a.budget = value()?
                    .parse::<u64>()
                    .map_err(|e| format!("--budget-mib: {e}"))?
                    << 20
            }
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(a)
}

/// A field of `/proc/self/status` in bytes or as a count (`VmRSS:`, `Threads:`).
fn status_field(name: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |v| if name == "VmRSS:" { v * 1024 } else { v })
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    })
}

/// The bytes of value `id`: its length (1–64 KiB) and content follow from the id.
fn value(id: u64) -> Vec<u8> {
    let h = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let len = (h >> 40) as usize % (64 << 10) + 1024;
    (0..len)
        .map(|j| (h as usize >> 8).wrapping_add(j * 31) as u8)
        .collect()
}

#[derive(serde::Serialize, serde::Deserialize, get_size2::GetSize)]
struct Item {
    id: u64,
    body: Bytes,
    next: Option<Paged<Item>>,
}

/// What the run found wrong, if anything.
#[derive(Default)]
struct Breaches(Mutex<Vec<String>>);

impl Breaches {
    fn add(&self, what: String) {
        eprintln!("BREACH: {what}");
        self.0.lock().expect("breaches").push(what);
    }

    fn any(&self) -> bool {
        !self.0.lock().expect("breaches").is_empty()
    }
}

fn check(item: &Item, breaches: &Breaches) {
    if item.body.as_ref() != value(item.id).as_slice() {
        breaches.add(format!("value {} read back wrong", item.id));
    }
}

fn worker(pool: &Pool, t: u64, stop: &AtomicBool, ops: &AtomicU64, breaches: &Breaches) {
    let mut rng = t.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: VecDeque<Paged<Item>> = VecDeque::new();
    let mut held: VecDeque<Guard<Item>> = VecDeque::new();
    let mut id = t << 48;
    while !stop.load(Ordering::Relaxed) {
        let r = next() % 100;
        let outcome: spillway::Result<()> = (|| {
            match r {
                // A new value, linked to the last one: chains of up to a few.
                0..40 => {
                    id += 1;
                    let prev = (next() % 3 != 0).then(|| live.back().cloned()).flatten();
                    let h = pool.insert(Item {
                        id,
                        body: Bytes::from(value(id)),
                        next: prev,
                    })?;
                    live.push_back(h);
                    if live.len() > 600 {
                        live.pop_front();
                    }
                }
                // A read, following the chain; some guards are kept for a while.
                40..85 if !live.is_empty() => {
                    let h = &live[(next() % live.len() as u64) as usize];
                    let g = h.get()?;
                    check(&g, breaches);
                    if let Some(n) = &g.next {
                        check(&*n.get()?, breaches);
                    }
                    held.push_back(g);
                    if held.len() > 8 {
                        held.pop_front();
                    }
                }
                // Roots: name the newest value, remove an older name.
                85..90 if !live.is_empty() => {
                    let n = next() % 16;
                    pool.set_root(&format!("w{t}-{n}"), live.back().expect("not empty"))?;
                    pool.remove_root(&format!("w{t}-{}", (n + 8) % 16))?;
                }
                // Forget a stretch of values (now and then): garbage for the next collection.
                90..92 => {
                    let n = live.len() / 8;
                    live.drain(..n);
                }
                _ => {}
            }
            Ok(())
        })();
        if let Err(e) = outcome {
            breaches.add(format!("worker {t}: {e}"));
            return;
        }
        ops.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.join("soak-store"),
        None => {
            tmp = tempfile::tempdir().expect("a temporary directory");
            tmp.path().join("soak-store")
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    let base_rss = status_field("VmRSS:");
    let pool = Pool::builder()
        .budget(args.budget)
        .dir_with(&dir, LogStoreOptions::default().segment_size(SEGMENT))
        .gc_after(u64::MAX)
        .build()
        .expect("the pool");
    let stop = AtomicBool::new(false);
    let ops = AtomicU64::new(0);
    let breaches = Breaches::default();
    let started = Instant::now();
    let run_for = Duration::from_secs(args.seconds);
    let mut peak_rss = 0;
    let mut peak_limit = 0;
    let (mut max_fds, mut max_threads, mut max_disk) = (0, 0, 0);
    let mut settled: Option<(u64, u64)> = None;
    let mut maintenance = 0;
    std::thread::scope(|s| {
        for t in 0..4 {
            let (pool, stop, ops, breaches) = (&pool, &stop, &ops, &breaches);
            s.spawn(move || worker(pool, t, stop, ops, breaches));
        }
        let mut last_maintenance = Instant::now();
        while started.elapsed() < run_for && !breaches.any() {
            std::thread::sleep(Duration::from_millis(500));
            let stats = pool.stats();
            let rss = status_field("VmRSS:");
            let outside = stats.metadata_bytes + stats.store_index_bytes;
            let limit = base_rss + args.budget + outside + (64 << 20) + (args.budget + outside) / 4;
            peak_rss = peak_rss.max(rss);
            peak_limit = peak_limit.max(limit);
            if rss > limit {
                breaches.add(format!(
                    "RSS {} MiB over its limit {} MiB (budget {} MiB, metadata and index {} MiB)",
                    rss >> 20,
                    limit >> 20,
                    args.budget >> 20,
                    outside >> 20
                ));
            }
            let (fds, threads) = (open_fds(), status_field("Threads:"));
            max_fds = max_fds.max(fds);
            max_threads = max_threads.max(threads);
            // After the first tenth of the run, descriptors and threads must stay put.
            if started.elapsed() > run_for / 10 {
                let (f0, t0) = *settled.get_or_insert((fds, threads));
                if fds > f0 + 16 || threads > t0 + 2 {
                    breaches.add(format!(
                        "descriptors {fds} (were {f0}) or threads {threads} (were {t0}) grew"
                    ));
                }
            }
            if last_maintenance.elapsed() > Duration::from_secs(5) {
                last_maintenance = Instant::now();
                maintenance += 1;
                let outcome = pool.gc().and_then(|_| pool.compact());
                if let Err(e) = outcome {
                    breaches.add(format!("collection or compaction: {e}"));
                    continue;
                }
                let disk = dir_bytes(&dir);
                max_disk = max_disk.max(disk);
                let live = pool.stats().stored_bytes;
                if disk > 2 * live + 4 * SEGMENT {
                    breaches.add(format!(
                        "the store takes {} MiB on disk for {} MiB live after a collection and a compaction",
                        disk >> 20,
                        live >> 20
                    ));
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let stats = pool.stats();
    println!(
        "soak: {:.0} s, {} operations, {} collections and compactions; peak RSS {} MiB (limit at \
         most {} MiB, budget {} MiB, base {} MiB); peak resident {} MiB; at most {} descriptors and \
         {} threads; store at most {} MiB on disk ({} MiB live at the end); breaches: {}",
        started.elapsed().as_secs_f64(),
        ops.load(Ordering::Relaxed),
        maintenance,
        peak_rss >> 20,
        peak_limit >> 20,
        args.budget >> 20,
        base_rss >> 20,
        stats.peak_resident_bytes >> 20,
        max_fds,
        max_threads,
        max_disk >> 20,
        stats.stored_bytes >> 20,
        breaches.0.lock().expect("breaches").len()
    );
    if breaches.any() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

//! Held guards against the budget: many threads each keep their last `held` guards while they
//! read random values of a graph larger than the budget. Run once with the held bytes under the
//! budget and once over it; a pool without a cliff serves both at a similar rate.
//!
//! `cargo run --release -p spillway-bench --bin held-bench -- [--threads 64] [--secs 5]`

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use spillway::{Bytes, Guard, Paged, Pool};

#[derive(Debug, Parser)]
struct Args {
    /// Directory for the log store (a temporary one by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Reading threads.
    #[arg(long, default_value_t = 64)]
    threads: usize,
    /// Seconds each run lasts.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// The pool's budget in MiB.
    #[arg(long, default_value_t = 16)]
    budget_mib: u64,
    /// Bytes of each value.
    #[arg(long, default_value_t = 4096)]
    value_bytes: usize,
    /// Values in the graph (its bytes should be several budgets).
    #[arg(long, default_value_t = 20_000)]
    values: usize,
    /// Guards each thread holds, one run per figure.
    #[arg(long, value_delimiter = ',', default_values_t = [60, 80])]
    held: Vec<usize>,
}

struct Run {
    ops: u64,
    secs: f64,
    worst_ms: f64,
    peak: u64,
    held_bytes: u64,
}

fn run(pool: &Pool, handles: &Arc<Vec<Paged<Bytes>>>, args: &Args, held: usize) -> Result<Run> {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let worst = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let mut workers = Vec::new();
        for t in 0..args.threads {
            let (stop, ops, worst, handles) = (&stop, &ops, &worst, handles);
            workers.push(s.spawn(move || -> Result<()> {
                let mut rng = SmallRng::seed_from_u64(t as u64);
                let mut kept: VecDeque<Guard<Bytes>> = VecDeque::with_capacity(held + 1);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let h = &handles[rng.random_range(0..handles.len())];
                    let t0 = Instant::now();
                    let g = h.get()?;
                    worst.fetch_max(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    std::hint::black_box(g.len());
                    kept.push_back(g);
                    if kept.len() > held {
                        kept.pop_front();
                    }
                    n += 1;
                }
                ops.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }));
        }
        std::thread::sleep(Duration::from_secs_f64(args.secs));
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("a reading thread panicked")?;
        }
        Ok(())
    })?;
    let stats = pool.stats();
    Ok(Run {
        ops: ops.load(Ordering::Relaxed),
        secs: start.elapsed().as_secs_f64(),
        worst_ms: worst.load(Ordering::Relaxed) as f64 / 1e6,
        peak: stats.peak_resident_bytes,
        held_bytes: (args.threads * held * args.value_bytes) as u64,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.join("held-bench"),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("held-bench")
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    let budget = args.budget_mib << 20;
    let pool = Pool::builder().budget(budget).dir(&dir).build()?;
    let mut rng = SmallRng::seed_from_u64(1);
    let handles: Vec<Paged<Bytes>> = (0..args.values)
        .map(|_| {
            let mut v = vec![0u8; args.value_bytes];
            rng.fill(&mut v[..]);
            pool.insert(Bytes::from(v))
        })
        .collect::<spillway::Result<_>>()?;
    let handles = Arc::new(handles);
    pool.shrink_to(0)?;
    println!(
        "| held guards per thread | held bytes | budget | ops/s | worst read | peak resident |"
    );
    println!("|---|---|---|---|---|---|");
    for &held in &args.held {
        let r = run(&pool, &handles, &args, held)?;
        println!(
            "| {held} × {} threads | {:.1} MiB | {} MiB | {:.0} | {:.1} ms | {:.1} MiB |",
            args.threads,
            r.held_bytes as f64 / (1 << 20) as f64,
            args.budget_mib,
            r.ops as f64 / r.secs,
            r.worst_ms,
            r.peak as f64 / (1 << 20) as f64,
        );
    }
    Ok(())
}
